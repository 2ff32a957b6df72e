import Foundation
import Testing

@testable import TestSupport

/// A scan's figures (`info --output json`) and the rows `map --output json` prints for the same image.
struct ImageNumbers {
    var virtualSize: Int
    var extentCount: Int
    var dataBytes: Int
    var zeroBytes: Int
    var rows: [[String: Any]]
    /// The rows of `map --output json --detect-zeros`: stored zeros shown as zero, as the figures count them.
    var detectedRows: [[String: Any]]

    init(image: String, database: String, directory: URL? = nil) throws {
        let info = try extentdb(["info", "--output", "json", image], database: database, directory: directory)
        guard info.status == 0 else { throw CommandFailed(command: "extentdb info \(image)", status: info.status, stderr: info.stderr) }
        let object = try JSONSerialization.jsonObject(with: Data(info.stdout.utf8)) as? [String: Any]
        let scan = object?["scan"] as? [String: Any]
        virtualSize = object?["virtual_size"] as? Int ?? -1
        extentCount = object?["extent_count"] as? Int ?? -1
        dataBytes = object?["chain_allocated_bytes"] as? Int ?? -1
        zeroBytes = scan?["chain_zero_bytes"] as? Int ?? -1
        let map = try extentdb(["map", "--output", "json", image], database: database, directory: directory)
        guard map.status == 0 else { throw CommandFailed(command: "extentdb map \(image)", status: map.status, stderr: map.stderr) }
        rows = try JSONSerialization.jsonObject(with: Data(map.stdout.utf8)) as? [[String: Any]] ?? []
        let detected = try extentdb(["map", "--output", "json", "--detect-zeros", image], database: database, directory: directory)
        guard detected.status == 0 else {
            throw CommandFailed(command: "extentdb map --detect-zeros \(image)", status: detected.status, stderr: detected.stderr)
        }
        detectedRows = try JSONSerialization.jsonObject(with: Data(detected.stdout.utf8)) as? [[String: Any]] ?? []
    }

    /// Bytes of the printed rows (of `map --detect-zeros` with `detected`) that match `predicate`.
    func bytes(detected: Bool = false, where predicate: ([String: Any]) -> Bool) -> Int {
        (detected ? detectedRows : rows).filter(predicate).reduce(0) { $0 + ($1["length"] as? Int ?? 0) }
    }

    /// Checks that the figures add up and agree with the printed rows.
    func check(_ name: String) {
        // The figures count data that reads as zeros (flagged, or over host holes) as zero: the rows of
        // map --detect-zeros show both as "zero": true.
        let data = bytes(detected: true) { $0["data"] as? Bool == true && $0["zero"] as? Bool == false }
        let zero = bytes(detected: true) { $0["present"] as? Bool == true && ($0["data"] as? Bool == false || $0["zero"] as? Bool == true) }
        let unallocated = bytes { $0["present"] as? Bool == false }
        #expect(dataBytes + zeroBytes + unallocated == virtualSize, "\(name): data + zero + unallocated != virtual size")
        #expect(dataBytes == data, "\(name): data bytes \(dataBytes) vs map \(data)")
        #expect(zeroBytes == zero, "\(name): zero bytes \(zeroBytes) vs map \(zero)")
        #expect(bytes { _ in true } == virtualSize, "\(name): map rows cover \(bytes { _ in true }) of \(virtualSize)")
        if virtualSize == 0 {
            // qemu-img map prints one empty entry for a zero-length disk (extentdb does too): no extent.
            #expect(extentCount == 0 && rows.count == 1, "\(name)")
        } else {
            #expect(extentCount == rows.count, "\(name): extent_count \(extentCount), map prints \(rows.count) rows")
        }
    }
}

