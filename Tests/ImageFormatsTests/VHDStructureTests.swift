import Testing

@testable import ImageFormats

@Suite struct VHDBitmapTests {
    /// Runs computed bit by bit, the slow obvious way.
    func naiveRuns(_ bitmap: [UInt8], sectors: Int) -> [VHDBitmap.Run] {
        var runs: [VHDBitmap.Run] = []
        for sector in 0..<sectors {
            let marked = bitmap[sector >> 3] & (0x80 >> UInt8(sector & 7)) != 0
            if let last = runs.last, last.marked == marked {
                runs[runs.count - 1].count += 1
            } else {
                runs.append(.init(first: sector, count: 1, marked: marked))
            }
        }
        return runs
    }

    @Test("runs equal a bit-by-bit reading for patterned and random bitmaps")
    func runs() {
        var state: UInt64 = 7
        var patterns: [[UInt8]] = [
            [UInt8](repeating: 0, count: 512), [UInt8](repeating: 0xFF, count: 512),
            (0..<512).map { $0 % 2 == 0 ? 0xAA : 0x55 }, (0..<512).map { $0 == 300 ? 0x01 : 0 },
        ]
        for _ in 0..<20 {
            patterns.append(
                (0..<512).map { _ in
                    state = state &* 6_364_136_223_846_793_005 &+ 1
                    let byte = UInt8(truncatingIfNeeded: state >> 56)
                    return byte < 128 ? 0 : byte < 200 ? 0xFF : byte
                })
        }
        for (index, bitmap) in patterns.enumerated() {
            for sectors in [4096, 4095, 33, 1] {
                var runs: [VHDBitmap.Run] = []
                bitmap.withUnsafeBytes { VHDBitmap.runs($0, sectors: sectors, into: &runs) }
                #expect(runs == naiveRuns(bitmap, sectors: sectors), "pattern \(index), \(sectors) sectors")
            }
        }
    }

    @Test("creator codes drop their NUL padding: blktap's 'tap\\0' reads 'tap', other unprintables '?'")
    func creatorCodes() {
        #expect(VHDFooter.fourCC(Array("tap".utf8 + [0])[...]) == "tap")
        #expect(VHDFooter.fourCC(Array("qemu".utf8)[...]) == "qemu")
        #expect(VHDFooter.fourCC([0x77, 0x01, 0x6B, 0x00][...]) == "w?k")
        #expect(VHDFooter.fourCC([0, 0, 0, 0][...]) == "")
    }

    @Test("checksum is the ones' complement of the byte sum without the checksum field")
    func checksum() {
        var bytes = [UInt8](repeating: 1, count: 512)
        bytes[64] = 0xFF
        #expect(VHDChecksum.compute(bytes[...], checksumAt: 64) == ~UInt32(508))
    }

    @Test("locator paths decode: UTF-16LE for W2ru/W2ku, file URLs for MacX")
    func locators() {
        let utf16: [UInt8] =
            Array(".\\p.vhd".utf16.flatMap { [UInt8(truncatingIfNeeded: $0), UInt8(truncatingIfNeeded: $0 >> 8)] }) + [0, 0]
        #expect(VHDText.locatorPath(code: "W2ru", data: utf16[...]) == ".\\p.vhd")
        #expect(VHDText.locatorPath(code: "MacX", data: Array("file://localhost/srv/a%20b.vhd".utf8)[...]) == "/srv/a b.vhd")
        #expect(VHDText.locatorPath(code: "Wi2r", data: [1, 2][...]) == nil)
    }
}
