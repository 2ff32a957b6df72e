import Foundation
import Testing

@testable import TestSupport

/// `extentdb nbd` against real clients: nbdinfo, nbdcopy (libnbd), qemu-img, and qemu-nbd as the peer.
@Suite(.serialized) struct NBDCommandTests {
    /// Fixtures served: every one but the encrypted image (not exportable; tested apart).
    static func servedFixtures() throws -> [(name: String, file: String)] {
        try Fixtures.manifest().filter { $0.name != "encrypted" }
    }

    static func qemuFormat(_ file: String) -> String { file.hasSuffix(".raw") ? "raw" : "qcow2" }

    @Test("nbdinfo --map (base:allocation, qemu:allocation-depth) agrees with extentdb map and qemu-nbd for every fixture")
    func maps() throws {
        let fixtures = try Fixtures.directory()
        let work = try TemporaryDirectory()
        defer { work.cleanup() }
        let database = work.path("index.sqlite")
        let trust = ["--trust-root", fixtures.path]
        for fixture in try Self.servedFixtures() {
            let image = fixtures.appendingPathComponent(fixture.file).path
            let expected = try expectedMaps(image, database: database, in: work.url, arguments: trust)
            let ours = try NBDServerProcess(extentdb: image, database: database, in: work.url, arguments: trust)
            defer { ours.stop() }
            let qemu = try NBDServerProcess(qemuNBD: image, format: Self.qemuFormat(fixture.file), in: work.url, workingDirectory: fixtures)
            defer { qemu.stop() }
            let allocation = try nbdinfoMap(ours.uri, context: "base:allocation", in: work.url)
            let depth = try nbdinfoMap(ours.uri, context: "qemu:allocation-depth", in: work.url)
            #expect(allocation == expected.allocation, "\(fixture.name)")
            #expect(depth == expected.depth, "\(fixture.name)")
            #expect(allocation == (try nbdinfoMap(qemu.uri, context: "base:allocation", in: work.url)), "\(fixture.name) vs qemu-nbd")
            let qemuDepth = try nbdinfoMap(qemu.uri, context: "qemu:allocation-depth", in: work.url)
            if fixture.name == "short-top" {
                // Past the end of its shorter backing file qemu-nbd -A reports depth 2, where qemu-img map
                // itself says "present": false; we report 0 (absent), as qemu-img map does.
                #expect(depth != qemuDepth)
                #expect(depth.contains { $0.value == 0 })
            } else {
                #expect(depth == qemuDepth, "\(fixture.name) vs qemu-nbd")
            }
        }
    }

    @Test("nbdcopy and qemu-img convert from the server give each fixture's guest content")
    func copies() throws {
        let fixtures = try Fixtures.directory()
        let work = try TemporaryDirectory()
        defer { work.cleanup() }
        let database = work.path("index.sqlite")
        for fixture in try Self.servedFixtures() {
            let image = fixtures.appendingPathComponent(fixture.file).path
            let server = try NBDServerProcess(
                extentdb: image, database: database, in: work.url, arguments: ["--trust-root", fixtures.path])
            defer { server.stop() }
            let format = Self.qemuFormat(fixture.file)
            // In the fixtures' directory: qemu-img opens a qcow2 data file relative to where it runs.
            let copy = work.path("copy.raw")
            let converted = work.path("converted.raw")
            let result = try bash(
                """
                set -e
                rm -f '\(copy)' '\(converted)'
                nbdcopy '\(server.uri)' '\(copy)'
                qemu-img compare -q -f raw -F \(format) '\(copy)' '\(image)'
                qemu-img convert -f raw -O raw 'nbd+unix:///?socket=\(server.socket)' '\(converted)'
                qemu-img compare -q -f raw -F \(format) '\(converted)' '\(image)'
                """, in: fixtures)
            #expect(result.status == 0, "\(fixture.name): \(result.stderr)")
        }
    }

