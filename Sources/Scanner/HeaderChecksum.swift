import ImageFormats

/// A cheap fingerprint of a file's header bytes (the qcow2 header cluster, the VHD footer and dynamic
/// header, a raw file's first 4 KiB) for the index's freshness check, named by its algorithm.
///
/// Scans record XXH64 (`xxh64:` and 16 hex digits), which hashes 8 bytes a step: a check of a 2 MiB header
/// cluster costs well under a millisecond. Indexes written before 2026-12-07 hold FNV-1a (`fnv1a64:`),
/// which hashes a byte a step (a fifth of the CPU of looking up an unchanged image with 64 KiB clusters);
/// such a record is still compared with FNV-1a, so an upgrade does not make every image look changed, and
/// the next scan of the image records XXH64.
enum HeaderChecksum {
    /// The checksum a scan records.
    static func of(_ bytes: [UInt8]) -> String {
        "xxh64:" + hex(bytes.withUnsafeBytes { XXH64.hash($0) })
    }

    /// Whether `bytes` still give the `recorded` checksum, computed with the algorithm it names.
    static func matches(_ recorded: String, bytes: [UInt8]) -> Bool {
        recorded.hasPrefix(fnvPrefix) ? fnv1a64(bytes) == recorded : of(bytes) == recorded
    }

    static let fnvPrefix = "fnv1a64:"

    /// FNV-1a, 64-bit, as earlier indexes recorded it.
    static func fnv1a64(_ bytes: [UInt8]) -> String {
        fnvPrefix + hex(FNV1a.hash64(bytes))
    }

    private static func hex(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }
}
