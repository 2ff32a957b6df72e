/// Every bound extentdb puts on what an image may make it read, allocate or follow, in one place.
///
/// Images are untrusted input. Counts and sizes they declare are checked against the file's length before
/// anything is allocated (so memory follows what the file really holds), and against these constants, so a
/// hostile header fails with a ``FormatError`` naming the field, its offset and the limit instead of
/// exhausting memory or time. Where qemu has the same bound the value is qemu's (block/qcow2.h), so every
/// image qemu opens is accepted.
public enum Limits {
    /// Longest backing chain (image, backing file, its backing file, ...) a scan follows.
    public static let chainLength = 256

    /// QCOW2 bounds (qemu `docs/interop/qcow2.txt`, block/qcow2.h).
    public enum QCOW2 {
        /// Smallest and largest `cluster_bits`: 512-byte to 2 MiB clusters (qemu's MIN/MAX_CLUSTER_BITS).
        public static let minClusterBits: UInt32 = 9
        public static let maxClusterBits: UInt32 = 21
        /// Largest active or snapshot L1 table: 32 MiB of entries (qemu's QCOW_MAX_L1_SIZE).
        public static let maxL1TableBytes: UInt64 = 32 << 20
        /// Largest refcount table: 8 MiB (qemu's QCOW_MAX_REFTABLE_SIZE).
        public static let maxRefcountTableBytes: UInt64 = 8 << 20
        /// Most internal snapshots (qemu's QCOW_MAX_SNAPSHOTS).
        public static let maxSnapshots: UInt32 = 65_536
        /// Largest extra data of one snapshot table entry (qemu's QCOW_MAX_SNAPSHOT_EXTRA_DATA).
        public static let maxSnapshotExtraData: UInt32 = 1024
        /// Longest backing file name (the spec's 1023 bytes).
        public static let maxBackingNameLength: UInt32 = 1023
        /// The most dirty ranges one persistent bitmap may yield when no scan limit is set (16 bytes each).
        public static let maxBitmapRanges = 8_000_000
        /// L1 entries read per pread while walking the active table: 512 KiB at a time.
        public static let l1EntriesPerRead = 65_536
    }

    /// VHD bounds (Microsoft "Virtual Hard Disk Image Format Specification").
    public enum VHD {
        /// Largest block size accepted (the spec's default is 2 MiB; larger powers of two exist in the wild).
        public static let maxBlockSize: UInt32 = 1 << 30
        /// Longest parent locator platform data: a path, not a payload.
        public static let maxLocatorBytes: UInt32 = 64 * 1024
        /// Sector bitmaps read and decoded per window of allocated blocks, so memory stays bounded.
        public static let bitmapWindowBlocks = 4096
    }

    /// Export I/O: the most guest data held in memory per read request.
    public enum Export {
        /// Bytes read per request when data is copied through a buffer (raw, qcow2, vhd, xva writers).
        public static let readRequestBytes = 1 << 20
        /// Bytes handed to the kernel per `copy_file_range`/`sendfile` piece.
        public static let kernelCopyPieceBytes: UInt64 = 8 << 20
    }

    public enum Digests {
        /// Chunks one digest scan may cover: 4 Mi chunks of 4 MiB is a 16 TiB disk, whose digests and
        /// fingerprints take 160 MiB. A header claiming a larger disk is refused, not allocated for.
        public static let maximumChunks = 4 << 20
        /// Zero runs one digest scan records; past it the rest of the data is not searched for zeros (the
        /// digests are unaffected), so alternating blocks cannot make it allocate without bound.
        public static let maximumZeroRanges = 4 << 20
    }
}
