import Foundation
import Testing

@testable import TestSupport

/// What a run of the `extentdb` binary printed.
typealias CLIResult = ProcessResult

let productsDirectory: URL = {
    // swift test runs the test bundle from .build/<triple>/<config>, where the executable is built too.
    var candidates: [URL] = []
    for bundle in Bundle.allBundles + [Bundle.main] {
        candidates.append(bundle.bundleURL)
        candidates.append(bundle.bundleURL.deletingLastPathComponent())
    }
    return candidates.first { FileManager.default.isExecutableFile(atPath: $0.appendingPathComponent("extentdb").path) }
        ?? URL(fileURLWithPath: ".build/debug")
}()

/// Runs the built `extentdb` binary as a real process, with `EXTENTDB_DB` set to `database`.
func extentdb(_ arguments: [String], database: String, directory: URL? = nil) throws -> CLIResult {
    var environment = ProcessInfo.processInfo.environment
    environment["EXTENTDB_DB"] = database
    return try runProcess(productsDirectory.appendingPathComponent("extentdb"), arguments, environment: environment, in: directory)
}

/// Runs a bash script with `$X` naming the built extentdb binary and `EXTENTDB_DB` set to `database`.
func script(_ text: String, database: String, in directory: URL) throws -> CLIResult {
    var environment = ProcessInfo.processInfo.environment
    environment["EXTENTDB_DB"] = database
    environment["X"] = productsDirectory.appendingPathComponent("extentdb").path
    return try runProcess(URL(fileURLWithPath: "/bin/bash"), ["-c", text], environment: environment, in: directory)
}

/// A directory with a small chain: base.raw <- mid.qcow2 <- top.qcow2, plus a note file that is no image.
func makeWorkspace() throws -> TemporaryDirectory {
    try TemporaryDirectory(
        prefix: "extentdb-cli",
        setup: """
            set -e
            truncate -s 32M base.raw
            qemu-io -f raw -c 'write -P 1 0 1M' base.raw >/dev/null
            qemu-img create -q -f qcow2 -b base.raw -F raw mid.qcow2
            qemu-io -f qcow2 -c 'write -P 2 4M 256k' mid.qcow2 >/dev/null
            qemu-img create -q -f qcow2 -o extended_l2=on,cluster_size=128k -b mid.qcow2 -F qcow2 top.qcow2
            qemu-io -f qcow2 -c 'write -P 3 8M 4k' -c 'write -c -P 4 16M 128k' top.qcow2 >/dev/null
            echo "not an image" > notes.txt
            """)
}

@Suite(.serialized) struct CLITests {
    @Test("scan a directory finds images by content, then map answers exactly like qemu-img map")
    func scanAndMap() throws {
        let workspace = try makeWorkspace()
        defer { workspace.cleanup() }
        let directory = workspace.url
        let db = directory.appendingPathComponent("index.sqlite").path
        let scan = try extentdb(["scan", "--output", "json", directory.path], database: db)
        #expect(scan.status == 0, "\(scan.stderr)")
        let summary = try JSONSerialization.jsonObject(with: Data(scan.stdout.utf8)) as? [String: Any]
        let counts = summary?["summary"] as? [String: Int]
        #expect(counts?["scanned"] == 2, "qcow2 files only, by content: \(scan.stdout)")
        let again = try extentdb(["scan", "--output", "json", directory.path], database: db)
        #expect(again.stdout.contains("\"unchanged\" : 2"), "\(again.stdout)")

        let map = try extentdb(["map", "--output", "json", "top.qcow2"], database: db, directory: directory)
        #expect(map.status == 0, "\(map.stderr)")
        let qemu = try runProcess(URL(fileURLWithPath: "/usr/bin/qemu-img"), ["map", "--output=json", "top.qcow2"], in: directory)
        #expect(map.stdout.replacingOccurrences(of: ", \"compressed\": true", with: "") == qemu.stdout)
        #expect(map.stdout.contains("\"compressed\": true"))
    }

    @Test("map --offset/--length clips to the range; human output names the supplying file")
    func mapRange() throws {
        let workspace = try makeWorkspace()
        defer { workspace.cleanup() }
        let directory = workspace.url
        let db = directory.appendingPathComponent("index.sqlite").path
        let ranged = try extentdb(
            ["map", "--output", "json", "--offset", "4194304", "--length", "131072", "top.qcow2"], database: db, directory: directory)
        let entries = try JSONSerialization.jsonObject(with: Data(ranged.stdout.utf8)) as? [[String: Any]]
        #expect(entries?.count == 1)
        #expect(entries?.first?["start"] as? Int == 4_194_304)
        #expect(entries?.first?["length"] as? Int == 131_072)
        #expect(entries?.first?["depth"] as? Int == 1)
        let human = try extentdb(["map", "top.qcow2"], database: db, directory: directory)
        #expect(human.stdout.contains("mid.qcow2"))
        #expect(human.stdout.contains("base.raw"))
    }

