import Foundation
import ImageFormats
import ImageIO

/// VHD-specific facts shown by `info` and stored in the index.
public struct VHDDetails: Sendable, Codable, Equatable {
    public var diskType: String
    public var creatorApplication: String
    public var creatorVersion: String
    public var creatorHostOS: String
    public var uniqueID: String
    public var timestamp: UInt32
    public var originalSize: UInt64
    public var geometry: String
    public var savedState: Bool
    /// The footer at the end of the file failed its cookie or checksum and the copy at offset 0 was used.
    public var usedFooterCopy: Bool
    public var footerChecksumOK: Bool
    public var headerChecksumOK: Bool?
    public var blockSize: UInt64?
    public var batEntries: UInt32?
    public var batOffset: UInt64?
    public var parentUniqueID: String?
    public var parentName: String?
    public var parentLocators: [LocatorSummary]?

    // Explicit keys: the index stores snake_case JSON, and "ID"/"OK" would not survive the round trip.
    enum CodingKeys: String, CodingKey {
        case diskType, creatorApplication, creatorVersion, creatorHostOS = "creatorHostOs", uniqueID = "uniqueId"
        case timestamp, originalSize, geometry, savedState, usedFooterCopy
        case footerChecksumOK = "footerChecksumOk", headerChecksumOK = "headerChecksumOk"
        case blockSize, batEntries, batOffset, parentUniqueID = "parentUniqueId", parentName, parentLocators
    }
}

public struct LocatorSummary: Sendable, Codable, Equatable {
    public var code: String
    public var path: String?
    public var resolvedPath: String?
}

/// Reads one VHD file: footer (with fallback to the copy at 0), dynamic header, BAT, sector bitmaps.
///
/// Only metadata is read: the BAT and one bitmap per allocated block (adjacent bitmaps in one read);
/// block data is never touched.
struct VHDLayerReader {
    let source: FileBlockSource
    let footer: VHDFooter
    let header: VHDDynamicHeader?
    let usedFooterCopy: Bool
    /// First bytes of the file hashed for the identity check: footer copy and header.
    let headerBytes: [UInt8]

    /// Locator paths longer than this are refused (a path, not a payload).
    static let maxLocatorBytes = Limits.VHD.maxLocatorBytes

    init(source: FileBlockSource) throws {
        self.source = source
        let size = source.size
        let path = source.path
        (footer, header, usedFooterCopy, headerBytes) = try attributing(to: path) {
            guard size >= 512 else {
                throw FormatError.truncated(field: "VHD footer", offset: 0, needed: 512, available: size)
            }
            let tail = try source.readExactly(at: size - 512, count: 512, field: "VHD footer")
            var footer: VHDFooter
            var usedCopy = false
            do {
                footer = try VHDFooter(parsing: tail[...], fileOffset: size - 512)
            } catch {
                // Dynamic and differencing disks keep a copy at offset 0 (spec: "Hard Disk Footer Format").
                let head = try source.readExactly(at: 0, count: 512, field: "VHD footer copy")
                guard let copy = try? VHDFooter(parsing: head[...], fileOffset: 0), copy.diskType != .fixed else { throw error }
                footer = copy
                usedCopy = true
            }
            guard footer.diskType != .fixed else {
                guard footer.currentSize <= size - 512 else {
                    throw FormatError.truncated(field: "VHD fixed disk data", offset: 0, needed: footer.currentSize, available: size - 512)
                }
                return (footer, nil, false, tail)
            }
            let headerOffset = footer.dataOffset
            guard headerOffset <= size, size - headerOffset >= UInt64(VHDDynamicHeader.size) else {
                throw FormatError.outOfBounds(
                    field: "VHD footer data offset", offset: (usedCopy ? 0 : size - 512) + 16, value: headerOffset, limit: size)
            }
            let headerBytes = try source.readExactly(at: headerOffset, count: VHDDynamicHeader.size, field: "VHD dynamic header")
            let header = try VHDDynamicHeader(parsing: headerBytes[...], fileOffset: headerOffset)
            try header.validateTable(currentSize: footer.currentSize, fileSize: size, headerOffset: headerOffset)
            return (footer, header, usedCopy, tail + headerBytes)
        }
    }

