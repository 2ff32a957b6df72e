import FuzzSupport
import ImageFormats

/// libFuzzer entry point: a QCOW2 image (and optionally its backing file) from the input.
///
/// Input: 24-bit big-endian length of the top image, the top image, then the backing file (named `base` in the
/// scratch directory; seeds name it so). The pure parsers run on the top image's bytes (format probe, header,
/// extensions, snapshot table, every L2 table the L1 table names inside the input), then the pair is scanned
/// from files as `extentdb scan` would. Errors are fine; a trap, an ASan report or a broken map is a finding.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzQCOW2(_ data: UnsafeRawPointer?, _ size: Int) -> CInt {
    let input = UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : size)
    let (top, base) = splitTwoFiles(input)
    parseQCOW2(Array(top))
    let path = scratch.write(top, as: "disk.qcow2")
    if let base { scratch.write(base, as: "base") } else { scratch.remove("base") }
    scratch.scan(path)
    return 0
}

private let scratch = ScratchImages()

/// Runs every pure QCOW2 parser over `bytes` as the file's whole content.
func parseQCOW2(_ bytes: [UInt8]) {
    let fileSize = UInt64(bytes.count)
    _ = ImageFormat.detect(head: bytes.prefix(8), tail: bytes.suffix(512))
    _ = ForeignFormat.name(head: bytes.prefix(ForeignFormat.headBytes))
    var reader = ByteReader(bytes)
    guard let header = try? QCOW2Header(parsing: &reader, fileSize: fileSize) else { return }
    let firstCluster = bytes.prefix(Int(header.clusterSize))
    _ = try? QCOW2HeaderExtensions(parsing: firstCluster, header: header)
    if header.nbSnapshots > 0, header.snapshotsOffset < fileSize {
        var table = ByteReader(bytes[Int(header.snapshotsOffset)...], baseOffset: header.snapshotsOffset)
        _ = try? QCOW2Snapshot.parseTable(&table, count: header.nbSnapshots)
    }
    let decoder = QCOW2L2Decoder(header: header, imageFileSize: fileSize, dataFileSize: fileSize, hasExternalData: false)
    var runs = ExtentListBuilder()
    let l1Start = Int(min(header.l1TableOffset, fileSize))
    let entries = min(Int(header.l1Size), (bytes.count - min(l1Start, bytes.count)) / 8)
    bytes.withUnsafeBytes { raw in
        for index in 0..<entries {
            let entryOffset = l1Start + index * 8
            let entry = UInt64.loadBigEndian(from: raw, at: entryOffset)
            guard let tableOffset = try? decoder.l2TableOffset(l1Entry: entry, entryOffset: UInt64(entryOffset)) else { continue }
            let table = UnsafeRawBufferPointer(rebasing: raw[Int(tableOffset)..<Int(tableOffset) + Int(header.clusterSize)])
            let guestStart = UInt64(index).multipliedReportingOverflow(by: header.bytesPerL2Table)
            guard !guestStart.overflow else { return }
            _ = try? decoder.decode(table: table, tableOffset: tableOffset, guestStart: guestStart.partialValue, into: &runs)
        }
    }
}
