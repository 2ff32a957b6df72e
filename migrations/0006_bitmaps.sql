-- qcow2 persistent dirty bitmaps (qcow2.txt, "Bitmaps"), recorded with each scan of an image: what
-- `changes --bitmap NAME` answers from. `ranges` packs the dirty guest ranges, merged and in order, as
-- little-endian (start, end) u64 pairs.
CREATE TABLE scan_bitmaps (
    scan_id      INTEGER NOT NULL REFERENCES scans(id) ON DELETE CASCADE,
    name         TEXT    NOT NULL CHECK (length(name) > 0),
    granularity  INTEGER NOT NULL CHECK (granularity >= 512),
    in_use       INTEGER NOT NULL CHECK (in_use IN (0, 1)),
    auto         INTEGER NOT NULL CHECK (auto IN (0, 1)),
    range_count  INTEGER NOT NULL CHECK (range_count >= 0),
    dirty_bytes  INTEGER NOT NULL CHECK (dirty_bytes >= 0),
    ranges       BLOB    NOT NULL CHECK (length(ranges) = 16 * range_count),
    PRIMARY KEY (scan_id, name)
) WITHOUT ROWID;
