-- Content digests (`scan --digests`): the SHA-256 of every chunk of a scan's guest view, in order, as a
-- Proxmox Backup Server client computes them for a fixed-size-chunked disk (4 MiB chunks, the last one
-- short). `sources` holds, per chunk, a 64-bit fingerprint of what supplied it (its extents and the identity
-- of each layer file they come from): a later digest scan keeps a chunk's digest without reading it when
-- its fingerprint is unchanged. `zero_ranges` packs the guest ranges the read found to hold only zero bytes
-- inside stored data, as little-endian (start, end) u64 pairs; exports treat them as zeros, and recording
-- the digests moves their bytes from the scan's data figures to its zero figures (reports count them so).
CREATE TABLE scan_digests (
    scan_id         INTEGER PRIMARY KEY REFERENCES scans(id) ON DELETE CASCADE,
    chunk_size      INTEGER NOT NULL CHECK (chunk_size > 0),
    chunk_count     INTEGER NOT NULL CHECK (chunk_count >= 0),
    digests         BLOB    NOT NULL CHECK (length(digests) = 32 * chunk_count),
    sources         BLOB    NOT NULL CHECK (length(sources) = 8 * chunk_count),
    zero_count      INTEGER NOT NULL CHECK (zero_count >= 0),
    zero_ranges     BLOB    NOT NULL CHECK (length(zero_ranges) = 16 * zero_count),
    zero_data_bytes INTEGER NOT NULL CHECK (zero_data_bytes >= 0),
    own_zero_data_bytes INTEGER NOT NULL CHECK (own_zero_data_bytes >= 0 AND own_zero_data_bytes <= zero_data_bytes),
    bytes_read      INTEGER NOT NULL CHECK (bytes_read >= 0),
    chunks_read     INTEGER NOT NULL CHECK (chunks_read >= 0),
    made_at_ns      INTEGER NOT NULL
);
