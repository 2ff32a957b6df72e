import Foundation
import GRDB
import Testing

@testable import TestSupport

/// Whether this process may mount a tmpfs (tried once on a scratch directory, unmounted at once).
let canMountTmpfs: Bool = {
    guard geteuid() == 0, let probe = try? TemporaryDirectory() else { return false }
    defer { probe.cleanup() }
    guard (try? run("mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", probe.url.path])) != nil else { return false }
    _ = try? run("umount", [probe.url.path])
    return true
}()

/// A file system that fills up under a scan (the index on it) or an export (the output on it): a clear error,
/// exit status 1, the index intact, and nothing left under the output's name.
///
/// Runs on a 2 MiB tmpfs, so only where mounting is allowed (root, no seccomp filter against mount(2));
/// elsewhere the suite is skipped. The mount is removed when the test ends, whatever happens.
@Suite(.serialized, .enabled(if: canMountTmpfs, "needs to mount a tmpfs (root)"))
struct FullFileSystemTests {
    /// Mounts a 2 MiB tmpfs at `directory/full`, runs `body`, and unmounts it (lazily if still busy).
    func withSmallFileSystem(in directory: URL, _ body: (String) throws -> Void) throws {
        let mountPoint = directory.appendingPathComponent("full").path
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        try run("mount", ["-t", "tmpfs", "-o", "size=2M", "tmpfs", mountPoint])
        defer {
            if (try? run("umount", [mountPoint])) == nil { _ = try? run("umount", ["-l", mountPoint]) }
        }
        try body(mountPoint)
    }

    /// Fills the file system mounted at `full` with `full/filler`, leaving 48 KiB.
    let fill = "head -c $(( ($(df -k --output=avail full | tail -1) - 48) * 1024 )) /dev/zero > full/filler"

    @Test("a scan whose index is on a full file system fails clearly; earlier scans stay intact and readable")
    func scanIntoFullIndex() throws {
        let directory = try TemporaryDirectory(
            setup: """
                set -e
                qemu-img create -q -f qcow2 small.qcow2 1G
                python3 -c "
                f = open('big.raw', 'wb')
                for i in range(16384):
                    f.seek(i * 65536); f.write(b'x' * 4096)
                f.truncate(1 << 30)"
                """)
        defer { directory.cleanup() }
        try withSmallFileSystem(in: directory.url) { mountPoint in
            let db = mountPoint + "/index.sqlite"
            let first = try script("$X scan -q small.qcow2", database: db, in: directory.url)
            #expect(first.status == 0, "\(first.stderr)")
            let result = try script("\(fill) && $X scan -q big.raw", database: db, in: directory.url)
            #expect(result.status == 1)
            #expect(result.stderr.contains("cannot write the index \(db): its file system is full"), "\(result.stderr)")
            #expect(!result.stderr.contains("Fatal error"))
            let queue = try DatabaseQueue(
                path: db,
                configuration: {
                    var c = Configuration(); c.readonly = true; return c
                }())
            try queue.read { db in
                #expect(try String.fetchOne(db, sql: "PRAGMA integrity_check") == "ok")
                let scanned = try String.fetchAll(db, sql: "SELECT path FROM images WHERE latest_scan_id IS NOT NULL")
                #expect(scanned.count == 1 && scanned[0].hasSuffix("/small.qcow2"), "\(scanned)")
            }
            // Reading the index still works on the full file system.
            let map = try script("$X map small.qcow2 --output json", database: db, in: directory.url)
            #expect(map.status == 0, "\(map.stderr)")
            // With room again, the same scan succeeds.
            let again = try script("rm full/filler && $X scan -q big.raw", database: db, in: directory.url)
            #expect(again.status == 0, "\(again.stderr)")
        }
    }

    @Test("an export to a full file system fails clearly in every format and leaves no file, partial or temporary")
    func exportToFullFileSystem() throws {
        let directory = try TemporaryDirectory(
            setup: """
                set -e
                qemu-img create -q -f qcow2 data.qcow2 64M
                qemu-io -f qcow2 -c 'write -q -P 7 0 8M' data.qcow2 > /dev/null
                """)
        defer { directory.cleanup() }
        let db = directory.path("index.sqlite")
        try withSmallFileSystem(in: directory.url) { mountPoint in
            // Full from the start, then room for a part of the 8 MiB export: both fail the same way.
            for setup in [fill, "rm -f full/filler"] {
                for format in ["raw", "qcow2", "vhd"] {
                    let result = try script(
                        "\(setup) && $X export data.qcow2 --format \(format) --to full/out.\(format)", database: db, in: directory.url)
                    #expect(result.status == 1, "\(format): \(result.stderr)")
                    #expect(
                        result.stderr.contains("full/out.\(format): ") && result.stderr.contains("No space left on device"),
                        "\(format): \(result.stderr)")
                    let left = try FileManager.default.contentsOfDirectory(atPath: mountPoint).filter { $0 != "filler" }
                    #expect(left.isEmpty, "\(format): left behind \(left)")
                }
            }
            // The index (elsewhere) is intact and the export works where there is room.
            let ok = try script(
                "$X export data.qcow2 --format raw --to out.raw && qemu-img compare -q -f raw -F qcow2 out.raw data.qcow2", database: db,
                in: directory.url)
            #expect(ok.status == 0, "\(ok.stderr)")
        }
    }
}