    @Test("nbdcopy --connections=4 (multi-conn) copies a 64 MiB chain exactly")
    func multiConn() throws {
        let work = try TemporaryDirectory()
        defer { work.cleanup() }
        let made = try bash(
            """
            set -e
            qemu-img create -q -f qcow2 base.qcow2 64M
            qemu-io -f qcow2 -c 'write -P 1 0 20M' -c 'write -P 2 30M 3M' -c 'write -z 40M 4M' base.qcow2 >/dev/null
            qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 top.qcow2
            qemu-io -f qcow2 -c 'write -P 3 1M 5M' -c 'write -P 4 50M 64k' -c 'write -z 2M 1M' top.qcow2 >/dev/null
            """, in: work.url)
        #expect(made.status == 0, "\(made.stderr)")
        let server = try NBDServerProcess(extentdb: "top.qcow2", database: work.path("index.sqlite"), in: work.url)
        defer { server.stop() }
        let result = try bash(
            """
            set -e
            nbdcopy --connections=4 --requests=16 '\(server.uri)' copy.raw
            qemu-img compare -q -f raw copy.raw top.qcow2
            nbdinfo --can multi-conn '\(server.uri)'
            """, in: work.url)
        #expect(result.status == 0, "\(result.stderr)")
    }

    @Test("a differencing VHD chain is served as our raw export gives it; qemu-nbd serves it differently")
    func vhdChain() throws {
        let work = try TemporaryDirectory()
        defer { work.cleanup() }
        var parent = VHDWriter(kind: .dynamic, virtualSize: 8 << 20)
        parent.write(sector: 0, count: 64, byte: 0x11)
        parent.write(sector: 5000, count: 16, byte: 0x12)
        try parent.write(to: work.path("parent.vhd"))
        var child = VHDWriter(kind: .differencing, virtualSize: 8 << 20)
        child.parentUniqueID = parent.uniqueID
        child.parentName = "parent.vhd"
        child.locators = [.init(code: "W2ru", path: ".\\parent.vhd")]
        child.write(sector: 8, count: 16, byte: 0x21)
        child.write(sector: 9000, count: 8, byte: 0x22)
        try child.write(to: work.path("child.vhd"))
        let guest = Data(child.guestBytes(parent: parent.guestBytes()))
        let database = work.path("index.sqlite")
        let exported = try extentdb(
            ["export", "child.vhd", "--format", "raw", "--to", "export.raw"], database: database, directory: work.url)
        #expect(exported.status == 0, "\(exported.stderr)")

        let server = try NBDServerProcess(extentdb: "child.vhd", database: database, in: work.url)
        defer { server.stop() }
        let copied = try bash("nbdcopy '\(server.uri)' copy.raw && cmp copy.raw export.raw", in: work.url)
        #expect(copied.status == 0, "\(copied.stdout) \(copied.stderr)")
        #expect(try Data(contentsOf: work.url.appendingPathComponent("copy.raw")) == guest)
        let expected = try expectedMaps("child.vhd", database: database, in: work.url)
        #expect(try nbdinfoMap(server.uri, context: "base:allocation", in: work.url) == expected.allocation)
        #expect(try nbdinfoMap(server.uri, context: "qemu:allocation-depth", in: work.url) == expected.depth)

        let qemu = try NBDServerProcess(qemuNBD: "child.vhd", format: "vpc", in: work.url)
        defer { qemu.stop() }
        let theirs = try bash("nbdcopy '\(qemu.uri)' qemu.raw && cmp -s qemu.raw export.raw", in: work.url)
        #expect(theirs.status != 0, "qemu-nbd now serves differencing VHDs like extentdb")
    }

    @Test("an image modified while served: the next connection rescans it and gets the new image, whole")
    func modifiedWhileServed() throws {
        let work = try TemporaryDirectory()
        defer { work.cleanup() }
        let made = try bash(
            "qemu-img create -q -f qcow2 disk.qcow2 8M && qemu-io -f qcow2 -c 'write -P 7 0 1M' disk.qcow2 >/dev/null", in: work.url)
        #expect(made.status == 0)
        let server = try NBDServerProcess(extentdb: "disk.qcow2", database: work.path("index.sqlite"), in: work.url)
        defer { server.stop() }
        let before = try bash("nbdcopy '\(server.uri)' before.raw && qemu-img compare -q -f raw before.raw disk.qcow2", in: work.url)
        #expect(before.status == 0, "\(before.stderr)")
        _ = try bash("qemu-io -f qcow2 -c 'write -P 9 0 64k' disk.qcow2 >/dev/null", in: work.url)
        let after = try bash("nbdcopy '\(server.uri)' after.raw && qemu-img compare -q -f raw after.raw disk.qcow2", in: work.url)
        #expect(after.status == 0, "\(after.stderr)")
        let rescans = try extentdb(["info", "--output", "json", "disk.qcow2"], database: work.path("index.sqlite"), directory: work.url)
        #expect(rescans.stdout.contains("\"scan_id\" : 2") || rescans.stdout.contains("\"scan_id\":2"), "\(rescans.stdout)")
        #expect(server.isRunning)
    }