    @Test("read-headers prints vhd-tool's JSON shapes, rounding sub-cluster extents outward")
    func readHeaders() throws {
        let workspace = try makeWorkspace()
        defer { workspace.cleanup() }
        let directory = workspace.url
        let db = directory.appendingPathComponent("index.sqlite").path
        let legacy = try extentdb(["read-headers", "top.qcow2"], database: db, directory: directory)
        // 128 KiB clusters: base data 0-1M = clusters 0-7; mid 4M+256k = 32-33; top 4k at 8M = 64; compressed 16M = 128.
        #expect(legacy.stdout == "{\"virtual_size\":33554432,\"cluster_bits\":17,\"data_clusters\":[0,1,2,3,4,5,6,7,32,33,64,128]}\n")
        let interval = try extentdb(["read-headers", "--format", "interval", "top.qcow2"], database: db, directory: directory)
        #expect(interval.stdout == "{\"virtual_size\":33554432,\"cluster_bits\":17,\"data_clusters\":[[0,7],[32,33],[64,64],[128,128]]}\n")
    }

    @Test("info shows the chain, snapshots-free metadata and index state as JSON")
    func info() throws {
        let workspace = try makeWorkspace()
        defer { workspace.cleanup() }
        let directory = workspace.url
        let db = directory.appendingPathComponent("index.sqlite").path
        let result = try extentdb(["info", "--output", "json", "top.qcow2"], database: db, directory: directory)
        #expect(result.status == 0, "\(result.stderr)")
        let info = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
        let chain = info?["chain"] as? [[String: Any]]
        #expect(
            chain?.map { ($0["path"] as? String)?.split(separator: "/").last.map(String.init) } == ["top.qcow2", "mid.qcow2", "base.raw"])
        let metadata = info?["metadata"] as? [String: Any]
        let qcow2 = metadata?["qcow2"] as? [String: Any]
        #expect(qcow2?["extended_l2"] as? Bool == true)
        #expect((metadata?["backing"] as? [String: Any])?["name"] as? String == "mid.qcow2")
    }

    @Test("exit codes: 1 for bad images with file/field/offset, 2 for usage errors")
    func exitCodes() throws {
        let workspace = try makeWorkspace()
        defer { workspace.cleanup() }
        let directory = workspace.url
        let db = directory.appendingPathComponent("index.sqlite").path
        let missing = try extentdb(["map", "nope.qcow2"], database: db, directory: directory)
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("nope.qcow2"))
        try shell(
            "cp mid.qcow2 bad.qcow2 && printf '\\x00\\x00\\x00\\x28' | dd of=bad.qcow2 bs=1 seek=20 conv=notrunc 2>/dev/null", in: directory
        )
        let bad = try extentdb(["scan", "bad.qcow2"], database: db, directory: directory)
        #expect(bad.status == 1)
        #expect(
            bad.stderr.contains("bad.qcow2") && bad.stderr.contains("cluster_bits") && bad.stderr.contains("offset 20"), "\(bad.stderr)")
        let usage = try extentdb(["map"], database: db, directory: directory)
        #expect(usage.status == 2)
        let unknown = try extentdb(["frobnicate"], database: db, directory: directory)
        #expect(unknown.status == 2)
        let help = try extentdb(["--help"], database: db, directory: directory)
        #expect(help.status == 0 && help.stdout.contains("scan"))
    }

    @Test("map answers from the index: a fresh index is used without scanning, a changed image is rescanned")
    func mapUsesIndex() throws {
        let workspace = try makeWorkspace()
        defer { workspace.cleanup() }
        let directory = workspace.url
        let db = directory.appendingPathComponent("index.sqlite").path
        #expect(try extentdb(["scan", "top.qcow2"], database: db, directory: directory).status == 0)
        // With --no-rescan a fresh index answers; after a write it refuses, naming the stale layer.
        #expect(try extentdb(["map", "--no-rescan", "top.qcow2"], database: db, directory: directory).status == 0)
        try shell("qemu-io -f qcow2 -c 'write -P 9 20M 64k' mid.qcow2 >/dev/null", in: directory)
        let stale = try extentdb(["map", "--no-rescan", "top.qcow2"], database: db, directory: directory)
        #expect(stale.status == 1)
        #expect(stale.stderr.contains("stale") && stale.stderr.contains("mid.qcow2"), "\(stale.stderr)")
        let rescanned = try extentdb(
            ["map", "--output", "json", "--offset", "20971520", "--length", "65536", "top.qcow2"], database: db, directory: directory)
        #expect(rescanned.stdout.contains("\"depth\": 1, \"present\": true, \"zero\": false, \"data\": true"))
    }
}