    /// The parent locators decoded to paths (W2ru, W2ku, MacX), each bounded by the file.
    func locatorPaths() throws -> [(code: String, path: String)] {
        guard let header else { return [] }
        var result: [(String, String)] = []
        for locator in header.locators {
            guard ["W2ru", "W2ku", "MacX"].contains(locator.code), locator.dataLength > 0 else { continue }
            try attributing(to: source.path) {
                guard locator.dataLength <= Self.maxLocatorBytes else {
                    throw FormatError.outOfBounds(
                        field: "VHD parent locator platform data length", offset: locator.entryOffset + 8,
                        value: UInt64(locator.dataLength), limit: UInt64(Self.maxLocatorBytes))
                }
                let end = locator.dataOffset.addingReportingOverflow(UInt64(locator.dataLength))
                guard !end.overflow, end.partialValue <= source.size else {
                    throw FormatError.outOfBounds(
                        field: "VHD parent locator platform data offset", offset: locator.entryOffset + 16, value: locator.dataOffset,
                        limit: source.size)
                }
                let data = try source.readExactly(at: locator.dataOffset, count: Int(locator.dataLength), field: "VHD parent locator data")
                if let path = VHDText.locatorPath(code: locator.code, data: data[...]), !path.isEmpty {
                    result.append((locator.code, path))
                }
            }
        }
        return result
    }

    /// This layer's own runs: marked sectors are data, everything else is left to the parent (or zeros).
    /// - Parameter progress: told the sector bitmaps to read, then each window of them read.
    func layerMap(progress: ScanProgress? = nil) throws -> LayerMap {
        let virtualSize = footer.currentSize
        guard let header else {
            // Fixed disk: the data area is the guest disk, mapped like a raw file (holes read as zeros);
            // the footer after it is not.
            let segments = try attributing(to: source.path) { try source.dataSegments() }
            return RawLayerMapper.map(size: virtualSize, dataSegments: RawDisk.segments(segments, clippedTo: virtualSize))
        }
        return try attributing(to: source.path) { try mapDynamic(header: header, virtualSize: virtualSize, progress: progress) }
    }

