import Foundation
import Testing

@testable import TestSupport

/// What `scan` tells about the images it finds: warnings, writers, external data files.
@Suite(.serialized) struct ScanNoticesTests {
    /// A fresh directory for one test, set up by `setup` when given.
    static func workspace(setup: String? = nil) throws -> TemporaryDirectory {
        guard let setup else { return try TemporaryDirectory(prefix: "extentdb-notices") }
        return try TemporaryDirectory(prefix: "extentdb-notices", setup: setup)
    }

    @Test("scan warns while qemu holds an image's write lock (qemu-img info refuses it) and prints info's dirty-bit warning")
    func writerAndDirtyWarnings() throws {
        let workspace = try Self.workspace()
        defer { workspace.cleanup() }
        let directory = workspace.url
        let result = try script(
            """
            set -euo pipefail
            qemu-img create -q -f qcow2 -o lazy_refcounts=on disk.qcow2 64M
            IMAGE=$(realpath disk.qcow2)
            dirty() { test $(( 0x$(od -An -tx1 -j79 -N1 disk.qcow2 | tr -d ' ') & 1 )) = 1; }
            # A writer: qemu-io reading commands from a FIFO that this script keeps open.
            mkfifo commands
            qemu-io -f qcow2 disk.qcow2 < commands > qemu-io.log 2>&1 &
            QPID=$!
            trap 'kill -9 $QPID 2>/dev/null || true' EXIT
            exec 3> commands
            # Wait until qemu-io holds its locks, seen in /proc/locks (which takes none): a qemu-img info
            # probe racing with qemu-io's open would take the lock first and make qemu-io fail.
            inode=$(stat -c %i disk.qcow2)
            for _ in $(seq 400); do grep -q ":$inode " /proc/locks && break; sleep 0.05; done
            echo 'write -P 1 0 64k' >&3
            for _ in $(seq 400); do
                if ! qemu-img info disk.qcow2 > info.out 2>&1 && dirty; then break; fi
                sleep 0.05
            done
            grep -q 'Failed to get shared "write" lock' info.out || { cat info.out qemu-io.log; exit 1; }
            dirty

            $X scan disk.qcow2 > scan.out 2> scan.err
            grep -qF "warning: $IMAGE is in use by a writer (qemu holds its write lock); snapshot first" scan.err
            grep -q 'warning: .*image is marked dirty' scan.err
            grep -q '^scanned' scan.out
            $X scan --force --output json disk.qcow2 > scan.json 2> /dev/null
            grep -qF '"warnings"' scan.json
            grep -qF 'is in use by a writer' scan.json

            # The writer dies without closing the image: no lock any more, the dirty bit stays.
            kill -9 $QPID
            wait $QPID 2>/dev/null || true
            for _ in $(seq 200); do qemu-img info disk.qcow2 > /dev/null 2>&1 && break; sleep 0.05; done
            qemu-img info disk.qcow2 > /dev/null
            dirty
            $X scan disk.qcow2 > scan.out 2> scan.err
            if grep -q 'in use by a writer' scan.err; then echo "no writer any more"; cat scan.err; exit 1; fi
            # The same words as info's.
            $X info disk.qcow2 > info.txt
            warning=$(grep -o 'image is marked dirty.*' info.txt | head -1)
            test -n "$warning"
            grep -qF "$warning" scan.err
            echo ok
            """, database: directory.appendingPathComponent("index.sqlite").path, in: directory)
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        #expect(result.stdout.hasSuffix("ok\n"), "\(result.stdout)")
    }

    /// `images/a.qcow2` with its data in `images/a.data` (raw), and an ordinary raw disk `images/b.raw`.
    static func dataFileWorkspace() throws -> TemporaryDirectory {
        try workspace(
            setup: """
                set -e
                mkdir images
                cd images
                qemu-img create -q -f qcow2 -o data_file=a.data,data_file_raw=on a.qcow2 64M
                qemu-io -f qcow2 -c 'write -P 1 0 2M' -c 'write -P 2 30M 1M' a.qcow2 >/dev/null
                truncate -s 16M b.raw
                qemu-io -f raw -c 'write -P 3 0 1M' b.raw >/dev/null
                """)
    }

    /// Data bytes `qemu-img map` reports, run in the image's directory (qemu 7.2 resolves a data file name
    /// against the working directory).
    static func qemuDataBytes(_ path: String) throws -> Int {
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent()
        let output = try run("qemu-img", ["map", "--output=json", path], in: directory)
        let json = try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [[String: Any]]
        return (json ?? []).filter { $0["data"] as? Bool == true }.reduce(0) { $0 + ($1["length"] as? Int ?? 0) }
    }

