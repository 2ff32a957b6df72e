-- extentdb index schema, version 5: the trust a scan was made under, and the ctime of every file read.
-- Never edit this file once shipped: add a new NNNN_name.sql instead.

-- What the scan's chain needed beyond each image's own directory: {"outside": bool, "roots": [...]}, the
-- trusted roots it reached files under and whether it followed a file outside every allowed directory
-- (`--allow-outside-backing`). A front end reuses a scan only when its own trust covers this; NULL (a scan
-- recorded before version 5) is never reused, so such scans are made again under the current trust.
ALTER TABLE scans ADD COLUMN trust_json TEXT;

-- The inode change time of each layer and of its data file at scan time. An owner can restore a file's mtime
-- after rewriting it, not its ctime. NULL (recorded before version 5) makes the scan stale.
ALTER TABLE scan_layers ADD COLUMN ctime_ns INTEGER;
ALTER TABLE scan_layers ADD COLUMN data_ctime_ns INTEGER;
