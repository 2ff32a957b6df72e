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

    /// A qcow2 over a qcow2 base, with data in both, a zeroed cluster and sub-cluster writes.
    static func sourceImage(in work: TemporaryDirectory) throws -> String {
        let base = work.path("base.qcow2")
        let top = work.path("top.qcow2")
        try run("qemu-img", ["create", "-q", "-f", "qcow2", base, "64M"])
        try run("qemu-io", ["-f", "qcow2", "-c", "write -P 1 0 2M", "-c", "write -P 1 20M 1M", base])
        try run("qemu-img", ["create", "-q", "-f", "qcow2", "-b", base, "-F", "qcow2", top])
        try run("qemu-io", ["-f", "qcow2", "-c", "write -P 2 1M 256k", "-c", "write -z 20M 64k", "-c", "write -P 3 48M 128k", top])
        return top
    }

    /// (qemu-img convert to VHD is left out: qemu marks every sector of a block it allocates, so the zeros
    /// around written data become data; `extentdb export --format vhd` is compared in the CLI tests.)
    @Test("diff of an image and its exports (raw, qcow2) compares the guest's view: nothing differs; one written cluster does")
    func guestDiff() throws {
        let work = try TemporaryDirectory()
        defer { work.cleanup() }
        let source = try Self.sourceImage(in: work)
        let exports = [("raw", "copy.raw"), ("qcow2", "copy.qcow2")].map { format, name in (format, work.path(name)) }
        for (format, path) in exports {
            try run("qemu-img", ["convert", "-f", "qcow2", "-O", format, source, path])
        }
        let store = try IndexStore()
        let indexer = ImageIndexer(store: store)
        let sourceScan = try #require(try indexer.ensureIndexed(path: source).indexed.scan.id)
        for (format, path) in exports {
            let scan = try #require(try indexer.ensureIndexed(path: path).indexed.scan.id)
            let guest = try AllocationDiff(store: store, before: sourceScan, after: scan, comparison: .guest)
            #expect(guest.changes.isEmpty, "\(format): \(guest.changes)")
            #expect(guest.changedBytes == 0)
            // Host offsets and layers do differ: a layout comparison sees them.
            let layout = try AllocationDiff(store: store, before: sourceScan, after: scan, comparison: .layout)
            #expect(!layout.changes.isEmpty, "\(format)")
        }
        // One more cluster written in a copy: exactly that range differs, as newly allocated.
        let copy = try #require(exports.first { $0.0 == "qcow2" }).1
        let written = work.path("written.qcow2")
        try FileManager.default.copyItem(atPath: copy, toPath: written)
        let start: UInt64 = 40 << 20
        let length: UInt64 = 64 << 10
        try run("qemu-io", ["-f", "qcow2", "-c", "write -P 9 \(start) \(length)", written])
        let scan = try #require(try indexer.ensureIndexed(path: written).indexed.scan.id)
        let diff = try AllocationDiff(store: store, before: sourceScan, after: scan, comparison: .guest)
        #expect(diff.changes.map(\.start) == [start])
        #expect(diff.changes.map(\.length) == [length])
        #expect(diff.newlyAllocatedBytes == length && diff.freedBytes == 0 && diff.changedBytes == length)
        #expect(diff.changes.first.map { !$0.before.guestData && $0.after.guestData } == true)
    }
}
