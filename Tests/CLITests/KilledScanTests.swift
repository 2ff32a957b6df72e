import AllocationIndex
import Foundation
import GRDB
import Testing

@testable import TestSupport

/// A scan killed with SIGKILL at any moment leaves the index consistent: the previous scan or the new
/// one, complete, never half of one.
@Suite(.serialized) struct KilledScanTests {
    @Test("SIGKILL during scans: integrity holds and the latest scan is whole")
    func killedScans() throws {
        // Many scattered clusters, so a scan takes long enough to be interrupted.
        let workspace = try TemporaryDirectory(
            prefix: "extentdb-kill",
            setup: """
                set -e
                qemu-img create -q -f qcow2 -o cluster_size=4k disk.qcow2 64G
                awk 'BEGIN { x = 7; for (i = 0; i < 6000; i++) { x = (x * 48271) % 2147483647; printf "write -q -P 1 %.0f 4k\\n", (x % 16000000) * 4096 } }' > cmds
                qemu-io -f qcow2 disk.qcow2 < cmds > /dev/null
                """)
        defer { workspace.cleanup() }
        let directory = workspace.url
        let db = directory.appendingPathComponent("index.sqlite").path
        #expect(try extentdb(["scan", "-q", "disk.qcow2"], database: db, directory: directory).status == 0)
        let binary = productsDirectory.appendingPathComponent("extentdb")
        for attempt in 0..<6 {
            let process = try BackgroundProcess(binary, ["scan", "-q", "--force", "--db", db, "disk.qcow2"], in: directory)
            usleep(UInt32(20_000 + attempt * 70_000))
            process.stop()
            try checkConsistent(db)
        }
    }

    func checkConsistent(_ path: String) throws {
        let queue = try DatabaseQueue(path: path)
        try queue.read { db in
            #expect(try String.fetchOne(db, sql: "PRAGMA integrity_check") == "ok")
            let rows = try Row.fetchAll(
                db,
                sql: """
                    SELECT scans.id, scans.extent_count, scans.data_bytes,
                           (SELECT coalesce(sum(extent_count), 0) FROM extent_chunks WHERE scan_id = coalesce(scans.extents_scan_id, scans.id)),
                           (SELECT coalesce(sum(data_bytes), 0) FROM extent_chunks WHERE scan_id = coalesce(scans.extents_scan_id, scans.id))
                    FROM scans
                    """)
            #expect(!rows.isEmpty)
            // An unchanged rescan's extents are the chunks of the scan it names in extents_scan_id.
            for row in rows {
                let id: Int64 = row[0]
                #expect((row[1] as Int64) == (row[3] as Int64), "scan \(id): extent count")
                #expect((row[2] as Int64) == (row[4] as Int64), "scan \(id): data bytes")
            }
            let latest = try Int64.fetchOne(db, sql: "SELECT latest_scan_id FROM images WHERE path LIKE '%disk.qcow2'")
            #expect(latest != nil)
        }
    }
}
