import AllocationIndex
import Foundation
import ImageFormats
import Testing

@testable import Export
@testable import Scanner
@testable import TestSupport

/// Runs one writer into `path` with a listener on the total, returning (announced total, bytes reported).
func exportCountingProgress(_ plan: ExportPlan, format: String, to path: String) throws -> (total: UInt64?, reported: UInt64) {
    let reader = GuestReader(plan: plan)
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard fd >= 0 else { throw CommandFailed(command: "open \(path)", status: errno, stderr: "") }
    defer { close(fd) }
    let output = ExportOutput(descriptor: fd, name: path)
    var announced: [UInt64] = []
    var reported: UInt64 = 0
    output.expectsTotal = { announced.append($0) }
    output.progress = { reported += $0 }
    switch format {
    case "raw": try RawExporter(plan: plan, reader: reader).export(to: output)
    case "qcow2": try QCOW2StreamWriter(plan: plan, reader: reader, backing: nil).export(to: output)
    case "vhd": try VHDStreamWriter(plan: plan, reader: reader, parent: nil).export(to: output)
    default: try XVAWriter(plan: plan, reader: reader).export(to: output)
    }
    #expect(announced.count == 1, "the total is announced once, before the first byte")
    #expect(output.reportedBytes == reported)
    return (announced.first, reported)
}

@Suite struct ExportProgressTests {
    @Test("progress counts exactly the announced total: raw, qcow2, vhd, xva, into files and streams")
    func countsEndAtTotal() throws {
        let fixtures = try Fixtures.directory()
        let scratch = try TemporaryDirectory()
        defer { scratch.cleanup() }
        for name in ["chain-top.qcow2", "compressed-zlib.qcow2", "sparse.raw", "zero.qcow2", "odd-size.qcow2"] {
            let exportPlan = try plan(fixtures.appendingPathComponent(name).path)
            var dataBytes: UInt64 = 0
            let cursor = exportPlan.cursor()
            while let extent = try cursor.next() {
                if exportPlan.role(of: extent) == .data { dataBytes += extent.length }
            }
            for format in ["raw", "qcow2", "vhd", "xva"] {
                let path = scratch.path("\(name).\(format)")
                let file = try exportCountingProgress(exportPlan, format: format, to: path)
                let size = try #require(try FileManager.default.attributesOfItem(atPath: path)[.size] as? UInt64)
                #expect(file.total == file.reported, "\(name) \(format) to a file")
                // A raw file sends only its data (the rest are holes); a stream format's file is every byte sent.
                #expect(file.reported == (format == "raw" ? dataBytes : size), "\(name) \(format) to a file")
                let stream = try exportCountingProgress(exportPlan, format: format, to: "/dev/null")
                #expect(stream.total == stream.reported, "\(name) \(format) to a stream")
                #expect(stream.reported == (format == "raw" ? exportPlan.virtualSize : size), "\(name) \(format) to a stream")
            }
        }
    }
}
