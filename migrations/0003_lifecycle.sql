-- extentdb index schema, version 3: an index that lives for years.
-- Never edit this file once shipped: add a new NNNN_name.sql instead.

-- A rescan whose extents equal an earlier scan's records the scan but stores no second copy: its extents
-- are the chunks of scan `extents_scan_id` (NULL: its own chunks). Retention moves chunks to a surviving
-- scan before deleting their owner, so this always names a scan that holds chunks.
ALTER TABLE scans ADD COLUMN extents_scan_id INTEGER REFERENCES scans(id);
CREATE INDEX scans_by_extents_owner ON scans (extents_scan_id) WHERE extents_scan_id IS NOT NULL;

-- The last failed scan of a path (a corrupt image, an unreadable file); removed by a successful scan,
-- `forget` or `prune`. `list` shows these as "failed" with the message.
CREATE TABLE scan_failures (
    path            TEXT    PRIMARY KEY NOT NULL CHECK (length(path) > 0),
    failed_at_ns    INTEGER NOT NULL,
    message         TEXT    NOT NULL
) WITHOUT ROWID;
