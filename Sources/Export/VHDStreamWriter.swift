import Foundation
import ImageFormats

/// Writes a dynamic (or, with a base, differencing) VHD front to back, so it can go to a pipe
/// (VHD specification: footer copy, dynamic header, parent locators, BAT, blocks, footer).
///
/// ```
/// 0        footer copy (512)
/// 512      dynamic header (1024)
/// 1536     parent locator data (differencing only; 512-byte aligned)
/// ..       BAT (4 bytes per block, padded to 512)
/// ..       blocks in guest order: sector bitmap (512) + 2 MiB data
/// end      footer (512)
/// ```
/// Sectors with data are marked in their block's bitmap; sectors that read as zeros are left unmarked
/// (a dynamic disk reads them as zeros). In a differencing disk, zero sectors that must hide the parent's
/// data are marked and written as zeros; unchanged sectors stay unmarked so the parent shows through.
public struct VHDStreamWriter {
    public static let blockSize: UInt64 = 2 << 20
    /// The VHD format's limit (spec: "2040 GB").
    public static let maximumSize: UInt64 = 2040 << 30
    static let sectorsPerBlock = Int(blockSize / 512)
    /// Footer creator application @28: `tap\0`, what XenServer's blktap (`vhd-util`, tapdisk) writes.
    ///
    /// The specification leaves the field to the writer, but readers key on it: qemu's `vpc` driver sizes a
    /// disk by its CHS geometry (spec appendix "CHS Calculation", which rounds down: a 10 MiB disk reads as
    /// 10,479,616 bytes) unless the creator is one it trusts to mean the footer's current size (`win `,
    /// `qem2`, `d2v `, `CTXS`, `tap\0`). extentdb's VHDs are made for XenServer import, so they claim the
    /// creator XenServer's own tools write and read. The geometry stays the spec's computation.
    public static let creatorApplication: [UInt8] = [0x74, 0x61, 0x70, 0x00]
    /// Footer creator version @32: 1.0. blktap's libvhd gives `tap\0` versions meaning: 0.1 means
    /// little-endian bitmaps, 1.2 and later promise a batmap after the BAT; 1.0 claims neither.
    public static let creatorVersion: UInt32 = 0x0001_0000

    public let plan: ExportPlan
    public let reader: GuestReader
    /// For a differencing disk: the parent's locator paths (relative and absolute) and identity.
    public let parent: Parent?

    /// What a differencing disk's dynamic header says about its parent (spec "Dynamic Disk Header Format":
    /// parent unique id @40, parent time stamp @56, parent unicode name @64, parent locator entries @576).
    public struct Parent {
        /// The parent footer's unique id, which readers check before trusting what a locator finds.
        public var uniqueID: [UInt8]
        /// The parent's modification time, seconds since 2000-01-01 UTC.
        public var timestamp: UInt32
        /// The parent's file name (parent unicode name, UTF-16 big-endian).
        public var name: String
        /// The reference the W2ru and MacX locators record, with `/` separators: normally relative to the
        /// child's directory (`../base/parent.vhd`), so that the pair survives being moved together.
        public var relativePath: String
        /// The parent's absolute path, for the W2ku locator.
        public var absolutePath: String

        public init(uniqueID: [UInt8], timestamp: UInt32, name: String, relativePath: String, absolutePath: String) {
            self.uniqueID = uniqueID
            self.timestamp = timestamp
            self.name = name
            self.relativePath = relativePath
            self.absolutePath = absolutePath
        }
    }

    public init(plan: ExportPlan, reader: GuestReader, parent: Parent?) throws {
        guard plan.virtualSize <= Self.maximumSize else {
            throw ExportError.plan("\(plan.virtualSize) bytes is over the VHD format's limit of 2040 GiB; export as qcow2 or raw instead")
        }
        self.plan = plan
        self.reader = reader
        self.parent = parent
    }

    /// Sectors a block marks: data always; zeros only where they hide a parent.
    func marks(_ role: ExportPlan.Role) -> Bool {
        switch role {
        case .data: return true
        case .zero: return parent != nil
        case .unchanged: return false
        }
    }

