import AllocationIndex
import Foundation
import ImageFormats
import Testing

@testable import Report
@testable import Scanner
@testable import TestSupport

/// Reports and diffs describe what the guest sees, whatever the format stores it in.
@Suite struct GuestViewTests {
    /// Data bytes `qemu-img map` reports for a file.
    static func qemuDataBytes(_ path: String, format: String) throws -> UInt64 {
        try qemuExtents(Data(run("qemu-img", ["map", "--output=json", "-f", format, path]).utf8)).filter(\.data).reduce(0) {
            $0 + $1.length
        }
    }

    @Test("a raw file and a fixed VHD of the same content report the same zero, allocated and unallocated bytes")
    func rawAndFixedVHDHoles() throws {
        let work = try TemporaryDirectory()
        defer { work.cleanup() }
        let raw = work.path("disk.raw")
        let vhd = work.path("disk.vhd")
        try run("qemu-img", ["create", "-q", "-f", "raw", raw, "64M"])
        try run("qemu-io", ["-f", "raw", "-c", "write -P 1 0 1M", "-c", "write -P 2 32M 512k", raw])
        try run("qemu-img", ["convert", "-f", "raw", "-O", "vpc", "-o", "subformat=fixed,force_size=on", raw, vhd])
        let store = try IndexStore()
        let indexer = ImageIndexer(store: store)
        for path in [raw, vhd] { _ = try indexer.ensureIndexed(path: path) }
        let report = try Report(store: store)
        let rawReport = try #require(report.images.first { $0.path.hasSuffix("disk.raw") })
        let vhdReport = try #require(report.images.first { $0.path.hasSuffix("disk.vhd") })
        #expect(vhdReport.format == "vhd")
        #expect(rawReport.virtualSize == vhdReport.virtualSize)
        // The fixed VHD's data area holds holes, which the map shows as zero as qemu-img map does.
        let vhdScan = try #require(try store.latestScan(path: vhdReport.path))
        #expect(vhdScan.scan.ownZeroBytes > 0)
        // qemu-img map calls a fixed VHD's whole data area data; the raw file's map is the reference.
        let data = try Self.qemuDataBytes(raw, format: "raw")
        #expect(data > 0 && data < rawReport.virtualSize)
        for image in [rawReport, vhdReport] {
            #expect(image.allocatedBytes == data, "\(image.format)")
            #expect(image.zeroBytes == 0, "\(image.format): holes of a file stored in place are unallocated")
            #expect(image.unallocatedBytes == image.virtualSize - data, "\(image.format)")
        }
        let json = try JSONSerialization.jsonObject(with: Data(try report.json().utf8)) as? [String: Any]
        let images = try #require(json?["images"] as? [[String: Any]])
        let keys = ["zero_bytes", "allocated_bytes", "unallocated_bytes"]
        let figures = images.map { image in keys.map { image[$0] as? Int } }
        #expect(figures.count == 2 && figures[0] == figures[1], "\(figures)")
        // The HTML draws both disks alike: no zero in either strip.
        let page = try TreeBuilder.parse(try report.html(store: store))
        let strips = page.all("g").filter { $0.attributes["data-chart"] == "strip" }.map { group in
            group.all("rect").map { "\($0.attributes["x"] ?? "") \($0.attributes["width"] ?? "") \($0.attributes["fill"] ?? "")" }
        }
        #expect(strips.count == 2 && strips[0] == strips[1])
        #expect(!(strips.first ?? []).contains { $0.hasSuffix(Report.colors[.zero] ?? "?") })
    }
}
