import Foundation

/// Builds VHD images byte by byte, following Microsoft's "Virtual Hard Disk Image
/// Format Specification" v1.0 (October 2006). Test support only: it produces the
/// images qemu-img cannot (partial sector bitmaps, garbage in unmarked sectors,
/// differencing disks with parent locators) and deliberately corrupt variants.
///
/// Terms used below ("spec" = the specification above; all integers are big-endian):
/// - Hard disk footer, 512 bytes: cookie "conectix" @0, features @8, file format
///   version @12, data offset @16, timestamp @24, creator application @28, creator
///   version @32, creator host OS @36, original size @40, current size @48, disk
///   geometry @56 (cylinders u16, heads u8, sectors per track u8), disk type @60,
///   checksum @64, unique id @68 (16 bytes), saved state @84, reserved to 512.
/// - Dynamic disk header, 1024 bytes: cookie "cxsparse" @0, data offset @8, table
///   offset @16, header version @24, max table entries @28, block size @32, checksum @36,
///   parent unique id @40, parent time stamp @56, reserved @60, parent unicode name @64
///   (512 bytes, UTF-16 big-endian), 8 parent locator entries @576 (24 bytes each),
///   reserved to 1024.
/// - BAT: one u32 per block, the absolute *sector* offset of the block, 0xFFFFFFFF when
///   unallocated. A block is its sector bitmap (one bit per sector, padded to a
///   512-byte boundary) followed by `blockSize` bytes of data. Bit 7 (MSB) of bitmap byte
///   0 is the block's first sector.
///
/// File layout written for `.dynamic`/`.differencing` (all offsets 512-aligned):
/// footer copy @0, dynamic header @512, parent locator data @1536 (in `locators` order),
/// BAT, allocated blocks in ascending block index, footer at the end.
/// For `.fixed`: `virtualSize` bytes of data, then the footer.
///
/// Overrides only change the field they name; the physical layout is always computed
/// from the real `blockSize`, `virtualSize` and sector map.
struct VHDWriter: Sendable {
    /// Footer "Disk Type" @60: `.fixed` = 2, `.dynamic` = 3, `.differencing` = 4.
    enum Kind: Sendable {
        case fixed, dynamic, differencing
    }

    /// One parent locator entry (dynamic header @576 + 24 * n) and its platform data.
    struct Locator: Sendable {
        /// Platform code @0 of the entry, four ASCII characters: "W2ru" (relative Windows
        /// path, UTF-16LE), "W2ku" (absolute Windows path, UTF-16LE), "MacX" (file URL,
        /// UTF-8). Other codes ("Wi2r", "Wi2k", "Mac ") are written with UTF-8 data.
        var code: String
        /// The path as stored, e.g. `.\parent.vhd`, `C:\disks\parent.vhd` or
        /// `file:///tmp/parent.vhd` (written verbatim, no terminator, no BOM).
        var path: String
        /// When set, written as the platform data instead of the encoded `path`.
        var rawData: [UInt8]? = nil

        init(code: String, path: String, rawData: [UInt8]? = nil) {
            self.code = code
            self.path = path
            self.rawData = rawData
        }

        /// The platform data bytes: UTF-16LE for W2ru/W2ku, UTF-8 otherwise.
        var data: [UInt8] {
            if let rawData { return rawData }
            switch code {
            case "W2ru", "W2ku":
                return path.utf16.flatMap { [UInt8(truncatingIfNeeded: $0), UInt8(truncatingIfNeeded: $0 >> 8)] }
            default:
                return Array(path.utf8)
            }
        }
    }

    /// Where things landed in the file produced by `bytes()` (absolute byte offsets).
    struct Layout: Sendable, Equatable {
        /// One allocated block: its bitmap and its data area.
        struct Block: Sendable, Equatable {
            /// Block index (BAT index); guest byte offset of the block is `index * blockSize`.
            var index: UInt64
            /// Absolute offset of the sector bitmap; the BAT entry is `bitmapOffset / 512`.
            var bitmapOffset: UInt64
            /// Absolute offset of the block's first data sector (`bitmapOffset + bitmapByteCount`).
            var dataOffset: UInt64
        }

