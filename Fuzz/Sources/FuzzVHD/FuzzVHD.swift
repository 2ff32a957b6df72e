import FuzzSupport
import ImageFormats

/// libFuzzer entry point: a VHD (dynamic, fixed or differencing) and optionally its parent, from the input.
///
/// Input: 24-bit big-endian length of the child, the child, then the parent (written as `parent.vhd`, the name
/// the seeds' locators use). Footer and dynamic-header checksums are recomputed first, so mutations reach
/// the BAT, locators and bitmaps instead of stopping at a checksum (the bad-checksum paths are unit-tested).
/// The pure parsers run on the child's bytes, then the chain is scanned from files as `extentdb scan` would.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzVHD(_ data: UnsafeRawPointer?, _ size: Int) -> CInt {
    let input = UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : size)
    let (child, parent) = splitTwoFiles(input)
    let fixedChild = withChecksumsFixed(Array(child))
    parseVHD(fixedChild)
    let path = fixedChild.withUnsafeBytes { scratch.write($0, as: "disk.vhd") }
    if let parent {
        withChecksumsFixed(Array(parent)).withUnsafeBytes { _ = scratch.write($0, as: "parent.vhd") }
    } else {
        scratch.remove("parent.vhd")
    }
    scratch.scan(path)
    return 0
}

private let scratch = ScratchImages()

/// Rewrites the checksums of the footer at the end, its copy at 0, and the dynamic header the footer names.
func withChecksumsFixed(_ file: [UInt8]) -> [UInt8] {
    var bytes = file
    func fix(at start: Int, length: Int, checksumAt field: Int, cookie: [UInt8]) {
        guard start >= 0, start + length <= bytes.count, bytes[start..<start + 8].elementsEqual(cookie) else { return }
        let sum = VHDChecksum.compute(bytes[start..<start + length], checksumAt: field)
        for index in 0..<4 { bytes[start + field + index] = UInt8(truncatingIfNeeded: sum >> (24 - 8 * UInt32(index))) }
    }
    fix(at: bytes.count - VHDFooter.size, length: VHDFooter.size, checksumAt: 64, cookie: VHDFooter.cookie)
    fix(at: 0, length: VHDFooter.size, checksumAt: 64, cookie: VHDFooter.cookie)
    for footerStart in [bytes.count - VHDFooter.size, 0] where footerStart >= 0 && bytes.count >= VHDFooter.size {
        var offset: UInt64 = 0
        for index in 16..<24 { offset = offset << 8 | UInt64(bytes[footerStart + index]) }
        if offset < UInt64(bytes.count) {
            fix(at: Int(offset), length: VHDDynamicHeader.size, checksumAt: 36, cookie: VHDDynamicHeader.cookie)
        }
    }
    return bytes
}

/// Runs every pure VHD parser over `bytes` as the file's whole content.
func parseVHD(_ bytes: [UInt8]) {
    let fileSize = UInt64(bytes.count)
    _ = ImageFormat.detect(head: bytes.prefix(8), tail: bytes.suffix(512))
    guard bytes.count >= VHDFooter.size else { return }
    let footerStart = bytes.count - VHDFooter.size
    _ = try? VHDFooter(parsing: bytes[..<VHDFooter.size], fileOffset: 0)
    guard let footer = try? VHDFooter(parsing: bytes[footerStart...], fileOffset: UInt64(footerStart)) else { return }
    guard footer.dataOffset < fileSize, fileSize - footer.dataOffset >= UInt64(VHDDynamicHeader.size) else { return }
    let headerStart = Int(footer.dataOffset)
    guard
        let header = try? VHDDynamicHeader(parsing: bytes[headerStart..<headerStart + VHDDynamicHeader.size], fileOffset: footer.dataOffset)
    else { return }
    for locator in header.locators {
        let end = locator.dataOffset.addingReportingOverflow(UInt64(locator.dataLength))
        guard !end.overflow, end.partialValue <= fileSize else { continue }
        _ = VHDText.locatorPath(code: locator.code, data: bytes[Int(locator.dataOffset)..<Int(end.partialValue)])
    }
    guard (try? header.validateTable(currentSize: footer.currentSize, fileSize: fileSize, headerOffset: footer.dataOffset)) != nil else {
        return
    }
    // Each BAT entry's bitmap, where it lies inside the input.
    let blocks = Int(min(UInt64(header.maxTableEntries), 4096))
    var runs: [VHDBitmap.Run] = []
    bytes.withUnsafeBytes { raw in
        for index in 0..<blocks {
            let entryOffset = Int(header.tableOffset) + index * 4
            guard entryOffset + 4 <= raw.count else { return }
            let entry = UInt32.loadBigEndian(from: raw, at: entryOffset)
            let bitmapStart = UInt64(entry) * 512
            guard entry != 0xFFFF_FFFF, bitmapStart + header.bitmapBytes <= fileSize else { continue }
            let bitmap = UnsafeRawBufferPointer(rebasing: raw[Int(bitmapStart)..<Int(bitmapStart + header.bitmapBytes)])
            VHDBitmap.runs(bitmap, sectors: Int(header.sectorsPerBlock), into: &runs)
        }
    }
}
