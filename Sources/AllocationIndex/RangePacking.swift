import Foundation

/// Sorted, disjoint guest ranges as the index stores them in a blob: little-endian (start, end) u64 pairs
/// (bitmaps' dirty ranges, digest scans' zero ranges).
public enum RangePacking {
    public static func pack(_ ranges: [Range<UInt64>]) -> Data {
        var data = Data(capacity: ranges.count * 16)
        for range in ranges {
            withUnsafeBytes(of: range.lowerBound.littleEndian) { data.append(contentsOf: $0) }
            withUnsafeBytes(of: range.upperBound.littleEndian) { data.append(contentsOf: $0) }
        }
        return data
    }

    /// Unpacks stored ranges; nil when the blob is not whole pairs of ordered, increasing, non-empty ranges.
    public static func unpack(_ data: Data) -> [Range<UInt64>]? {
        guard data.count % 16 == 0 else { return nil }
        var ranges: [Range<UInt64>] = []
        ranges.reserveCapacity(data.count / 16)
        var previous: UInt64 = 0
        var valid = true
        data.withUnsafeBytes { raw in
            for index in stride(from: 0, to: raw.count, by: 16) {
                let start = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: index, as: UInt64.self))
                let end = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: index + 8, as: UInt64.self))
                guard start < end, start >= previous else {
                    valid = false
                    return
                }
                previous = end
                ranges.append(start..<end)
            }
        }
        return valid ? ranges : nil
    }
}

/// 64-bit words as the index stores them in a blob: little-endian u64s (digest scans' chunk sources).
public enum WordPacking {
    public static func pack(_ values: [UInt64]) -> Data {
        var data = Data(capacity: values.count * 8)
        for value in values { withUnsafeBytes(of: value.littleEndian) { data.append(contentsOf: $0) } }
        return data
    }

    public static func unpack(_ data: Data) -> [UInt64] {
        data.withUnsafeBytes { raw in
            stride(from: 0, to: raw.count - raw.count % 8, by: 8).map {
                UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: $0, as: UInt64.self))
            }
        }
    }
}