        /// Size of the untruncated file.
        var fileSize: UInt64
        /// Footer copy at 0 for dynamic/differencing disks, nil for fixed disks.
        var footerCopyOffset: UInt64?
        /// The footer at the end of the file (`fileSize - 512`).
        var footerOffset: UInt64
        /// Dynamic header (512), nil for fixed disks. Footer "data offset" @16 holds it.
        var headerOffset: UInt64?
        /// Platform data offset of each locator, parallel to `VHDWriter.locators`.
        var locatorDataOffsets: [UInt64]
        /// BAT offset (header "table offset" @16), nil for fixed disks.
        var batOffset: UInt64?
        /// Entries physically written in the BAT (natural count, or more when a
        /// `batOverrides` index lies beyond it).
        var batEntryCount: UInt64
        /// Bytes the BAT occupies (entries * 4 rounded up to 512).
        var batByteCount: UInt64
        /// Sector bitmap size per block, padded to 512.
        var bitmapByteCount: UInt64
        /// Allocated blocks in file order (= ascending index).
        var blocks: [Block]

        /// The allocated block with this BAT index, if any.
        func block(_ index: UInt64) -> Block? { blocks.first { $0.index == index } }
    }

    /// Disk type, see `Kind`.
    var kind: Kind = .dynamic
    /// Footer current size @48 and original size @40, in bytes. Should be a multiple of 512.
    var virtualSize: UInt64
    /// Dynamic header block size @32 and the physical block size. Power of two, >= 512.
    var blockSize: UInt32 = 2 << 20
    /// Footer unique id @68.
    var uniqueID: [UInt8] = (0..<16).map { _ in UInt8.random(in: 0...255) }
    /// Footer time stamp @24 (seconds since 2000-01-01 00:00:00 UTC).
    var timestamp: UInt32 = 0
    /// Dynamic header parent unique id @40 (16 bytes), differencing disks only by convention.
    var parentUniqueID: [UInt8] = Array(repeating: 0, count: 16)
    /// Dynamic header parent time stamp @56.
    var parentTimestamp: UInt32 = 0
    /// Dynamic header parent unicode name @64, stored UTF-16 big-endian, at most 256 code units.
    var parentName: String = ""
    /// Parent locator entries @576, in order (at most 8). Written for any dynamic kind.
    var locators: [Locator] = []
    /// Store locator "platform data space" @4 in bytes (as some Microsoft writers do)
    /// instead of the spec's 512-byte sectors.
    var locatorSpaceInBytes = false

    /// Sector contents keyed by guest sector index (512-byte units). Each entry is marked
    /// in its block's bitmap (dynamic/differencing) and its bytes written (padded with
    /// zeros / cut to 512). Entries beyond `virtualSize` are still written for dynamic disks
    /// (they mark bits past the end of the disk); fixed disks drop them.
    var sectors: [UInt64: [UInt8]] = [:]
    /// Block indexes to allocate even if no sector in them is written (bitmap all clear).
    var emptyAllocatedBlocks: Set<UInt64> = []
    /// Byte to fill unmarked sectors of allocated blocks with (nil = zeros).
    var garbage: UInt8? = nil

    // MARK: Corrupt variants

    /// Replaces header max table entries @28 (e.g. 0xFFFFFFFF). The BAT written keeps its natural size.
    var maxTableEntriesOverride: UInt32? = nil
    /// Replaces header block size @32 (e.g. 0, 3 << 20). Layout still uses `blockSize`.
    var blockSizeOverride: UInt32? = nil
    /// Replaces footer disk type @60 in both footers (e.g. 7).
    var diskTypeOverride: UInt32? = nil
    /// Replaces footer data offset @16 (header location) in both footers.
    var dataOffsetOverride: UInt64? = nil
    /// Replaces header table offset @16 (BAT location); the BAT is still written at its natural place.
    var tableOffsetOverride: UInt64? = nil
    /// Raw BAT entries by index, applied after the natural ones (e.g. beyond EOF, into the header, 0xFFFFFFFF).
    var batOverrides: [Int: UInt32] = [:]
    /// End footer checksum @64 is stored as the right value + 1; the copy at 0 is intact.
    var corruptEndFooterChecksum = false
    /// End footer cookie @0 becomes "conectiX" (checksum recomputed, so only the cookie is wrong).
    var corruptEndFooterCookie = false
    /// Footer copy at 0 checksum is stored as the right value + 1.
    var corruptFooterCopyChecksum = false
    /// Dynamic header checksum @36 is stored as the right value + 1.
    var corruptHeaderChecksum = false
    /// Dynamic header cookie @0 becomes "cxsparsX" (checksum recomputed).
    var corruptHeaderCookie = false
    /// Cut the file to this many bytes (nil = whole file).
    var truncateTo: UInt64? = nil

    init(kind: Kind = .dynamic, virtualSize: UInt64, blockSize: UInt32 = 2 << 20) {
        self.kind = kind
        self.virtualSize = virtualSize
        self.blockSize = blockSize
    }

    // MARK: Building the sector map

