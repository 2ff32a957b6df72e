/// The QCOW2 image header (qemu `docs/interop/qcow2.txt`, "Header"), all fields big-endian.
///
/// ```
///  0   magic "QFI\xfb"          4  version (2|3)         8  backing_file_offset
/// 16   backing_file_size       20  cluster_bits          24  size (virtual bytes)
/// 32   crypt_method            36  l1_size               40  l1_table_offset
/// 48   refcount_table_offset   56  refcount_table_clusters
/// 60   nb_snapshots            64  snapshots_offset
/// --- version 3 only ---
/// 72   incompatible_features   80  compatible_features   88  autoclear_features
/// 96   refcount_order         100  header_length        104  compression_type (if header_length > 104)
/// then header extensions (type u32, length u32, data padded to 8) up to type 0
/// ```
public struct QCOW2Header: Sendable, Equatable {
    public static let magic: UInt32 = 0x5146_49FB
    /// Bytes of the version 2 header; version 3 adds fields up to `header_length`.
    public static let version2Length = 72
    public static let version3MinimumLength = 104
    /// Bounds from ``Limits/QCOW2``: 512 B to 2 MiB clusters, qemu's L1, snapshot and name limits.
    public static let minClusterBits = Limits.QCOW2.minClusterBits
    public static let maxClusterBits = Limits.QCOW2.maxClusterBits
    public static let maxL1Bytes = Limits.QCOW2.maxL1TableBytes
    public static let maxSnapshots = Limits.QCOW2.maxSnapshots
    public static let maxBackingNameLength = Limits.QCOW2.maxBackingNameLength

    /// Incompatible feature bits (header bytes 72-79).
    public struct IncompatibleFeatures: OptionSet, Sendable, Equatable {
        public let rawValue: UInt64
        public init(rawValue: UInt64) { self.rawValue = rawValue }
        public static let dirty = Self(rawValue: 1 << 0)
        public static let corrupt = Self(rawValue: 1 << 1)
        public static let externalDataFile = Self(rawValue: 1 << 2)
        public static let compressionType = Self(rawValue: 1 << 3)
        public static let extendedL2 = Self(rawValue: 1 << 4)
        public static let known: Self = [.dirty, .corrupt, .externalDataFile, .compressionType, .extendedL2]
    }

    /// Autoclear feature bits (header bytes 88-95).
    public struct AutoclearFeatures: OptionSet, Sendable, Equatable {
        public let rawValue: UInt64
        public init(rawValue: UInt64) { self.rawValue = rawValue }
        public static let bitmaps = Self(rawValue: 1 << 0)
        public static let rawExternalData = Self(rawValue: 1 << 1)
    }

    public enum CompressionType: UInt8, Sendable, Equatable {
        case zlib = 0
        case zstd = 1
    }

    public var version: UInt32
    public var backingFileOffset: UInt64
    public var backingFileSize: UInt32
    public var clusterBits: UInt32
    public var size: UInt64
    public var cryptMethod: UInt32
    public var l1Size: UInt32
    public var l1TableOffset: UInt64
    public var refcountTableOffset: UInt64
    public var refcountTableClusters: UInt32
    public var nbSnapshots: UInt32
    public var snapshotsOffset: UInt64
    public var incompatibleFeatures: IncompatibleFeatures
    public var compatibleFeatures: UInt64
    public var autoclearFeatures: AutoclearFeatures
    public var refcountOrder: UInt32
    public var headerLength: UInt32
    public var compressionType: CompressionType

    public var clusterSize: UInt64 { 1 << UInt64(clusterBits) }
    public var hasExtendedL2: Bool { incompatibleFeatures.contains(.extendedL2) }
    /// Bytes of one L2 entry: 8, or 16 with extended L2 entries.
    public var l2EntrySize: UInt64 { hasExtendedL2 ? 16 : 8 }
    public var l2Entries: UInt64 { clusterSize / l2EntrySize }
    /// Guest bytes one L2 table maps.
    public var bytesPerL2Table: UInt64 { l2Entries * clusterSize }
    /// Smallest L1 size that maps the whole virtual disk.
    public var requiredL1Entries: UInt64 {
        let perTable = bytesPerL2Table
        return size / perTable + (size % perTable == 0 ? 0 : 1)
    }

