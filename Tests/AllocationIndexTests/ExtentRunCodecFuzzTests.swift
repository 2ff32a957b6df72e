import AllocationIndex
import Foundation
import ImageFormats
import Testing

/// Inputs the `extent-runs` fuzz harness (Fuzz/Sources/FuzzExtentRuns) found or that guard the same edges,
/// replayed the way the harness reads them: u16 extent count, u64 chunk start, then the blob.
@Suite struct ExtentRunCodecFuzzTests {
    /// Decodes a harness input; nil when the codec throws (the right outcome for a damaged blob).
    func decode(harnessInput bytes: [UInt8]) throws -> [Extent]? {
        let count = Int(bytes[0]) << 8 | Int(bytes[1])
        let start = bytes[2..<10].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        var extents: [Extent] = []
        do {
            try ExtentRunCodec.decode(Data(bytes[10...]), start: start, count: count) { extents.append($0) }
        } catch is StoreError {
            return nil
        }
        return extents
    }

    @Test("crash-ddc07fed: an extent past the end of the 64-bit guest space throws instead of overflowing")
    func guestOffsetOverflow() throws {
        // 255 extents from guest offset 2^64 - 1; the first length (0x61) overflows the guest offset.
        let input: [UInt8] = [
            0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x61, 0x66, 0x65, 0x52, 0x61, 0x77,
            0x50, 0x6F, 0x69, 0x6E, 0x74, 0x65, 0x72, 0x05, 0xB8, 0x17, 0xB8, 0x97, 0x90, 0x08, 0x80, 0x20, 0x7F,
        ]
        #expect(try decode(harnessInput: input) == nil)
        do {
            try ExtentRunCodec.decode(Data(input[10...]), start: UInt64.max, count: 255) { _ in }
            Issue.record("decoding succeeded")
        } catch {
            #expect(String(describing: error).contains("extent 0 length at blob byte 0"), "\(error)")
        }
    }

    @Test("extents may end at Int64.max, the largest guest offset SQLite stores, and not one byte later")
    func endAtInt64Max() throws {
        let last = [Extent(start: UInt64(Int64.max) - 512, length: 512, depth: 0, present: false, zero: false, data: false)]
        let blob = ExtentRunCodec.encode(last[...])
        var decoded: [Extent] = []
        try ExtentRunCodec.decode(blob, start: UInt64(Int64.max) - 512, count: 1) { decoded.append($0) }
        #expect(decoded == last)
        #expect(throws: StoreError.self) { try ExtentRunCodec.decode(blob, start: UInt64(Int64.max) - 511, count: 1) { _ in } }
    }

    @Test("a negative count, a zero length, an 11-byte varint and a 33-bit depth throw")
    func malformedFields() throws {
        #expect(throws: StoreError.self) { try ExtentRunCodec.decode(Data([1, 0, 0]), start: 0, count: -1) { _ in } }
        #expect(throws: StoreError.self) { try ExtentRunCodec.decode(Data([0, 0, 0]), start: 0, count: 1) { _ in } }
        let longVarint = Data(repeating: 0xFF, count: 11) + Data([0x01, 0x00, 0x00])
        #expect(throws: StoreError.self) { try ExtentRunCodec.decode(longVarint, start: 0, count: 1) { _ in } }
        let wideDepth = Data([0x01, 0x00, 0x80, 0x80, 0x80, 0x80, 0x20])
        #expect(throws: StoreError.self) { try ExtentRunCodec.decode(wideDepth, start: 0, count: 1) { _ in } }
        // Truncated mid-varint: the message names the extent and field.
        do {
            try ExtentRunCodec.decode(Data([0x80]), start: 0, count: 1) { _ in }
            Issue.record("decoding succeeded")
        } catch {
            #expect(String(describing: error).contains("extent 0 length at blob byte 0: varint runs past the end"), "\(error)")
        }
    }
}