    private func mapDynamic(header: VHDDynamicHeader, virtualSize: UInt64, progress: ScanProgress?) throws -> LayerMap {
        let blockSize = UInt64(header.blockSize)
        let blockCount = Int((virtualSize + blockSize - 1) / blockSize)
        let bat = try source.readExactly(at: header.tableOffset, count: blockCount * 4, field: "VHD block allocation table")
        let metadata = metadataRanges(header: header, usedEntries: blockCount)
        let fileEnd = source.size - 512
        // Allocated blocks: (guest block index, bitmap file offset), checked before anything is read.
        var allocated: [(block: Int, bitmapOffset: UInt64)] = []
        try bat.withUnsafeBytes { raw in
            for index in 0..<blockCount {
                let entry = UInt32(bigEndian: raw.loadUnaligned(fromByteOffset: index * 4, as: UInt32.self))
                guard entry != 0xFFFF_FFFF else { continue }
                let bitmapOffset = UInt64(entry) * 512
                let entryOffset = header.tableOffset + UInt64(index) * 4
                guard bitmapOffset + header.bitmapBytes <= fileEnd else {
                    throw FormatError.outOfBounds(field: "VHD BAT entry \(index)", offset: entryOffset, value: bitmapOffset, limit: fileEnd)
                }
                let blockRange = bitmapOffset..<(bitmapOffset + header.bitmapBytes + blockSize)
                if let clash = metadata.first(where: { $0.range.overlaps(blockRange) }) {
                    throw FormatError.invalid(
                        field: "VHD BAT entry \(index)", offset: entryOffset, reason: "block at \(bitmapOffset) overlaps the \(clash.name)")
                }
                allocated.append((index, bitmapOffset))
            }
        }
        try Self.checkBlocksAreDisjoint(allocated, blockBytes: header.bitmapBytes + blockSize, tableOffset: header.tableOffset)
        progress?.expect(allocated.count)
        var builder = ExtentListBuilder()
        var nextBlock = 0
        // Bitmaps are read and decoded a window of blocks at a time, so memory stays bounded.
        let window = Limits.VHD.bitmapWindowBlocks
        var bitmaps = BitmapSet(storage: [], bytes: Int(header.bitmapBytes))
        var runs: [VHDBitmap.Run] = []
        for (position, block) in allocated.enumerated() {
            let slot = position % window
            if slot == 0 {
                let batch = allocated[position..<min(position + window, allocated.count)]
                bitmaps = try readBitmaps(batch.map(\.bitmapOffset), bytes: Int(header.bitmapBytes))
                try progress?.advance(batch.count, extents: builder.extents.count)
            }
            if block.block > nextBlock {
                let start = UInt64(nextBlock) * blockSize
                let end = min(UInt64(block.block) * blockSize, virtualSize)
                builder.append(Extent(start: start, length: end - start, depth: 0, present: false, zero: false, data: false))
            }
            let blockStart = UInt64(block.block) * blockSize
            let sectors = Int((min(blockStart + blockSize, virtualSize) - blockStart + 511) / 512)
            let dataOffset = block.bitmapOffset + header.bitmapBytes
            bitmaps.withBitmap(slot) { bitmap in VHDBitmap.runs(bitmap, sectors: sectors, into: &runs) }
            for run in runs {
                let start = blockStart + UInt64(run.first) * 512
                let length = min(UInt64(run.count) * 512, virtualSize - start)
                guard run.marked else {
                    builder.append(Extent(start: start, length: length, depth: 0, present: false, zero: false, data: false))
                    continue
                }
                let host = dataOffset + UInt64(run.first) * 512
                guard host + UInt64(run.count) * 512 <= fileEnd else {
                    throw FormatError.truncated(
                        field: "VHD block \(block.block) data", offset: host, needed: UInt64(run.count) * 512,
                        available: fileEnd > host ? fileEnd - host : 0)
                }
                builder.append(Extent(start: start, length: length, depth: 0, present: true, zero: false, data: true, offset: host))
            }
            nextBlock = block.block + 1
        }
        if nextBlock < blockCount {
            let start = UInt64(nextBlock) * blockSize
            builder.append(Extent(start: start, length: virtualSize - start, depth: 0, present: false, zero: false, data: false))
        }
        return LayerMap(virtualSize: virtualSize, runs: builder.extents)
    }

    /// Refuses a BAT whose blocks share file space (two entries naming one block, or overlapping blocks):
    /// in a valid disk every block has its own bitmap and data, so a shared one is corruption, and would let
    /// a small file describe far more data than it holds.
    static func checkBlocksAreDisjoint(_ blocks: [(block: Int, bitmapOffset: UInt64)], blockBytes: UInt64, tableOffset: UInt64) throws {
        let byOffset = blocks.sorted { $0.bitmapOffset < $1.bitmapOffset }
        for (previous, next) in zip(byOffset, byOffset.dropFirst()) where next.bitmapOffset < previous.bitmapOffset + blockBytes {
            throw FormatError.invalid(
                field: "VHD BAT entry \(next.block)", offset: tableOffset + UInt64(next.block) * 4,
                reason: next.bitmapOffset == previous.bitmapOffset
                    ? "names the same block (sector \(next.bitmapOffset / 512)) as entry \(previous.block)"
                    : "block at \(next.bitmapOffset) overlaps the block of entry \(previous.block) at \(previous.bitmapOffset)")
        }
    }

    /// File ranges that hold metadata, which no block may overlap. The BAT counts only the entries the
    /// disk uses: `max_table_entries` may be larger and is not trusted for the layout.
    private func metadataRanges(header: VHDDynamicHeader, usedEntries: Int) -> [(name: String, range: Range<UInt64>)] {
        let size = source.size
        let batEnd = header.tableOffset + UInt64(usedEntries) * 4
        var ranges: [(String, Range<UInt64>)] = [
            ("footer copy", 0..<512),
            ("dynamic header", footer.dataOffset..<(footer.dataOffset + UInt64(VHDDynamicHeader.size))),
            ("block allocation table", header.tableOffset..<max(batEnd, header.tableOffset + 1)),
        ]
        for locator in header.locators where locator.dataLength > 0 && locator.dataOffset < size {
            let end = min(locator.dataOffset + UInt64(locator.dataLength), size)
            ranges.append(("parent locator \(locator.code)", locator.dataOffset..<end))
        }
        return ranges
    }

