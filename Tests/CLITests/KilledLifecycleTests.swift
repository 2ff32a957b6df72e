import Foundation
import GRDB
import Testing

@testable import TestSupport

/// `gc` and `forget` killed with SIGKILL at any moment leave the index consistent: the command happened
/// wholly or not at all. The short version of scripts/kill-loop-lifecycle.sh.
@Suite(.serialized) struct KilledLifecycleTests {
    /// The index's logical state: scans per image and the extents each reads (through its chunk owner).
    struct State: Equatable {
        var scans: Int
        var images: [String]
        var latestExtents: [String: String]
    }

    @Test("SIGKILL during gc --keep 1 and forget: integrity holds, each scan has its extents, all or nothing")
    func killedLifecycle() throws {
        // 8,000 scattered clusters (four index chunks a scan), and a history of 8 scans of it: every other one
        // changed, the others unchanged rescans that share the previous scan's chunks.
        let workspace = try TemporaryDirectory(
            prefix: "extentdb-kill-gc",
            setup: """
                set -e
                python3 -c '
                x = 7
                with open("disk.raw", "wb") as f:
                    f.truncate(64 << 30)
                    for i in range(8000):
                        x = x * 48271 % 2147483647
                        f.seek(x % 16000000 * 4096)
                        f.write(bytes([i % 250 + 1]) * 4096)
                '
                qemu-img convert -O qcow2 -o cluster_size=4k disk.raw disk.qcow2
                rm disk.raw
                truncate -s 16M small.raw
                """)
        defer { workspace.cleanup() }
        let directory = workspace.url
        let template = directory.appendingPathComponent("template.sqlite").path
        for round in 0..<8 {
            if round % 2 == 0 {
                try shell("qemu-io -f qcow2 -c 'write -q -P 9 \(round * 1_048_576) 4k' disk.qcow2 > /dev/null", in: directory)
            }
            let scan = try extentdb(
                ["scan", "-q", "--force", "--keep", "100", "disk.qcow2", "small.raw"], database: template, directory: directory)
            #expect(scan.status == 0, "\(scan.stderr)")
        }
        _ = try DatabaseQueue(path: template).writeWithoutTransaction { try $0.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
        let before = try checkedState(template)
        #expect(before.scans == 16)

        let db = directory.appendingPathComponent("index.sqlite").path
        let binary = productsDirectory.appendingPathComponent("extentdb")
        let commands: [(arguments: [String], delay: UInt32)] = [
            (["gc", "--keep", "1"], 40_000), (["gc", "--keep", "1"], 90_000), (["gc", "--keep", "1", "--vacuum"], 150_000),
            (["forget", "disk.qcow2"], 40_000), (["forget", "disk.qcow2"], 90_000), (["forget", "disk.qcow2"], 150_000),
        ]
        var finished: [[String]: State] = [:]
        for (arguments, delay) in commands {
            if finished[arguments] == nil {
                try copyIndex(template, to: db)
                #expect(try extentdb(arguments, database: db, directory: directory).status == 0)
                finished[arguments] = try checkedState(db)
            }
            try copyIndex(template, to: db)
            let process = try BackgroundProcess(binary, arguments + ["--db", db], in: directory)
            usleep(delay)
            process.stop()
            let after = try checkedState(db)
            #expect(after == before || after == finished[arguments], "\(arguments) killed after \(delay / 1000) ms: \(after)")
        }
        #expect(finished[["gc", "--keep", "1"]]?.scans == 2)
        #expect(finished[["forget", "disk.qcow2"]]?.images.count == 1)
    }

    func copyIndex(_ source: String, to target: String) throws {
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: target + suffix) }
        try FileManager.default.copyItem(atPath: source, toPath: target)
    }

    /// Checks the invariants every state must keep and returns the state.
    func checkedState(_ path: String) throws -> State {
        let queue = try DatabaseQueue(path: path)
        return try queue.read { db in
            #expect(try String.fetchOne(db, sql: "PRAGMA integrity_check") == "ok")
            #expect(try Row.fetchAll(db, sql: "PRAGMA foreign_key_check").isEmpty)
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM extent_chunks WHERE scan_id NOT IN (SELECT id FROM scans)") == 0)
            let rows = try Row.fetchAll(
                db,
                sql: """
                    SELECT s.id, s.data_bytes, s.zero_bytes, s.virtual_size, o.extents_scan_id,
                           (SELECT coalesce(sum(data_bytes), 0) FROM extent_chunks WHERE scan_id = o.id),
                           (SELECT coalesce(sum(zero_bytes), 0) FROM extent_chunks WHERE scan_id = o.id),
                           (SELECT coalesce(sum(length), 0) FROM extent_chunks WHERE scan_id = o.id)
                    FROM scans s JOIN scans o ON o.id = coalesce(s.extents_scan_id, s.id)
                    """)
            for row in rows {
                let id: Int64 = row[0]
                #expect((row[4] as Int64?) == nil, "scan \(id) borrows from a scan that borrows")
                #expect((row[1] as Int64) == (row[5] as Int64), "scan \(id): data bytes")
                #expect((row[2] as Int64) == (row[6] as Int64), "scan \(id): zero bytes")
                #expect((row[3] as Int64) == (row[7] as Int64), "scan \(id): chunks cover the disk")
            }
            var latest: [String: String] = [:]
            for row in try Row.fetchAll(
                db,
                sql: """
                    SELECT i.path, (SELECT group_concat(hex(runs), '') FROM (SELECT runs FROM extent_chunks
                        WHERE scan_id = coalesce(s.extents_scan_id, s.id) ORDER BY start))
                    FROM images i JOIN scans s ON s.id = i.latest_scan_id
                    """)
            {
                latest[row[0]] = row[1]
            }
            return State(
                scans: try Int.fetchOne(db, sql: "SELECT count(*) FROM scans") ?? -1,
                images: try String.fetchAll(db, sql: "SELECT path FROM images WHERE latest_scan_id IS NOT NULL ORDER BY path"),
                latestExtents: latest)
        }
    }
}
