import Foundation
import Testing

@testable import AllocationIndex

/// `ScanRecord.histogram` reads the column by hand; it answers as JSONDecoder does.
@Suite struct HistogramColumnTests {
    func record(_ text: String) -> ScanRecord {
        ScanRecord(
            id: 1, imageId: 1, scannedAtNs: 0, durationNs: 0, toolVersion: "t", virtualSize: 0, chainDepth: 1, extentCount: 0,
            dataBytes: 0, ownDataBytes: 0, zeroBytes: 0, compressedBytes: 0, ownZeroBytes: 0, dataExtentCount: 0, dataExtentLargest: 0,
            dataExtentMedian: 0, dataExtentHistogram: text, warningsJson: "[]")
    }

    @Test("as JSONDecoder reads it: what the encoder writes, spaces, nonsense and overflow")
    func sameAsDecoder() throws {
        var samples = [
            "[]", "[0]", "[0,1,2]", "[ 1, 2 ]", "[18446744073709551615]", "[18446744073709551616]", "[1,,2]", "[1,]", "", "x",
            "[1]x", "[-1]", "[1.5]",
        ]
        var state: UInt64 = 3
        for _ in 0..<200 {
            state = state &* 6_364_136_223_846_793_005 &+ 1
            let values = (0..<Int(state >> 60)).map { index in (state >> UInt64(index)) % 100_000 }
            samples.append(String(decoding: try JSONEncoder().encode(values), as: UTF8.self))
        }
        for text in samples {
            let expected = (try? JSONDecoder().decode([UInt64].self, from: Data(text.utf8))) ?? []
            #expect(record(text).histogram == expected, "\(text)")
        }
    }
}
