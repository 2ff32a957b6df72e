import AllocationIndex
import ImageFormats
import ImageIO

/// A bitmap as `info` lists it (stored with the header metadata).
public struct BitmapSummary: Sendable, Codable, Equatable {
    public var name: String
    public var granularity: UInt64
    public var inUse: Bool
    public var auto: Bool
    public var dirtyBytes: UInt64
}

extension QCOW2LayerReader {
    /// qemu's limit on one bitmap's data (block/qcow2-bitmap.c `BME_MAX_PHYS_SIZE`): 512 MiB.
    static let maxBitmapDataBytes: UInt64 = 0x2000_0000

    /// The image's persistent bitmaps with their dirty ranges; empty without a bitmaps extension, or when
    /// the extension's autoclear bit is clear (another program changed the image: qemu drops the bitmaps).
    ///
    /// - Parameter maximumRanges: the most dirty ranges one bitmap may have (bounded memory).
    func bitmaps(maximumRanges: Int) throws -> [DirtyBitmap] {
        guard let payload = extensions.bitmapsData, header.autoclearFeatures.contains(.bitmaps) else { return [] }
        let path = source.path
        return try attributing(to: path) {
            let clusterSize = header.clusterSize
            let fileSize = source.size
            let ext = try QCOW2BitmapsExtension(
                parsing: payload.bytes, offset: payload.offset, clusterSize: clusterSize, fileSize: fileSize)
            let directory = try source.readExactly(at: ext.directoryOffset, count: Int(ext.directorySize), field: "bitmap directory")
            let entries = try QCOW2BitmapEntry.directory(
                parsing: directory[...], count: ext.count, offset: ext.directoryOffset, clusterSize: clusterSize, virtualSize: header.size,
                fileSize: fileSize)
            return try entries.map { entry in
                let dataSize = entry.dataSize(virtualSize: header.size)
                guard dataSize <= Self.maxBitmapDataBytes else {
                    throw FormatError.outOfBounds(
                        field: "bitmap '\(entry.name)' data size", offset: entry.entryOffset + 8, value: dataSize,
                        limit: Self.maxBitmapDataBytes)
                }
                let tableBytes = try source.readExactly(
                    at: entry.tableOffset, count: Int(entry.tableSize) * 8, field: "bitmap '\(entry.name)' table")
                let table = try QCOW2BitmapTable.decode(
                    tableBytes[...], offset: entry.tableOffset, clusterSize: clusterSize, fileSize: fileSize)
                var ranges: [Range<UInt64>] = []
                let bitsPerCluster = clusterSize * 8
                for (index, item) in table.enumerated() {
                    let firstBit = UInt64(index) * bitsPerCluster
                    let bytes = Int(min(clusterSize, dataSize - UInt64(index) * clusterSize))
                    switch item {
                    case .zeros:
                        continue
                    case .ones:
                        let start = firstBit * entry.granularity
                        QCOW2BitmapTable.append(
                            start..<min(header.size, start + UInt64(bytes) * 8 * entry.granularity), into: &ranges)
                    case .cluster(let offset):
                        let data = try source.readExactly(at: offset, count: bytes, field: "bitmap '\(entry.name)' data")
                        QCOW2BitmapTable.appendDirtyRanges(
                            data[...], firstBit: firstBit, granularity: entry.granularity, virtualSize: header.size, into: &ranges)
                    }
                    guard ranges.count <= maximumRanges else {
                        throw FormatError.outOfBounds(
                            field: "bitmap '\(entry.name)' dirty ranges", offset: entry.tableOffset, value: UInt64(ranges.count),
                            limit: UInt64(maximumRanges))
                    }
                }
                return DirtyBitmap(name: entry.name, granularity: entry.granularity, inUse: entry.inUse, auto: entry.auto, ranges: ranges)
            }
        }
    }
}