@Suite(.serialized) struct ExportCLITests {
    @Test("export qcow2, vhd and xva through a pipe; qcow2 passes qemu-img check and matches")
    func throughPipe() throws {
        let workspace = try makeWorkspace()
        defer { workspace.cleanup() }
        let directory = workspace.url
        let binary = productsDirectory.appendingPathComponent("extentdb").path
        try shell(
            """
            set -e -o pipefail
            export EXTENTDB_DB=\(directory.path)/index.sqlite
            '\(binary)' export top.qcow2 --format qcow2 | cat > piped.qcow2
            qemu-img check -q piped.qcow2
            qemu-img compare -q piped.qcow2 top.qcow2
            '\(binary)' export top.qcow2 --format raw | cat > piped.raw
            qemu-img compare -q -f raw piped.raw top.qcow2
            '\(binary)' export top.qcow2 --format vhd | cat > piped.vhd
            qemu-img compare -q piped.vhd piped.raw
            '\(binary)' export top.qcow2 --format xva | tar tf - > members.txt
            grep -qx 'Ref:0/00000000' members.txt
            grep -qx 'Ref:0/00000000.xxhash' members.txt
            """, in: directory)
    }

    @Test("a closed pipe is an error with a non-zero exit")
    func closedPipe() throws {
        let workspace = try makeWorkspace()
        defer { workspace.cleanup() }
        let directory = workspace.url
        let binary = productsDirectory.appendingPathComponent("extentdb").path
        try shell(
            """
            export EXTENTDB_DB=\(directory.path)/index.sqlite
            '\(binary)' export top.qcow2 --format raw 2> err.txt | head -c 1000 > /dev/null
            echo "${PIPESTATUS[0]}" > status.txt
            """, in: directory)
        let status = try String(contentsOf: directory.appendingPathComponent("status.txt"), encoding: .utf8)
        let message = try String(contentsOf: directory.appendingPathComponent("err.txt"), encoding: .utf8)
        #expect(status.trimmingCharacters(in: .whitespacesAndNewlines) == "1")
        #expect(message.contains("standard output") && message.contains("write failed"), "\(message)")
    }

    @Test("a failed export leaves no output file; --base must share a layer; raw --base writes --extents")
    func failuresAndDeltas() throws {
        let workspace = try makeWorkspace()
        defer { workspace.cleanup() }
        let directory = workspace.url
        let db = directory.appendingPathComponent("index.sqlite").path
        // Corrupt the top's L1 so the (re)scan fails: nothing may appear at --to.
        try shell(
            "cp top.qcow2 broken.qcow2 && printf '\\xff\\xff\\xff\\xff' | dd of=broken.qcow2 bs=1 seek=36 conv=notrunc 2>/dev/null",
            in: directory)
        let failed = try extentdb(["export", "broken.qcow2", "--format", "qcow2", "--to", "out.qcow2"], database: db, directory: directory)
        #expect(failed.status == 1)
        #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("out.qcow2").path))
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.contains("partial") }
        #expect(leftovers.isEmpty)
        try shell("qemu-img create -q -f qcow2 lone.qcow2 32M", in: directory)
        let unrelated = try extentdb(
            ["export", "mid.qcow2", "--base", "lone.qcow2", "--format", "raw", "--to", "x.raw"], database: db, directory: directory)
        #expect(unrelated.status == 1 && unrelated.stderr.contains("share no layer"), "\(unrelated.stderr)")
        let delta = try extentdb(
            ["export", "top.qcow2", "--base", "mid.qcow2", "--format", "raw", "--to", "d.raw", "--extents", "d.json"], database: db,
            directory: directory)
        #expect(delta.status == 0, "\(delta.stderr)")
        let changed =
            try JSONSerialization.jsonObject(with: Data(contentsOf: directory.appendingPathComponent("d.json"))) as? [[String: Any]]
        #expect(changed?.map { $0["start"] as? Int } == [8_388_608, 16_777_216])
        let overlay = try extentdb(
            ["export", "top.qcow2", "--base", "mid.qcow2", "--format", "qcow2", "--to", "overlay.qcow2"], database: db, directory: directory
        )
        #expect(overlay.status == 0, "\(overlay.stderr)")
        try shell(
            "qemu-img compare -q overlay.qcow2 top.qcow2 && qemu-img info overlay.qcow2 | grep -q 'backing file: mid.qcow2'", in: directory)
        let usage = try extentdb(["export", "top.qcow2", "--format", "qcow2", "--offset", "5"], database: db, directory: directory)
        #expect(usage.status == 2)
    }
}

