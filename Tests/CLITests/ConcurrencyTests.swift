import Foundation
import Testing

@testable import TestSupport

/// Many extentdb processes on one index: none may see "database is locked", and each gets what a serial
/// run gives.
@Suite(.serialized) struct ConcurrencyTests {
    @Test("eight processes creating the same new index at once all succeed (WAL switch and migrations race)")
    func concurrentCreation() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        let result = try script(
            """
            set -e
            qemu-img create -q -f qcow2 small.qcow2 64M
            for round in 1 2 3; do
                rm -f index.sqlite index.sqlite-wal index.sqlite-shm
                for i in 1 2 3 4 5 6 7 8; do
                    ( set +e; $X scan -q small.qcow2 > /dev/null 2> err.$i; echo "status $?" ) &
                done
                wait
            done
            cat err.*
            """, database: directory.path("index.sqlite"), in: directory.url)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.components(separatedBy: "status 0").count == 25, "\(result.stdout)\n\(result.stderr)")
        #expect(!result.stdout.contains("locked") && !result.stdout.contains("already exists"), "\(result.stdout)")
    }

    @Test("8 processes run scan/map/export/report on one index for 5 s: results equal serial runs, no lock errors")
    func mixedOperations() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        let script = packageRoot.appendingPathComponent("scripts/concurrency.sh").path
        let binary = productsDirectory.appendingPathComponent("extentdb").path
        var environment = ProcessInfo.processInfo.environment
        environment["CONCURRENCY_SMALL"] = "1"
        let result = try runProcess(
            URL(fileURLWithPath: "/bin/bash"), [script, "5", "8", binary], environment: environment, in: directory.url)
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        #expect(result.stdout.contains("all results equal to the serial ones, no lock errors"), "\(result.stdout)")
    }
}
