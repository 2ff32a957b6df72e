import Testing

@testable import ImageFormats

@Suite struct QCOW2L2DecoderTests {
    static let clusterSize: UInt64 = 65536

    func decode(_ entries: [UInt64], extendedL2: Bool = false, externalData: Bool = false, fileSize: UInt64 = 1 << 30) throws(FormatError)
        -> [Extent]
    {
        var bytes = QCOW2HeaderBytes()
        if extendedL2 { bytes.incompatible |= 1 << 4 }
        bytes.size = UInt64(extendedL2 ? entries.count / 2 : entries.count) * Self.clusterSize
        bytes.l1Size = 1
        let header = try bytes.parse()
        let decoder = QCOW2L2Decoder(header: header, imageFileSize: fileSize, dataFileSize: fileSize, hasExternalData: externalData)
        var table = entries.flatMap { QCOW2HeaderBytes.be($0) }
        table += [UInt8](repeating: 0, count: Int(Self.clusterSize) - table.count)
        var runs = ExtentListBuilder()
        var failure: FormatError?
        table.withUnsafeBytes { raw in
            do throws(FormatError) {
                try decoder.decode(table: raw, tableOffset: 0x40000, guestStart: 0, into: &runs)
            } catch { failure = error }
        }
        if let failure { throw failure }
        return runs.extents
    }

    @Test("standard entries: data with contiguous host offsets merge; zero flag; unallocated")
    func standardEntries() throws {
        let runs = try decode([0x8000_0000_0005_0000, 0x8000_0000_0006_0000, 0, 1, 0x0000_0000_0007_0001])
        #expect(
            runs == [
                Extent(start: 0, length: 131072, depth: 0, present: true, zero: false, data: true, offset: 0x50000),
                Extent(start: 131072, length: 65536, depth: 0, present: false, zero: false, data: false),
                Extent(start: 196608, length: 65536, depth: 0, present: true, zero: true, data: false),
                Extent(start: 262144, length: 65536, depth: 0, present: true, zero: true, data: false, offset: 0x70000),
            ])
    }

    @Test("compressed clusters keep their descriptors, have no host offset, and display merged")
    func compressed() throws {
        // Offset 0x12345 with no extra sectors: the data ends with that sector (512 - 0x145 bytes).
        let extraSectors: UInt64 = 3 << 54
        let runs = try decode([1 << 62 | 0x12345, 1 << 62 | extraSectors | 0x22345])
        let expected: [Extent.CompressedCluster?] = [
            Extent.CompressedCluster(hostOffset: 0x12345, byteCount: 187),
            Extent.CompressedCluster(hostOffset: 0x22345, byteCount: 187 + 3 * 512),
        ]
        #expect(runs.map(\.compressedCluster) == expected)
        #expect(runs.allSatisfy { $0.compressed && $0.offset == nil })
        #expect(
            ExtentListBuilder.displayMerged(runs) == [
                Extent(start: 0, length: 131072, depth: 0, present: true, zero: false, data: true, compressed: true)
            ])
    }

    @Test("offset 0 with the copied bit is allocated only with an external data file")
    func externalDataOffsetZero() throws {
        let entry: UInt64 = 1 << 63
        #expect(try decode([entry], externalData: true)[0].data)
        #expect(try decode([entry], externalData: false)[0].present == false)
    }

    @Test("extended L2: subcluster bitmaps give 2 KiB-granular runs")
    func extendedL2() throws {
        // Subcluster 0 allocated, 1 zero, the rest unallocated but with a host offset.
        let runs = try decode([0x8000_0000_0005_0000, 0x0000_0002_0000_0001], extendedL2: true)
        #expect(
            runs == [
                Extent(start: 0, length: 2048, depth: 0, present: true, zero: false, data: true, offset: 0x50000),
                Extent(start: 2048, length: 2048, depth: 0, present: true, zero: true, data: false, offset: 0x50800),
                Extent(start: 4096, length: 65536 - 4096, depth: 0, present: false, zero: false, data: false, offset: 0x51000),
            ])
    }

    @Test(
        "rejects unaligned, out-of-file and contradictory entries",
        arguments: [
            ([UInt64(0x8000_0000_0005_0200)], false, "L2 entry"),
            ([UInt64(0x8000_00FF_0000_0000)], false, "L2 entry"),
            ([UInt64(1) << 62 | 0xFF_FFFF_FFFF], false, "compressed L2 entry"),
            ([UInt64(0x8000_0000_0005_0000), 0x0000_0001_0000_0001], true, "L2 entry bitmap"),
            ([UInt64(0), 0x0000_0000_0000_0001], true, "L2 entry bitmap"),
        ])
    func rejects(entries: [UInt64], extendedL2: Bool, field: String) {
        do {
            _ = try decode(entries, extendedL2: extendedL2, fileSize: 1 << 30)
            Issue.record("accepted \(entries)")
        } catch {
            #expect(error.field == field, "\(error)")
        }
    }

    @Test("L1 entries: unallocated, aligned, and beyond the file")
    func l1Entries() throws {
        let header = try QCOW2HeaderBytes().parse()
        let decoder = QCOW2L2Decoder(header: header, imageFileSize: 0x100000, dataFileSize: 0x100000, hasExternalData: false)
        #expect(try decoder.l2TableOffset(l1Entry: 0, entryOffset: 0x30000) == nil)
        #expect(try decoder.l2TableOffset(l1Entry: 1 << 63 | 0x40000, entryOffset: 0x30000) == 0x40000)
        #expect(throws: FormatError.self) { try decoder.l2TableOffset(l1Entry: 0x40200, entryOffset: 0x30000) }
        #expect(throws: FormatError.self) { try decoder.l2TableOffset(l1Entry: 0x100000, entryOffset: 0x30000) }
    }
}