    /// Marks and writes `count` sectors starting at `sector`, each filled with `byte`.
    mutating func write(sector: UInt64, count: UInt64 = 1, byte: UInt8) {
        for index in sector..<(sector + count) {
            sectors[index] = Array(repeating: byte, count: 512)
        }
    }

    /// Marks and writes `data` (padded with zeros to whole sectors) starting at `sector`.
    mutating func write(sector: UInt64, data: [UInt8]) {
        var offset = 0
        var index = sector
        while offset < data.count {
            var chunk = Array(data[offset..<min(offset + 512, data.count)])
            chunk += Array(repeating: 0, count: 512 - chunk.count)
            sectors[index] = chunk
            offset += 512
            index += 1
        }
    }

    /// Sectors per block (`blockSize / 512`).
    var sectorsPerBlock: UInt64 { UInt64(blockSize) / 512 }

    /// Natural header max table entries: ceil(virtualSize / blockSize).
    var naturalTableEntries: UInt64 {
        (virtualSize + UInt64(blockSize) - 1) / UInt64(blockSize)
    }

    /// BAT indexes that get a block: those holding a written sector, plus `emptyAllocatedBlocks`.
    var allocatedBlocks: [UInt64] {
        var set = emptyAllocatedBlocks
        for sector in sectors.keys { set.insert(sector / sectorsPerBlock) }
        return set.sorted()
    }

    /// What a spec-following reader returns for the guest disk (`virtualSize` bytes):
    /// marked sectors from this image, everything else from `parent` (differencing
    /// disks; the parent's own guest view) or zeros.
    func guestBytes(parent: [UInt8]? = nil) -> [UInt8] {
        var out = Array(repeating: UInt8(0), count: Int(virtualSize))
        if let parent {
            let n = min(parent.count, out.count)
            out.replaceSubrange(0..<n, with: parent[0..<n])
        }
        for (sector, content) in sectors {
            let start = sector * 512
            guard start < virtualSize else { continue }
            let end = min(start + 512, virtualSize)
            let padded = Self.sectorBytes(content)
            out.replaceSubrange(Int(start)..<Int(end), with: padded[0..<Int(end - start)])
        }
        return out
    }

    // MARK: Layout and serialisation

    /// Offsets of every structure in the file `bytes()` produces.
    func layout() -> Layout {
        if kind == .fixed {
            return Layout(
                fileSize: virtualSize + 512, footerCopyOffset: nil, footerOffset: virtualSize,
                headerOffset: nil, locatorDataOffsets: [], batOffset: nil, batEntryCount: 0,
                batByteCount: 0, bitmapByteCount: 0, blocks: [])
        }
        var offset: UInt64 = 512 + 1024
        var locatorOffsets: [UInt64] = []
        for locator in locators {
            locatorOffsets.append(offset)
            offset += Self.locatorSectors(locator.data.count) * 512
        }
        let batOffset = offset
        let overrideCount = UInt64((batOverrides.keys.max() ?? -1) + 1)
        let entries = max(naturalTableEntries, overrideCount)
        let batBytes = Self.roundUp(entries * 4)
        offset += batBytes
        let bitmapBytes = Self.roundUp((sectorsPerBlock + 7) / 8)
        var blocks: [Layout.Block] = []
        for index in allocatedBlocks {
            blocks.append(Layout.Block(index: index, bitmapOffset: offset, dataOffset: offset + bitmapBytes))
            offset += bitmapBytes + UInt64(blockSize)
        }
        return Layout(
            fileSize: offset + 512, footerCopyOffset: 0, footerOffset: offset, headerOffset: 512,
            locatorDataOffsets: locatorOffsets, batOffset: batOffset, batEntryCount: entries,
            batByteCount: batBytes, bitmapByteCount: bitmapBytes, blocks: blocks)
    }