@Suite(.serialized) struct NumbersTests {
    @Test("every fixture: data + zero + unallocated = virtual size, extent_count = rows map prints")
    func everyFixtureAddsUp() throws {
        let fixtures = try Fixtures.directory()
        let scratch = try TemporaryDirectory()
        defer { scratch.cleanup() }
        let db = scratch.path("index.sqlite")
        for (name, file) in try Fixtures.manifest() {
            try ImageNumbers(image: fixtures.appendingPathComponent(file).path, database: db).check(name)
        }
    }

    @Test("sparse fixed VHDs (footer a separate data segment) and raw files with holes add up")
    func fixedVHDAndRawHoles() throws {
        let scratch = try TemporaryDirectory()
        defer { scratch.cleanup() }
        // A fixed VHD from the test writer, made sparse so its footer is a data segment of its own.
        var writer = VHDWriter(kind: .fixed, virtualSize: 64 << 20)
        writer.write(sector: 0, count: 2048, byte: 0x11)
        writer.write(sector: 65536, count: 128, byte: 0x12)
        try writer.write(to: scratch.path("writer.vhd"))
        try shell(
            """
            set -e
            fallocate --dig-holes writer.vhd
            qemu-img create -q -f vpc -o subformat=fixed,force_size=on qemu.vhd 64M
            qemu-io -f vpc -c 'write -P 1 0 1M' -c 'write -P 2 32M 64k' qemu.vhd >/dev/null
            truncate -s 8M holes.raw
            qemu-io -f raw -c 'write -P 3 64k 4k' -c 'write -P 4 7M 1M' holes.raw >/dev/null
            truncate -s 4M hole-only.raw
            """, in: scratch.url)
        let db = scratch.path("index.sqlite")
        for name in ["writer.vhd", "qemu.vhd", "holes.raw", "hole-only.raw"] {
            let numbers = try ImageNumbers(image: scratch.path(name), database: db)
            numbers.check(name)
            #expect(numbers.virtualSize == (name.hasSuffix(".vhd") ? 64 << 20 : (name == "holes.raw" ? 8 << 20 : 4 << 20)), "\(name)")
        }
        let fixed = try ImageNumbers(image: scratch.path("writer.vhd"), database: db)
        #expect(fixed.dataBytes == 1_114_112 && fixed.zeroBytes == (64 << 20) - 1_114_112)
    }
}

@Suite(.serialized) struct InfoRescanTests {
    @Test("info --output json after an automatic rescan names the new scan's id")
    func infoShowsNewScan() throws {
        let workspace = try makeWorkspace()
        defer { workspace.cleanup() }
        let directory = workspace.url
        let db = directory.appendingPathComponent("index.sqlite").path
        func index(_ result: CLIResult) throws -> (state: [String: Any], scan: [String: Any]) {
            let info = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
            return (info?["index"] as? [String: Any] ?? [:], info ?? [:])
        }
        #expect(try extentdb(["scan", "-q", "mid.qcow2"], database: db, directory: directory).status == 0)
        let before = try index(try extentdb(["info", "--output", "json", "mid.qcow2"], database: db, directory: directory))
        let first = try #require(before.scan["scan_id"] as? Int)
        #expect(before.state["rescanned"] as? Bool == false)
        try shell("qemu-io -f qcow2 -c 'write -P 9 20M 64k' mid.qcow2 >/dev/null", in: directory)
        let after = try index(try extentdb(["info", "--output", "json", "mid.qcow2"], database: db, directory: directory))
        let second = try #require(after.scan["scan_id"] as? Int)
        #expect(after.state["rescanned"] as? Bool == true)
        #expect(second != first)
        #expect(after.scan["scan_id"] as? Int == second)
        #expect(after.state["replaced_scan_id"] as? Int == first)
        let history = try extentdb(["report", "--output", "json", "--history", "mid.qcow2"], database: db, directory: directory)
        #expect(
            history.stdout.contains("\"scan_id\" : \(second)") || history.stdout.contains("\"scan_id\": \(second)"), "\(history.stdout)")
    }
}
