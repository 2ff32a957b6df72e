import Foundation
import ImageFormats
import Testing

@testable import Scanner

/// The format seam: every format is one driver in ``FormatRegistry``, probed by content in order.
@Suite struct FormatRegistryTests {
    @Test("formats are detected by content, raw last")
    func detection() {
        let qcow2: [UInt8] = [0x51, 0x46, 0x49, 0xFB, 0, 0, 0, 3]
        var vhdTail = [UInt8](repeating: 0, count: 512)
        vhdTail.replaceSubrange(0..<8, with: Array("conectix".utf8))
        #expect(FormatRegistry.detect(head: qcow2[...], tail: [][...]) == .qcow2)
        #expect(FormatRegistry.detect(head: [1, 2, 3][...], tail: vhdTail[...]) == .vhd)
        #expect(FormatRegistry.detect(head: Array("conectix".utf8)[...], tail: [][...]) == .vhd)
        #expect(FormatRegistry.detect(head: [1, 2, 3][...], tail: [UInt8](repeating: 0, count: 512)[...]) == .raw)
    }

    @Test("every format has exactly one driver, and raw is probed last")
    func oneDriverPerFormat() {
        let formats = FormatRegistry.drivers.map(\.format)
        #expect(Set(formats) == Set(ImageFormat.allCases))
        #expect(formats.count == ImageFormat.allCases.count)
        #expect(formats.last == .raw)
        for format in ImageFormat.allCases { #expect(FormatRegistry.driver(for: format).format == format) }
    }
}