    /// The whole image file (cut to `truncateTo` if set).
    func bytes() -> [UInt8] {
        let layout = layout()
        var file = Array(repeating: UInt8(0), count: Int(layout.fileSize))

        if kind == .fixed {
            for (sector, content) in sectors where sector * 512 < virtualSize {
                let start = Int(sector * 512)
                let end = min(start + 512, Int(virtualSize))
                file.replaceSubrange(start..<end, with: Self.sectorBytes(content)[0..<(end - start)])
            }
            file.replaceSubrange(Int(layout.footerOffset)..<Int(layout.fileSize), with: footer(dataOffset: UInt64.max, copy: false))
            return truncated(file)
        }

        let headerOffset = layout.headerOffset ?? 512
        let batOffset = layout.batOffset ?? 1536
        file.replaceSubrange(0..<512, with: footer(dataOffset: headerOffset, copy: true))
        file.replaceSubrange(Int(headerOffset)..<Int(headerOffset + 1024), with: header(layout: layout))

        // Parent locator platform data.
        for (locator, offset) in zip(locators, layout.locatorDataOffsets) {
            let data = locator.data
            file.replaceSubrange(Int(offset)..<Int(offset) + data.count, with: data)
        }

        // BAT: unallocated entries are 0xFFFFFFFF, allocated ones the bitmap's sector number.
        var bat = Array(repeating: UInt32.max, count: Int(layout.batEntryCount))
        for block in layout.blocks where block.index < layout.batEntryCount {
            bat[Int(block.index)] = UInt32(truncatingIfNeeded: block.bitmapOffset / 512)
        }
        for (index, value) in batOverrides where index >= 0 && index < bat.count {
            bat[index] = value
        }
        // Padding of the BAT's last sector is 0xFF too, as Microsoft and qemu write it.
        for position in stride(from: Int(batOffset), to: Int(batOffset + layout.batByteCount), by: 1) {
            file[position] = 0xFF
        }
        for (index, value) in bat.enumerated() {
            Self.put(value, into: &file, at: Int(batOffset) + index * 4)
        }

        // Blocks: bitmap then data.
        let spb = sectorsPerBlock
        for block in layout.blocks {
            let first = block.index * spb
            for inBlock in 0..<spb {
                let position = Int(block.dataOffset + inBlock * 512)
                if let content = sectors[first + inBlock] {
                    file[Int(block.bitmapOffset) + Int(inBlock / 8)] |= UInt8(0x80) >> UInt8(inBlock % 8)
                    file.replaceSubrange(position..<position + 512, with: Self.sectorBytes(content))
                } else if let garbage {
                    file.replaceSubrange(position..<position + 512, with: repeatElement(garbage, count: 512))
                }
            }
        }

        file.replaceSubrange(Int(layout.footerOffset)..<Int(layout.fileSize), with: footer(dataOffset: headerOffset, copy: false))
        return truncated(file)
    }

    /// Writes `bytes()` to `path`, replacing any file there.
    func write(to path: String) throws {
        try Data(bytes()).write(to: URL(fileURLWithPath: path))
    }

    // MARK: Structures

    /// The 512-byte hard disk footer (`copy` = the one at offset 0 of dynamic disks).
    func footer(dataOffset: UInt64, copy: Bool) -> [UInt8] {
        var f = Array(repeating: UInt8(0), count: 512)
        let cookie = (!copy && corruptEndFooterCookie) ? "conectiX" : "conectix"
        f.replaceSubrange(0..<8, with: Array(cookie.utf8))
        Self.put(UInt32(0x0000_0002), into: &f, at: 8)  // features: reserved bit always set
        Self.put(UInt32(0x0001_0000), into: &f, at: 12)  // file format version 1.0
        Self.put(dataOffsetOverride ?? dataOffset, into: &f, at: 16)  // header offset, or all ones (fixed)
        Self.put(timestamp, into: &f, at: 24)
        f.replaceSubrange(28..<32, with: Array("extd".utf8))  // creator application
        Self.put(UInt32(0x0001_0000), into: &f, at: 32)  // creator version
        f.replaceSubrange(36..<40, with: Array("Wi2k".utf8))  // creator host OS
        Self.put(virtualSize, into: &f, at: 40)  // original size
        Self.put(virtualSize, into: &f, at: 48)  // current size
        let chs = Self.geometry(totalSectors: virtualSize / 512)
        Self.put(chs.cylinders, into: &f, at: 56)
        f[58] = chs.heads
        f[59] = chs.sectorsPerTrack
        let type: UInt32 =
            switch kind {
            case .fixed: 2
            case .dynamic: 3
            case .differencing: 4
            }
        Self.put(diskTypeOverride ?? type, into: &f, at: 60)
        f.replaceSubrange(68..<84, with: Self.sixteen(uniqueID))
        // saved state @84 = 0, reserved = 0
        var sum = Self.checksum(f)
        if (!copy && corruptEndFooterChecksum) || (copy && corruptFooterCopyChecksum) { sum &+= 1 }
        Self.put(sum, into: &f, at: 64)
        return f
    }