    @Test("a file rewritten during one connection: the reads after it fail with EIO")
    func modifiedDuringConnection() throws {
        let work = try TemporaryDirectory()
        defer { work.cleanup() }
        _ = try bash("truncate -s 4M disk.raw && printf 'AAAA' | dd of=disk.raw conv=notrunc status=none", in: work.url)
        let server = try NBDServerProcess(
            extentdb: "disk.raw", database: work.path("index.sqlite"), in: work.url, arguments: ["--image-format", "raw"])
        defer { server.stop() }
        try NBDRawClient.install(in: work.url)
        let result = try bash("python3 client.py '\(server.socket)' modify", in: work.url, seconds: 60)
        #expect(result.status == 0, "\(result.stdout) \(result.stderr)")
        #expect(result.stdout.contains("first read ok"), "\(result.stdout)")
        #expect(result.stdout.contains("second read error 5"), "\(result.stdout)")
    }

    @Test(
        "hostile clients (garbage, drip-fed and abandoned handshakes, oversized options, reads past the end, unknown commands, writes, huge reads, abrupt disconnects) leave the server serving"
    )
    func hostileClients() throws {
        let work = try TemporaryDirectory()
        defer { work.cleanup() }
        _ = try bash("truncate -s 4M disk.raw && printf 'data' | dd of=disk.raw conv=notrunc status=none", in: work.url)
        let server = try NBDServerProcess(
            extentdb: "disk.raw", database: work.path("index.sqlite"), in: work.url, arguments: ["--image-format", "raw"])
        defer { server.stop() }
        try NBDRawClient.install(in: work.url)
        let result = try bash("python3 client.py '\(server.socket)' hostile", in: work.url, seconds: 60)
        #expect(result.status == 0, "\(result.stdout) \(result.stderr)")
        for line in [
            "past end error 22", "unknown command error 22", "write error 1", "huge read error 22", "oversized option too big",
            "block status without context error 22", "structured read ok", "simple read ok", "garbage answered",
        ] {
            #expect(result.stdout.contains(line), "\(line): \(result.stdout)")
        }
        #expect(server.isRunning)
        let info = try bash("nbdinfo --size '\(server.uri)'", in: work.url)
        #expect(info.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "4194304", "\(info.stderr)")
    }

    @Test("--listen HOST:PORT serves on TCP (127.0.0.1, port chosen); --socket with --listen is a usage error")
    func tcpAndUsage() throws {
        let work = try TemporaryDirectory()
        defer { work.cleanup() }
        _ = try bash("truncate -s 1M disk.raw", in: work.url)
        let both = try extentdb(
            ["nbd", "disk.raw", "--socket", "s", "--listen", "127.0.0.1:0"], database: work.path("i.sqlite"), directory: work.url)
        #expect(both.status == 2)
        let neither = try extentdb(["nbd", "disk.raw"], database: work.path("i.sqlite"), directory: work.url)
        #expect(neither.status == 2)
        let encrypted = try extentdb(
            ["nbd", try Fixtures.directory().appendingPathComponent("encrypted.qcow2").path, "--socket", work.path("e.sock")],
            database: work.path("i.sqlite"), directory: work.url)
        #expect(encrypted.status == 1, "\(encrypted.stderr)")

        let process = try BackgroundProcess(
            productsDirectory.appendingPathComponent("extentdb"),
            [
                "nbd", "disk.raw", "--image-format", "raw", "--listen", "127.0.0.1:0", "--export-name", "vm1", "--db",
                work.path("i.sqlite"),
            ],
            in: work.url, log: work.url.appendingPathComponent("tcp.log"))
        defer { process.stop(signal: SIGTERM) }
        var text = ""
        for _ in 0..<600 where !text.contains("serving") && process.isRunning {
            usleep(100_000)
            text = process.logText
        }
        let port = try #require(
            text.split(separator: ":").last.flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }, "\(text)")
        let size = try bash(
            "nbdinfo --size 'nbd://127.0.0.1:\(port)/vm1' && ! nbdinfo --size 'nbd://127.0.0.1:\(port)/other'", in: work.url)
        #expect(size.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "1048576", "\(size.stderr)")
        #expect(size.status == 0, "\(size.stderr)")
    }
}