    /// Parses and validates the fixed header.
    ///
    /// - Parameters:
    ///   - reader: positioned at byte 0 of the file; it holds at least the header's first cluster, or the
    ///     whole file when shorter.
    ///   - fileSize: the image file's length, to bound every offset and count before it is used.
    /// - Throws: ``FormatError`` naming the field and its offset.
    public init(parsing reader: inout ByteReader, fileSize: UInt64) throws(FormatError) {
        let magic = try reader.read(UInt32.self, field: "qcow2 header magic")
        guard magic == Self.magic else { throw .badMagic(field: "qcow2 header magic", found: UInt64(magic), offset: 0) }
        version = try reader.read(UInt32.self, field: "qcow2 header version")
        guard version == 2 || version == 3 else {
            throw .unsupported(field: "qcow2 header version", offset: 4, feature: "qcow2 version \(version)")
        }
        backingFileOffset = try reader.read(UInt64.self, field: "backing_file_offset")
        backingFileSize = try reader.read(UInt32.self, field: "backing_file_size")
        clusterBits = try reader.read(UInt32.self, field: "cluster_bits")
        size = try reader.read(UInt64.self, field: "size")
        cryptMethod = try reader.read(UInt32.self, field: "crypt_method")
        l1Size = try reader.read(UInt32.self, field: "l1_size")
        l1TableOffset = try reader.read(UInt64.self, field: "l1_table_offset")
        refcountTableOffset = try reader.read(UInt64.self, field: "refcount_table_offset")
        refcountTableClusters = try reader.read(UInt32.self, field: "refcount_table_clusters")
        nbSnapshots = try reader.read(UInt32.self, field: "nb_snapshots")
        snapshotsOffset = try reader.read(UInt64.self, field: "snapshots_offset")
        if version >= 3 {
            incompatibleFeatures = IncompatibleFeatures(rawValue: try reader.read(UInt64.self, field: "incompatible_features"))
            compatibleFeatures = try reader.read(UInt64.self, field: "compatible_features")
            autoclearFeatures = AutoclearFeatures(rawValue: try reader.read(UInt64.self, field: "autoclear_features"))
            refcountOrder = try reader.read(UInt32.self, field: "refcount_order")
            headerLength = try reader.read(UInt32.self, field: "header_length")
            if headerLength > 104 {
                let raw = try reader.read(UInt8.self, field: "compression_type")
                guard let type = CompressionType(rawValue: raw) else {
                    throw .unsupported(field: "compression_type", offset: 104, feature: "compression type \(raw)")
                }
                compressionType = type
            } else {
                compressionType = .zlib
            }
        } else {
            incompatibleFeatures = []
            compatibleFeatures = 0
            autoclearFeatures = []
            refcountOrder = 4
            headerLength = UInt32(Self.version2Length)
            compressionType = .zlib
        }
        try validate(fileSize: fileSize)
    }

    private func validate(fileSize: UInt64) throws(FormatError) {
        guard clusterBits >= Self.minClusterBits, clusterBits <= Self.maxClusterBits else {
            throw .outOfBounds(field: "cluster_bits", offset: 20, value: UInt64(clusterBits), limit: UInt64(Self.maxClusterBits))
        }
        if version >= 3 {
            guard headerLength >= Self.version3MinimumLength, UInt64(headerLength) <= clusterSize else {
                throw .invalid(field: "header_length", offset: 100, reason: "\(headerLength) is not a valid v3 header length")
            }
            guard refcountOrder <= 6 else {
                throw .outOfBounds(field: "refcount_order", offset: 96, value: UInt64(refcountOrder), limit: 6)
            }
            if incompatibleFeatures.contains(.corrupt) {
                throw .invalid(
                    field: "incompatible_features", offset: 72,
                    reason: "image is marked corrupt (bit 1); repair it with 'qemu-img check -r all'")
            }
            let unknown = incompatibleFeatures.subtracting(.known)
            guard unknown.isEmpty else {
                throw .unsupported(
                    field: "incompatible_features", offset: 72,
                    feature: "incompatible feature bits 0x\(String(unknown.rawValue, radix: 16))")
            }
            if incompatibleFeatures.contains(.compressionType) == (compressionType == .zlib) && headerLength > 104 {
                throw .invalid(field: "compression_type", offset: 104, reason: "compression type bit 3 and compression_type field disagree")
            }
        }
        guard size <= UInt64(Int64.max) else {
            throw .outOfBounds(field: "size", offset: 24, value: size, limit: UInt64(Int64.max))
        }
        guard UInt64(l1Size) * 8 <= Self.maxL1Bytes else {
            throw .outOfBounds(field: "l1_size", offset: 36, value: UInt64(l1Size), limit: Self.maxL1Bytes / 8)
        }
        guard UInt64(l1Size) >= requiredL1Entries else {
            throw .invalid(field: "l1_size", offset: 36, reason: "\(l1Size) entries cannot map \(size) bytes (needs \(requiredL1Entries))")
        }
        if l1Size > 0 {
            try checkTable(field: "l1_table_offset", headerOffset: 40, offset: l1TableOffset, bytes: UInt64(l1Size) * 8, fileSize: fileSize)
        }
        guard nbSnapshots <= Self.maxSnapshots else {
            throw .outOfBounds(field: "nb_snapshots", offset: 60, value: UInt64(nbSnapshots), limit: UInt64(Self.maxSnapshots))
        }
        if nbSnapshots > 0 {
            // Each entry is at least 40 bytes: bounded by the file before anything is allocated.
            try checkTable(
                field: "snapshots_offset", headerOffset: 64, offset: snapshotsOffset, bytes: UInt64(nbSnapshots) * 40, fileSize: fileSize)
        }
        if backingFileOffset != 0 {
            guard backingFileSize <= Self.maxBackingNameLength else {
                throw .outOfBounds(
                    field: "backing_file_size", offset: 16, value: UInt64(backingFileSize), limit: UInt64(Self.maxBackingNameLength))
            }
            guard backingFileOffset < clusterSize, backingFileOffset + UInt64(backingFileSize) <= min(clusterSize, fileSize) else {
                throw .outOfBounds(field: "backing_file_offset", offset: 8, value: backingFileOffset, limit: min(clusterSize, fileSize))
            }
        }
    }

    /// Checks that a cluster-aligned table of `bytes` at `offset` lies inside the file.
    public func checkTable(field: String, headerOffset: UInt64, offset: UInt64, bytes: UInt64, fileSize: UInt64) throws(FormatError) {
        guard offset % clusterSize == 0 else {
            throw .invalid(
                field: field, offset: headerOffset, reason: "offset \(offset) is not aligned to the \(clusterSize)-byte cluster size")
        }
        let (end, overflow) = offset.addingReportingOverflow(bytes)
        guard !overflow, end <= fileSize else {
            throw .outOfBounds(field: field, offset: headerOffset, value: offset, limit: fileSize)
        }
    }
}