    /// Reads the bitmaps at `offsets` (in block order), merging reads of bitmaps that lie close together in
    /// the file, with two threads issuing the reads (each bitmap is its own small pread otherwise).
    private func readBitmaps(_ offsets: [UInt64], bytes: Int) throws -> BitmapSet {
        let order = offsets.indices.sorted { offsets[$0] < offsets[$1] }
        // Group bitmaps into reads: neighbours at most 64 KiB apart, at most 4 MiB per read.
        var groups: [Range<Int>] = []
        var index = 0
        while index < order.count {
            var last = index
            while last + 1 < order.count, offsets[order[last + 1]] - offsets[order[last]] <= 64 * 1024,
                offsets[order[last + 1]] + UInt64(bytes) - offsets[order[index]] <= 4 << 20
            {
                last += 1
            }
            groups.append(index..<(last + 1))
            index = last + 1
        }
        let readGroups = groups
        var storage = [UInt8](repeating: 0, count: offsets.count * bytes)
        let failures = FirstError()
        let workers = readGroups.count > 64 ? 2 : 1
        storage.withUnsafeMutableBytes { raw in
            let shared = SharedBuffer(raw)
            DispatchQueue.concurrentPerform(iterations: workers) { worker in
                for groupIndex in stride(from: worker, to: readGroups.count, by: workers) where !failures.isSet {
                    do {
                        try readGroup(readGroups[groupIndex], order: order, offsets: offsets, bytes: bytes, into: shared.buffer)
                    } catch {
                        failures.record(error)
                    }
                }
            }
        }
        if let error = failures.error { throw error }
        return BitmapSet(storage: storage, bytes: bytes)
    }

    /// Reads one group of nearby bitmaps (one pread) into their slots of `buffer`.
    private func readGroup(
        _ group: Range<Int>, order: [Int], offsets: [UInt64], bytes: Int, into buffer: UnsafeMutableRawBufferPointer
    ) throws {
        let first = offsets[order[group.lowerBound]]
        if group.count == 1 {
            let slot = order[group.lowerBound]
            let target = UnsafeMutableRawBufferPointer(rebasing: buffer[(slot * bytes)..<((slot + 1) * bytes)])
            let got = try source.read(at: first, into: target)
            guard got == bytes else {
                throw FormatError.truncated(field: "VHD sector bitmap", offset: first, needed: UInt64(bytes), available: UInt64(got))
            }
            return
        }
        let span = Int(offsets[order[group.upperBound - 1]] - first) + bytes
        let chunk = try source.readExactly(at: first, count: span, field: "VHD sector bitmaps")
        chunk.withUnsafeBytes { raw in
            for position in group {
                let slot = order[position]
                let from = Int(offsets[slot] - first)
                UnsafeMutableRawBufferPointer(rebasing: buffer[(slot * bytes)..<((slot + 1) * bytes)])
                    .copyMemory(from: UnsafeRawBufferPointer(rebasing: raw[from..<(from + bytes)]))
            }
        }
    }
}

/// A buffer that worker threads fill at disjoint slots.
private struct SharedBuffer: @unchecked Sendable {
    let buffer: UnsafeMutableRawBufferPointer
    init(_ buffer: UnsafeMutableRawBufferPointer) { self.buffer = buffer }
}

/// Bitmaps of the allocated blocks, in block order.
struct BitmapSet {
    let storage: [UInt8]
    let bytes: Int

    func withBitmap(_ slot: Int, _ body: (UnsafeRawBufferPointer) -> Void) {
        storage.withUnsafeBytes { raw in
            body(UnsafeRawBufferPointer(rebasing: raw[(slot * bytes)..<((slot + 1) * bytes)]))
        }
    }
}
