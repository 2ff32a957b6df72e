-- extentdb index schema, version 2: what the file boundary needs to remember.
-- Never edit this file once shipped: add a new NNNN_name.sql instead.

-- The identity of a layer's external data file (qcow2 data_file) at scan time, checked for freshness
-- like the layer's own: a data file replaced after the scan makes the scan stale.
-- NULL when the layer has no data file (or was recorded before version 2, which makes it stale).
ALTER TABLE scan_layers ADD COLUMN data_device INTEGER;
ALTER TABLE scan_layers ADD COLUMN data_inode INTEGER;
ALTER TABLE scan_layers ADD COLUMN data_file_size INTEGER CHECK (data_file_size IS NULL OR data_file_size >= 0);
ALTER TABLE scan_layers ADD COLUMN data_mtime_ns INTEGER;

-- Trust given when the image was scanned (`scan --allow-outside-backing`), kept for later rescans.
ALTER TABLE images ADD COLUMN allows_outside_backing INTEGER NOT NULL DEFAULT 0 CHECK (allows_outside_backing IN (0, 1));