    /// The 1024-byte dynamic disk header.
    func header(layout: Layout) -> [UInt8] {
        var h = Array(repeating: UInt8(0), count: 1024)
        h.replaceSubrange(0..<8, with: Array((corruptHeaderCookie ? "cxsparsX" : "cxsparse").utf8))
        Self.put(UInt64.max, into: &h, at: 8)  // data offset: unused
        Self.put(tableOffsetOverride ?? layout.batOffset ?? 0, into: &h, at: 16)  // table offset
        Self.put(UInt32(0x0001_0000), into: &h, at: 24)  // header version
        Self.put(maxTableEntriesOverride ?? UInt32(truncatingIfNeeded: naturalTableEntries), into: &h, at: 28)
        Self.put(blockSizeOverride ?? blockSize, into: &h, at: 32)
        h.replaceSubrange(40..<56, with: Self.sixteen(parentUniqueID))
        Self.put(parentTimestamp, into: &h, at: 56)
        for (i, unit) in parentName.utf16.prefix(256).enumerated() {
            Self.put(unit, into: &h, at: 64 + i * 2)  // UTF-16 big-endian
        }
        for (i, (locator, offset)) in zip(locators, layout.locatorDataOffsets).prefix(8).enumerated() {
            let entry = 576 + i * 24
            h.replaceSubrange(entry..<entry + 4, with: Array((locator.code + "    ").utf8.prefix(4)))
            let length = UInt64(locator.data.count)
            let space = Self.locatorSectors(locator.data.count)
            Self.put(UInt32(truncatingIfNeeded: locatorSpaceInBytes ? space * 512 : space), into: &h, at: entry + 4)
            Self.put(UInt32(truncatingIfNeeded: length), into: &h, at: entry + 8)
            Self.put(offset, into: &h, at: entry + 16)
        }
        var sum = Self.checksum(h)
        if corruptHeaderChecksum { sum &+= 1 }
        Self.put(sum, into: &h, at: 36)
        return h
    }

    /// Spec appendix "CHS Calculation": cylinders, heads, sectors per track for a disk of
    /// `totalSectors` 512-byte sectors (capped at 65535 * 16 * 255).
    static func geometry(totalSectors: UInt64) -> (cylinders: UInt16, heads: UInt8, sectorsPerTrack: UInt8) {
        let total = min(totalSectors, 65535 * 16 * 255)
        var sectorsPerTrack: UInt64
        var heads: UInt64
        var cylinderTimesHeads: UInt64
        if total >= 65535 * 16 * 63 {
            sectorsPerTrack = 255
            heads = 16
            cylinderTimesHeads = total / sectorsPerTrack
        } else {
            sectorsPerTrack = 17
            cylinderTimesHeads = total / sectorsPerTrack
            heads = (cylinderTimesHeads + 1023) / 1024
            if heads < 4 { heads = 4 }
            if cylinderTimesHeads >= heads * 1024 || heads > 16 {
                sectorsPerTrack = 31
                heads = 16
                cylinderTimesHeads = total / sectorsPerTrack
            }
            if cylinderTimesHeads >= heads * 1024 {
                sectorsPerTrack = 63
                heads = 16
                cylinderTimesHeads = total / sectorsPerTrack
            }
        }
        return (UInt16(truncatingIfNeeded: cylinderTimesHeads / heads), UInt8(heads), UInt8(sectorsPerTrack))
    }

    /// Ones' complement of the sum of all bytes (the checksum field must be zero in `bytes`).
    static func checksum(_ bytes: [UInt8]) -> UInt32 {
        ~bytes.reduce(UInt32(0)) { $0 &+ UInt32($1) }
    }

    // MARK: Helpers

    private func truncated(_ file: [UInt8]) -> [UInt8] {
        guard let truncateTo, truncateTo < UInt64(file.count) else { return file }
        return Array(file[0..<Int(truncateTo)])
    }

    /// Platform data space in sectors for `count` bytes (at least one sector).
    private static func locatorSectors(_ count: Int) -> UInt64 {
        max(1, (UInt64(count) + 511) / 512)
    }

    private static func roundUp(_ value: UInt64) -> UInt64 { (value + 511) / 512 * 512 }

    private static func sectorBytes(_ content: [UInt8]) -> [UInt8] {
        content.count >= 512 ? Array(content[0..<512]) : content + Array(repeating: 0, count: 512 - content.count)
    }

    private static func sixteen(_ bytes: [UInt8]) -> [UInt8] {
        Array((bytes + Array(repeating: 0, count: 16)).prefix(16))
    }

    private static func put<T: FixedWidthInteger>(_ value: T, into buffer: inout [UInt8], at offset: Int) {
        let size = MemoryLayout<T>.size
        for i in 0..<size {
            buffer[offset + i] = UInt8(truncatingIfNeeded: value >> ((size - 1 - i) * 8))
        }
    }
}