    public func export(to output: ExportOutput) throws {
        let size = (plan.virtualSize + 511) / 512 * 512
        let blockCount = Int((size + Self.blockSize - 1) / Self.blockSize)
        // Pass 1: which blocks carry marked sectors.
        var allocated = [Bool](repeating: false, count: blockCount)
        let cursor = plan.cursor()
        while let extent = try cursor.next() {
            guard marks(plan.role(of: extent)) else { continue }
            let first = Int(extent.start / Self.blockSize)
            let last = Int((extent.end - 1) / Self.blockSize)
            for block in first...last { allocated[block] = true }
        }
        let locators = parent.map { Self.locators(for: $0) } ?? []
        let locatorBytes = locators.reduce(0) { $0 + ($1.data.count + 511) / 512 * 512 }
        let tableOffset = UInt64(1536 + locatorBytes)
        let tableBytes = (blockCount * 4 + 511) / 512 * 512
        // Footer copy, header, locators, BAT, (bitmap + data) per allocated block, footer: all written whole.
        let blockBytes = UInt64(allocated.lazy.filter { $0 }.count) * (512 + Self.blockSize)
        output.announce(total: 512 + 1024 + UInt64(locatorBytes) + UInt64(tableBytes) + blockBytes + 512)
        let diskID = (0..<16).map { _ in UInt8.random(in: 0...255) }
        let footer = makeFooter(size: size, diskID: diskID)
        try output.write(footer)
        try output.write(makeHeader(tableOffset: tableOffset, blockCount: blockCount, locators: locators))
        for locator in locators {
            var padded = locator.data
            padded += [UInt8](repeating: 0, count: (512 - padded.count % 512) % 512)
            try output.write(padded)
        }
        var bat = [UInt8](repeating: 0xFF, count: tableBytes)
        var nextSector = (tableOffset + UInt64(tableBytes)) / 512
        for block in 0..<blockCount where allocated[block] {
            put32(&bat, at: block * 4, UInt32(nextSector))
            nextSector += 1 + Self.blockSize / 512
        }
        for index in (blockCount * 4)..<tableBytes { bat[index] = 0 }
        try output.write(bat)
        // Pass 2: blocks.
        let stream = GuestStream(plan: plan, reader: reader)
        let data = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(Self.blockSize), alignment: 4096)
        defer { data.deallocate() }
        var bitmap = [UInt8](repeating: 0, count: 512)
        let marking = plan.cursor()
        var pending = try marking.next()
        for block in 0..<blockCount where allocated[block] {
            let blockStart = UInt64(block) * Self.blockSize
            let blockEnd = min(blockStart + Self.blockSize, size)
            for index in bitmap.indices { bitmap[index] = 0 }
            data.initializeMemory(as: UInt8.self, repeating: 0)
            while let extent = pending, extent.start < blockEnd {
                if extent.end > blockStart, marks(plan.role(of: extent)) {
                    let from = max(extent.start, blockStart)
                    let to = min(extent.end, blockEnd)
                    let firstSector = Int((from - blockStart) / 512)
                    let lastSector = Int((to - blockStart + 511) / 512)
                    for sector in firstSector..<lastSector { bitmap[sector >> 3] |= 0x80 >> UInt8(sector & 7) }
                    if plan.role(of: extent) == .data {
                        try stream.fill(
                            from: from, into: UnsafeMutableRawBufferPointer(rebasing: data[Int(from - blockStart)..<Int(to - blockStart)]))
                    }
                }
                if extent.end > blockEnd { break }
                pending = try marking.next()
            }
            try output.write(bitmap)
            try output.write(UnsafeRawBufferPointer(data))
        }
        try output.write(footer)
    }

    /// Seconds since 2000-01-01 00:00:00 UTC, the VHD epoch.
    public static func vhdTimestamp(_ date: Date = Date()) -> UInt32 {
        UInt32(clamping: Int64(date.timeIntervalSince1970) - 946_684_800)
    }

    func makeFooter(size: UInt64, diskID: [UInt8]) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: 512)
        bytes.replaceSubrange(0..<8, with: VHDFooter.cookie)
        put32(&bytes, at: 8, 2)
        put32(&bytes, at: 12, 0x0001_0000)
        put(&bytes, at: 16, 512)
        put32(&bytes, at: 24, Self.vhdTimestamp())
        bytes.replaceSubrange(28..<32, with: Self.creatorApplication)
        put32(&bytes, at: 32, Self.creatorVersion)
        bytes.replaceSubrange(36..<40, with: Array("Wi2k".utf8))
        put(&bytes, at: 40, size)
        put(&bytes, at: 48, size)
        let geometry = VHDGeometry(size: size)
        put16(&bytes, at: 56, geometry.cylinders)
        bytes[58] = geometry.heads
        bytes[59] = geometry.sectorsPerTrack
        put32(&bytes, at: 60, parent == nil ? 3 : 4)
        bytes.replaceSubrange(68..<84, with: diskID)
        put32(&bytes, at: 64, VHDChecksum.compute(bytes[...], checksumAt: 64))
        return bytes
    }

    func makeHeader(tableOffset: UInt64, blockCount: Int, locators: [(code: String, data: [UInt8])]) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: 1024)
        bytes.replaceSubrange(0..<8, with: VHDDynamicHeader.cookie)
        put(&bytes, at: 8, 0xFFFF_FFFF_FFFF_FFFF)
        put(&bytes, at: 16, tableOffset)
        put32(&bytes, at: 24, 0x0001_0000)
        put32(&bytes, at: 28, UInt32(blockCount))
        put32(&bytes, at: 32, UInt32(Self.blockSize))
        if let parent {
            bytes.replaceSubrange(40..<56, with: parent.uniqueID)
            put32(&bytes, at: 56, parent.timestamp)
            let name = parent.name.utf16.prefix(255).flatMap { [UInt8(truncatingIfNeeded: $0 >> 8), UInt8(truncatingIfNeeded: $0)] }
            bytes.replaceSubrange(64..<(64 + name.count), with: name)
            var dataOffset: UInt64 = 1536
            for (index, locator) in locators.enumerated() {
                let entry = 576 + index * 24
                bytes.replaceSubrange(entry..<(entry + 4), with: Array(locator.code.utf8))
                let space = (locator.data.count + 511) / 512
                put32(&bytes, at: entry + 4, UInt32(space))
                put32(&bytes, at: entry + 8, UInt32(locator.data.count))
                put(&bytes, at: entry + 16, dataOffset)
                dataOffset += UInt64(space * 512)
            }
        }
        put32(&bytes, at: 36, VHDChecksum.compute(bytes[...], checksumAt: 36))
        return bytes
    }
}

