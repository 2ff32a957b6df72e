-- extentdb index schema, version 1.
-- Never edit this file once shipped: add a new NNNN_name.sql instead.

-- One row per image file the index knows about (a chain's layers each get their own row).
CREATE TABLE images (
    id              INTEGER PRIMARY KEY,
    path            TEXT    NOT NULL UNIQUE CHECK (length(path) > 0),   -- canonical absolute path
    format          TEXT    NOT NULL CHECK (format IN ('raw', 'qcow2', 'vhd')),
    virtual_size    INTEGER NOT NULL CHECK (virtual_size >= 0),
    cluster_size    INTEGER CHECK (cluster_size IS NULL OR cluster_size > 0),
    backing_path    TEXT,                                              -- resolved parent/backing file
    backing_image_id INTEGER REFERENCES images(id) ON DELETE SET NULL,
    metadata_json   TEXT    NOT NULL,                                  -- header metadata as JSON
    latest_scan_id  INTEGER REFERENCES scans(id) ON DELETE SET NULL
);

-- One row per completed scan of an image; earlier scans are kept for history and diffs.
CREATE TABLE scans (
    id              INTEGER PRIMARY KEY,
    image_id        INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    scanned_at_ns   INTEGER NOT NULL,              -- wall clock, ns since the Unix epoch
    duration_ns     INTEGER NOT NULL CHECK (duration_ns >= 0),
    tool_version    TEXT    NOT NULL,
    virtual_size    INTEGER NOT NULL CHECK (virtual_size >= 0),
    chain_depth     INTEGER NOT NULL CHECK (chain_depth >= 1),   -- number of layers, image included
    extent_count    INTEGER NOT NULL CHECK (extent_count >= 0),
    data_bytes      INTEGER NOT NULL CHECK (data_bytes >= 0),    -- data over the whole chain
    own_data_bytes  INTEGER NOT NULL CHECK (own_data_bytes >= 0),-- data supplied by the image itself (depth 0)
    zero_bytes      INTEGER NOT NULL CHECK (zero_bytes >= 0),    -- present zero ranges (not data)
    compressed_bytes INTEGER NOT NULL CHECK (compressed_bytes >= 0),
    own_zero_bytes  INTEGER NOT NULL CHECK (own_zero_bytes >= 0),  -- present zero ranges at depth 0
    data_extent_count INTEGER NOT NULL CHECK (data_extent_count >= 0),
    data_extent_largest INTEGER NOT NULL CHECK (data_extent_largest >= 0),
    data_extent_median INTEGER NOT NULL CHECK (data_extent_median >= 0),
    data_extent_histogram TEXT NOT NULL DEFAULT '[]',  -- JSON: counts of data extents by floor(log2(length))
    warnings_json   TEXT    NOT NULL DEFAULT '[]'
);
CREATE INDEX scans_by_image ON scans (image_id, id);

-- The identity of every layer of the chain at scan time (depth 0 = the image itself).
-- A scan is fresh while every layer still has this device, inode, size and mtime.
CREATE TABLE scan_layers (
    scan_id         INTEGER NOT NULL REFERENCES scans(id) ON DELETE CASCADE,
    depth           INTEGER NOT NULL CHECK (depth >= 0),
    path            TEXT    NOT NULL,
    format          TEXT    NOT NULL CHECK (format IN ('raw', 'qcow2', 'vhd')),
    device          INTEGER NOT NULL,
    inode           INTEGER NOT NULL,
    file_size       INTEGER NOT NULL CHECK (file_size >= 0),
    mtime_ns        INTEGER NOT NULL,
    header_checksum TEXT    NOT NULL,
    cluster_size    INTEGER CHECK (cluster_size IS NULL OR cluster_size > 0),  -- qcow2 cluster / VHD block
    data_path       TEXT,                          -- file holding the layer's data when not the image itself
    PRIMARY KEY (scan_id, depth)
) WITHOUT ROWID;

-- The composed allocation map of a scan, as packed runs of consecutive extents.
-- Each row covers [start, start + length) of the guest disk exactly; rows of a scan tile [0, virtual_size).
-- `runs` holds extent_count extents (see ExtentRunCodec); the totals make sums answerable in SQL.
CREATE TABLE extent_chunks (
    scan_id         INTEGER NOT NULL REFERENCES scans(id) ON DELETE CASCADE,
    start           INTEGER NOT NULL CHECK (start >= 0),
    length          INTEGER NOT NULL CHECK (length > 0),
    extent_count    INTEGER NOT NULL CHECK (extent_count > 0),
    data_bytes      INTEGER NOT NULL CHECK (data_bytes >= 0),
    own_data_bytes  INTEGER NOT NULL CHECK (own_data_bytes >= 0),
    zero_bytes      INTEGER NOT NULL CHECK (zero_bytes >= 0),
    compressed_bytes INTEGER NOT NULL CHECK (compressed_bytes >= 0),
    runs            BLOB    NOT NULL,
    PRIMARY KEY (scan_id, start)
) WITHOUT ROWID;
