import Foundation
import ImageFormats
import Testing

@testable import Scanner
@testable import TestSupport

/// Stored zeros (data over host holes, ``Extent/storedZero``) checked against qemu: each lies inside a range
/// qemu-img map calls data, and qemu-io reads zeros there.
@Suite struct StoredZeroTests {
    @Test("every fixture: each stored-zero range is data to qemu-img map and reads as zeros through qemu-io")
    func storedZerosReadAsZeros() throws {
        let directory = try Fixtures.directory()
        var checked = 0
        for (name, file) in try Fixtures.manifest() where name != "encrypted" {
            let path = directory.appendingPathComponent(file).path
            let scan = try ChainScanner.scan(path: path)
            let zeros = scan.extents.filter(\.storedZero)
            guard !zeros.isEmpty else { continue }
            let qemu = try qemuExtents(Data(contentsOf: directory.appendingPathComponent("\(name).map.json")))
            for zero in zeros {
                let inside = qemu.contains { $0.data && !$0.zero && $0.start <= zero.start && zero.end <= $0.end }
                #expect(inside, "\(name): stored zero at \(zero.start)+\(zero.length) is not data to qemu-img map")
            }
            // One qemu-io run reads every range (at most 200 per fixture) and checks each is all zeros.
            let format = scan.top.metadata.format == .vhd ? "vpc" : scan.top.metadata.format.rawValue
            let commands = zeros.prefix(200).flatMap { ["-c", "read -q -P 0 \($0.start) \($0.length)"] }
            // qemu 7.2 opens a relative data file name from its working directory: run it beside the image.
            let result = try runProcess(URL(fileURLWithPath: "/usr/bin/qemu-io"), ["-r", "-f", format] + commands + [path], in: directory)
            #expect(result.status == 0 && !result.stdout.contains("Pattern verification failed"), "\(name): \(result.stdout)")
            checked += 1
        }
        #expect(checked > 0, "no fixture has data over host holes: the check ran on nothing")
    }
}
