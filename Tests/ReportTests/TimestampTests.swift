import Foundation
import Testing

@testable import Report

/// `ImageReport.timestamp` formats with gmtime_r; its text is what ISO8601DateFormatter printed before.
@Suite struct TimestampTests {
    @Test("equals ISO8601DateFormatter's text for times across the range, before 1970 included")
    func equalsFoundation() {
        let formatter = ISO8601DateFormatter()
        var state: UInt64 = 12_345
        var samples: [Int64] = [0, 1, 999_999_999, 1_000_000_000, -1, -1_000_000_000, -1_500_000_000, 1_796_583_482_123_456_789]
        for _ in 0..<2000 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            samples.append(Int64(bitPattern: state >> 2) % 4_000_000_000_000_000_000)
        }
        for nanoseconds in samples {
            // What the formatter printed for the same instant (it drops the fraction of a second).
            let expected = formatter.string(from: Date(timeIntervalSince1970: Double(nanoseconds) / 1e9))
            #expect(ImageReport.timestamp(nanoseconds) == expected, "\(nanoseconds)")
        }
    }
}