/// The CHS geometry the VHD specification derives from a disk size ("CHS Calculation").
struct VHDGeometry {
    var cylinders: UInt16
    var heads: UInt8
    var sectorsPerTrack: UInt8

    init(size: UInt64) {
        var totalSectors = size / 512
        if totalSectors > 65535 * 16 * 255 { totalSectors = 65535 * 16 * 255 }
        var sectors: UInt64
        var heads: UInt64
        var cylinderTimesHeads: UInt64
        if totalSectors >= 65535 * 16 * 63 {
            sectors = 255
            heads = 16
            cylinderTimesHeads = totalSectors / sectors
        } else {
            sectors = 17
            cylinderTimesHeads = totalSectors / sectors
            heads = max((cylinderTimesHeads + 1023) / 1024, 4)
            if cylinderTimesHeads >= heads * 1024 || heads > 16 {
                sectors = 31
                heads = 16
                cylinderTimesHeads = totalSectors / sectors
            }
            if cylinderTimesHeads >= heads * 1024 {
                sectors = 63
                heads = 16
                cylinderTimesHeads = totalSectors / sectors
            }
        }
        cylinders = UInt16(clamping: cylinderTimesHeads / heads)
        self.heads = UInt8(heads)
        sectorsPerTrack = UInt8(sectors)
    }
}