    /// Bytes `map --detect-zeros` shows as data reading zero that the plain map shows as data.
    static func storedZeroBytes(_ path: String, database: String) throws -> Int {
        func dataZero(_ arguments: [String]) throws -> Int {
            let map = try extentdb(["map", "--output", "json"] + arguments + [path], database: database)
            let rows = try JSONSerialization.jsonObject(with: Data(map.stdout.utf8)) as? [[String: Any]] ?? []
            return rows.filter { $0["data"] as? Bool == true && $0["zero"] as? Bool == true }.reduce(0) { $0 + ($1["length"] as? Int ?? 0) }
        }
        return try dataZero(["--detect-zeros"]) - dataZero([])
    }

    @Test("scan DIR does not index a qcow2's external data file as a raw disk of its own; report counts its bytes once")
    func externalDataFileOnce() throws {
        let workspace = try Self.dataFileWorkspace()
        defer { workspace.cleanup() }
        let directory = workspace.url
        let images = directory.appendingPathComponent("images")
        let db = directory.appendingPathComponent("index.sqlite").path

        let plain = try extentdb(["scan", "--output", "json", images.path], database: db)
        #expect(plain.status == 0, "\(plain.stderr)")
        let plainSummary = (try JSONSerialization.jsonObject(with: Data(plain.stdout.utf8)) as? [String: Any])?["summary"] as? [String: Int]
        #expect(plainSummary?["not_recognised"] == 1, "b.raw only, not the data file: \(plain.stdout)")

        let scan = try extentdb(["scan", "--include-raw", "--output", "json", images.path], database: db)
        #expect(scan.status == 0, "\(scan.stderr)")
        let entries =
            (try JSONSerialization.jsonObject(with: Data(scan.stdout.utf8)) as? [String: Any])?["images"] as? [[String: Any]] ?? []
        let actions = Dictionary(
            entries.map { (URL(fileURLWithPath: $0["path"] as? String ?? "").lastPathComponent, $0["action"] as? String ?? "") }
        ) {
            first, _ in first
        }
        #expect(actions["a.qcow2"] == "unchanged" && actions["b.raw"] == "scanned", "\(actions)")
        #expect(actions["a.data"] == "skipped", "\(scan.stdout)")
        let reason = entries.first { ($0["path"] as? String)?.hasSuffix("a.data") == true }?["reason"] as? String
        #expect(reason?.contains("external data file of") == true && reason?.contains("a.qcow2") == true, "\(String(describing: reason))")

        let report = try extentdb(["report", "--output", "json", images.path], database: db)
        #expect(report.status == 0, "\(report.stderr)")
        let json = try JSONSerialization.jsonObject(with: Data(report.stdout.utf8)) as? [String: Any]
        let reported = (json?["images"] as? [[String: Any]] ?? []).compactMap { $0["path"] as? String }
        #expect(reported.map { URL(fileURLWithPath: $0).lastPathComponent }.sorted() == ["a.qcow2", "b.raw"])
        let overall = (json?["totals"] as? [String: Any])?["overall"] as? [String: Any]
        // qemu-img map's data bytes, less the data over host holes (the raw data file's unwritten parts),
        // which read as zeros and are counted as zero.
        let expected =
            try Self.qemuDataBytes(images.appendingPathComponent("a.qcow2").path)
            + Self.qemuDataBytes(images.appendingPathComponent("b.raw").path)
            - Self.storedZeroBytes(images.appendingPathComponent("a.qcow2").path, database: db)
        #expect(overall?["allocated_bytes"] as? Int == expected)
        #expect(overall?["image_count"] as? Int == 2)
    }

    @Test("the service's watcher does not index a qcow2's external data file as a raw disk of its own")
    func watcherSkipsDataFile() throws {
        try expectServeScript(
            """
            for _ in $(seq 200); do
                $C -H "$T" localhost:$P/v1/images > images.json
                grep -q 'a.qcow2' images.json && grep -q 'b.raw' images.json && break
                sleep 0.1
            done
            grep -q 'a.qcow2' images.json && grep -q 'b.raw' images.json || { cat images.json serve.log; exit 1; }
            # Settled in the same pass as the images: had it been scanned, its line would be there.
            grep -q 'path=[^ ]*/b\\.raw .*image changed; rescanning' serve.log
            if grep -q '/a\\.raw"' images.json || grep -q 'path=[^ ]*/a\\.raw ' serve.log; then cat images.json serve.log; exit 1; fi
            echo ok
            """,
            // Raw disks are indexed by the watcher only with --include-raw, as by scan DIR.
            prologue: startServer.replacingOccurrences(of: "--watch-interval 1 ", with: "--watch-interval 1 --include-raw "),
            in: {
                try Self.workspace(
                    setup: """
                        set -e
                        mkdir root
                        cd root
                        qemu-img create -q -f qcow2 -o data_file=a.raw,data_file_raw=on a.qcow2 64M
                        qemu-io -f qcow2 -c 'write -P 1 0 2M' a.qcow2 >/dev/null
                        truncate -s 16M b.raw
                        qemu-io -f raw -c 'write -P 3 0 1M' b.raw >/dev/null
                        """)
            })
    }
}