@Suite(.serialized) struct ReportCLITests {
    @Test("report prints table/json/csv/html for a directory; diff shows a write between two scans")
    func reportAndDiff() throws {
        let workspace = try makeWorkspace()
        defer { workspace.cleanup() }
        let directory = workspace.url
        let db = directory.appendingPathComponent("index.sqlite").path
        #expect(try extentdb(["scan", "-q", directory.path], database: db).status == 0)
        let table = try extentdb(["report", directory.path], database: db)
        #expect(table.status == 0, "\(table.stderr)")
        #expect(table.stdout.contains("top.qcow2") && table.stdout.contains("total") && table.stdout.contains("MiB"))
        let json = try extentdb(["report", "--output", "json", "--sort", "allocated_bytes", "--top", "1", directory.path], database: db)
        let parsed = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        #expect((parsed?["images"] as? [[String: Any]])?.count == 1)
        let csv = try extentdb(["report", "--output", "csv", directory.path], database: db)
        #expect(csv.stdout.hasPrefix("path,format,virtual_size"))
        let html = try extentdb(["report", "--output", "html", "--to", "r.html", directory.path], database: db, directory: directory)
        #expect(html.status == 0)
        let page = try String(contentsOf: directory.appendingPathComponent("r.html"), encoding: .utf8)
        #expect(page.components(separatedBy: "<svg").count - 1 == 2)
        #expect(try extentdb(["report", "--sort", "bogus"], database: db).status == 2)
        #expect(try extentdb(["report", "/nonexistent/dir"], database: db).status == 1)

        let scans = try extentdb(["report", "--output", "json", "--history", "mid.qcow2"], database: db, directory: directory)
        let before =
            ((try JSONSerialization.jsonObject(with: Data(scans.stdout.utf8)) as? [String: Any])?["images"] as? [[String: Any]])?.first?[
                "scan_id"] as? Int
        try shell("qemu-io -f qcow2 -c 'write -P 5 12M 64k' mid.qcow2 >/dev/null", in: directory)
        let diff = try extentdb(["diff", "mid.qcow2", "--scan", "\(before ?? 0)", "--output", "json"], database: db, directory: directory)
        #expect(diff.status == 0, "\(diff.stderr)")
        let result = try JSONSerialization.jsonObject(with: Data(diff.stdout.utf8)) as? [String: Any]
        #expect(result?["newly_allocated_bytes"] as? Int == 65536)
        let twoImages = try extentdb(["diff", "mid.qcow2", "top.qcow2"], database: db, directory: directory)
        #expect(twoImages.status == 0 && twoImages.stdout.contains("ranges differ"))
        #expect(try extentdb(["diff", "mid.qcow2"], database: db, directory: directory).status == 2)
    }
}

@Suite(.serialized) struct FullDiskTests {
    @Test("a full disk (/dev/full as standard output) is an error with a non-zero exit")
    func fullDisk() throws {
        let workspace = try makeWorkspace()
        defer { workspace.cleanup() }
        let directory = workspace.url
        let binary = productsDirectory.appendingPathComponent("extentdb").path
        try shell(
            """
            export EXTENTDB_DB=\(directory.path)/index.sqlite
            '\(binary)' export top.qcow2 --format qcow2 > /dev/full 2> err.txt
            echo $? > status.txt
            """, in: directory)
        let status = try String(contentsOf: directory.appendingPathComponent("status.txt"), encoding: .utf8)
        let message = try String(contentsOf: directory.appendingPathComponent("err.txt"), encoding: .utf8)
        #expect(status.trimmingCharacters(in: .whitespacesAndNewlines) == "1")
        #expect(message.contains("No space left on device"), "\(message)")
    }
}
