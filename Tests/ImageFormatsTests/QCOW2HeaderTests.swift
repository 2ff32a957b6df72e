import Testing

@testable import ImageFormats

@Suite struct QCOW2HeaderTests {
    @Test("parses a version 3 header field by field")
    func parsesVersion3() throws {
        let header = try QCOW2HeaderBytes().parse()
        #expect(header.version == 3)
        #expect(header.clusterSize == 65536)
        #expect(header.size == 1 << 30)
        #expect(header.l1Size == 2)
        #expect(header.l2Entries == 8192)
        #expect(header.requiredL1Entries == 2)
        #expect(header.compressionType == .zlib)
    }

    @Test("parses a version 2 header with v3 defaults")
    func parsesVersion2() throws {
        var bytes = QCOW2HeaderBytes()
        bytes.version = 2
        let header = try bytes.parse()
        #expect(header.version == 2)
        #expect(header.refcountOrder == 4)
        #expect(header.incompatibleFeatures.isEmpty)
    }

    @Test("every prefix of a valid header is rejected as truncated, never traps")
    func dripFeed() {
        let full = QCOW2HeaderBytes().bytes
        for length in 0..<105 {
            var reader = ByteReader(Array(full.prefix(length)))
            do {
                _ = try QCOW2Header(parsing: &reader, fileSize: QCOW2HeaderBytes.fileSize)
                Issue.record("prefix of \(length) bytes parsed")
            } catch {
                #expect(error.isTruncation, "prefix \(length): \(error)")
            }
        }
    }

    @Test("rejects wrong magic")
    func badMagic() {
        var bytes = QCOW2HeaderBytes().bytes
        bytes[3] = 0xFA
        var reader = ByteReader(bytes)
        #expect(throws: FormatError.badMagic(field: "qcow2 header magic", found: 0x5146_49FA, offset: 0)) {
            try QCOW2Header(parsing: &reader, fileSize: QCOW2HeaderBytes.fileSize)
        }
    }

    /// A header field overwritten with a bad value: (expected field in the error, byte offset, new bytes).
    static let badFields: [(String, Int, [UInt8])] = [
        ("cluster_bits", 20, QCOW2HeaderBytes.be(UInt32(8))),
        ("cluster_bits", 20, QCOW2HeaderBytes.be(UInt32(40))),
        ("l1_size", 36, QCOW2HeaderBytes.be(UInt32(1) << 31)),
        ("l1_size", 36, QCOW2HeaderBytes.be(UInt32(1))),
        ("nb_snapshots", 60, QCOW2HeaderBytes.be(UInt32.max)),
        ("refcount_order", 96, QCOW2HeaderBytes.be(UInt32(7))),
        ("qcow2 header version", 4, QCOW2HeaderBytes.be(UInt32(4))),
        ("incompatible_features", 72, QCOW2HeaderBytes.be(UInt64(1) << 1)),
        ("incompatible_features", 72, QCOW2HeaderBytes.be(UInt64(1) << 9)),
        ("backing_file_size", 8, QCOW2HeaderBytes.be(UInt64(512)) + QCOW2HeaderBytes.be(UInt32.max)),
        ("backing_file_offset", 8, QCOW2HeaderBytes.be(UInt64(1) << 40) + QCOW2HeaderBytes.be(UInt32(10))),
        ("l1_table_offset", 40, QCOW2HeaderBytes.be(UInt64(1) << 50)),
        ("l1_table_offset", 40, QCOW2HeaderBytes.be(UInt64(0x30008))),
        ("snapshots_offset", 60, QCOW2HeaderBytes.be(UInt32(1)) + QCOW2HeaderBytes.be(UInt64(0xFFFF_0000))),
        ("header_length", 100, QCOW2HeaderBytes.be(UInt32(100))),
        ("compression_type", 104, [9]),
        ("size", 24, QCOW2HeaderBytes.be(UInt64.max)),
    ]

    @Test("rejects absurd or unsupported fields with the field's name and offset", arguments: badFields)
    func rejectsBadField(field: String, offset: Int, value: [UInt8]) {
        var bytes = QCOW2HeaderBytes().bytes
        bytes.replaceSubrange(offset..<(offset + value.count), with: value)
        var reader = ByteReader(bytes)
        do {
            _ = try QCOW2Header(parsing: &reader, fileSize: QCOW2HeaderBytes.fileSize)
            Issue.record("accepted a bad \(field)")
        } catch {
            #expect(error.field == field, "\(error)")
            #expect(error.description.contains("offset"))
        }
    }

    @Test("the dirty bit is accepted (the scanner warns)")
    func dirtyAccepted() throws {
        var bytes = QCOW2HeaderBytes()
        bytes.incompatible = 1
        #expect(try bytes.parse().incompatibleFeatures.contains(.dirty))
    }

    @Test("header extensions: backing format and data file are read, unknown ones skipped")
    func extensions() throws {
        var bytes = QCOW2HeaderBytes()
        func ext(_ type: UInt32, _ text: String) -> [UInt8] {
            let data = Array(text.utf8)
            let padded = data + [UInt8](repeating: 0, count: (8 - data.count % 8) % 8)
            return QCOW2HeaderBytes.be(type) + QCOW2HeaderBytes.be(UInt32(data.count)) + padded
        }
        bytes.extensions =
            ext(0x1234_5678, "ignored") + ext(QCOW2HeaderExtensions.backingFormat, "qcow2")
            + ext(QCOW2HeaderExtensions.externalDataFile, "disk.data") + [0, 0, 0, 0, 0, 0, 0, 0]
        let header = try bytes.parse()
        let parsed = try QCOW2HeaderExtensions(parsing: bytes.bytes[...], header: header)
        #expect(parsed.backingFormat == "qcow2")
        #expect(parsed.externalDataFile == "disk.data")
        #expect(parsed.unknownTypes == [0x1234_5678])
    }

    @Test("an extension whose length runs past the cluster is truncated, not trusted")
    func extensionOverrun() throws {
        var bytes = QCOW2HeaderBytes()
        bytes.extensions = QCOW2HeaderBytes.be(QCOW2HeaderExtensions.backingFormat) + QCOW2HeaderBytes.be(UInt32.max)
        let header = try bytes.parse()
        #expect(throws: FormatError.self) { try QCOW2HeaderExtensions(parsing: bytes.bytes[...], header: header) }
    }
}
