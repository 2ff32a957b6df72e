import Foundation
import Testing

@testable import TestSupport

/// Deltas against any related base (#19, item 1): XenServer/XCP-ng lay snapshots out as siblings, so the
/// previous backup's snapshot is a sibling or cousin of the next one, not its ancestor. Checked by what
/// another reader sees: `qemu-img compare` for qcow2, libvhdi for VHD.
@Suite(.serialized) struct SiblingDeltaTests {
    /// A XenServer-like history in qcow2:
    ///
    /// ```
    ///            base            (1 at 0-1M, 1 at 8M-9M)
    ///           /    \
    ///         s1     run1        s1: snapshot 1, later written (7 at 8M, 7 at 20M): changes only on the base's side
    ///                 |          run1: the running disk after snapshot 1 (2 at 2M)
    ///                 s2         s2: snapshot 2 (3 at 12M)
    /// ```
    static func xenHistory() throws -> TemporaryDirectory {
        try TemporaryDirectory(
            prefix: "extentdb-sibling",
            setup: """
                set -e
                qemu-img create -q -f qcow2 base.qcow2 32M
                qemu-io -f qcow2 -c 'write -P 1 0 1M' -c 'write -P 1 8M 1M' base.qcow2 >/dev/null
                qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 s1.qcow2
                qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 run1.qcow2
                qemu-io -f qcow2 -c 'write -P 2 2M 128k' run1.qcow2 >/dev/null
                qemu-img create -q -f qcow2 -b run1.qcow2 -F qcow2 s2.qcow2
                qemu-io -f qcow2 -c 'write -P 3 12M 64k' s2.qcow2 >/dev/null
                qemu-io -f qcow2 -c 'write -P 7 8M 64k' -c 'write -P 7 20M 64k' s1.qcow2 >/dev/null
                qemu-img create -q -f qcow2 unrelated.qcow2 32M
                """)
    }

    @Test("a qcow2 delta of snapshot 2 against its sibling snapshot 1 reads, over snapshot 1, exactly as snapshot 2")
    func qcow2Sibling() throws {
        let workspace = try Self.xenHistory()
        defer { workspace.cleanup() }
        let directory = workspace.url
        let database = directory.appendingPathComponent("index.sqlite").path
        let delta = try extentdb(
            ["export", "s2.qcow2", "--base", "s1.qcow2", "--format", "qcow2", "--to", "delta.qcow2"], database: database,
            directory: directory)
        #expect(delta.status == 0, "\(delta.stderr)")
        try shell("qemu-img compare -q delta.qcow2 s2.qcow2", in: directory)
        let info = try qemuInfo("delta.qcow2", in: directory)
        #expect(info["backing-filename"] as? String == "s1.qcow2")
        // What it carries, by qemu-img map of the delta alone: run1's and s2's writes (data), the range only
        // s1 wrote over base's data (base's bytes again), and the range only s1 wrote over nothing (zeros).
        let map = try run("qemu-img", ["map", "--output=json", "delta.qcow2"], in: directory)
        let own = try qemuExtents(Data(map.utf8)).filter { $0.depth == 0 && $0.present }
        let covered = own.map { $0.start..<$0.end }
        for wanted: Range<UInt64> in [(2 << 20)..<(2 << 20) + 131_072, (12 << 20)..<(12 << 20) + 65536, (8 << 20)..<(8 << 20) + 65536] {
            #expect(covered.contains { $0.contains(wanted.lowerBound) && $0.upperBound >= wanted.upperBound }, "\(wanted) in \(own)")
        }
        #expect(own.contains { $0.start <= 20 << 20 && $0.end >= (20 << 20) + 65536 && $0.zero && !$0.data }, "\(own)")
        // The ranges neither branch touched are not in the delta: they fall through to s1.
        #expect(!covered.contains { $0.contains(0) }, "\(own)")
    }

    @Test("an XVA delta against a sibling carries exactly the 1 MiB chunks the change list touches, plus the first and last")
    func xvaSibling() throws {
        let workspace = try Self.xenHistory()
        defer { workspace.cleanup() }
        let directory = workspace.url
        let database = directory.appendingPathComponent("index.sqlite").path
        let xva = try extentdb(
            ["export", "s2.qcow2", "--base", "s1.qcow2", "--format", "xva", "--to", "delta.xva"], database: database, directory: directory)
        #expect(xva.status == 0, "\(xva.stderr)")
        let changes = try extentdb(
            ["changes", "s2.qcow2", "--base", "s1.qcow2", "--output", "json"], database: database, directory: directory)
        let listed = try JSONSerialization.jsonObject(with: Data(changes.stdout.utf8)) as? [[String: Any]] ?? []
        var expected: Set<Int> = [0, 31]
        for range in listed {
            let start = range["start"] as? Int ?? 0
            let length = range["length"] as? Int ?? 0
            for chunk in (start >> 20)...((start + length - 1) >> 20) { expected.insert(chunk) }
        }
        let names = try run("tar", ["-tf", "delta.xva"], in: directory).split(separator: "\n")
        let chunks = Set(names.filter { !$0.hasSuffix(".xxhash") }.compactMap { Int($0.split(separator: "/").last ?? "") })
        #expect(chunks == expected, "chunks \(chunks.sorted()), expected \(expected.sorted())")
    }

    @Test("raw --into: the delta applied to a raw copy of the sibling base makes it snapshot 2; a failed apply leaves the copy as it was")
    func rawIntoCopy() throws {
        let workspace = try Self.xenHistory()
        defer { workspace.cleanup() }
        let directory = workspace.url
        let database = directory.appendingPathComponent("index.sqlite").path
        let result = try bash(
            """
            set -e
            X='\(productsDirectory.path)/extentdb'
            qemu-img convert -O raw s1.qcow2 copy.raw
            cp copy.raw before.raw
            # A refused apply (an unrelated base) leaves the copy untouched.
            qemu-img create -q -f qcow2 lone.qcow2 32M
            if $X export s2.qcow2 --base lone.qcow2 --format raw --into copy.raw -q --db '\(database)' > /dev/null 2>&1; then exit 1; fi
            cmp copy.raw before.raw
            $X export s2.qcow2 --base s1.qcow2 --format raw --into copy.raw -q --db '\(database)' > changed.json
            qemu-img compare -q -f raw -F qcow2 copy.raw s2.qcow2
            test -z "$(ls -a | grep partial || true)"
            echo ok
            """, in: directory)
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        #expect(result.stdout == "ok\n")
    }

    @Test("an older image against a newer descendant reverts the descendant's writes; unrelated images are refused by name")
    func descendantAndUnrelated() throws {
        let workspace = try Self.xenHistory()
        defer { workspace.cleanup() }
        let directory = workspace.url
        let database = directory.appendingPathComponent("index.sqlite").path
        let back = try extentdb(
            ["export", "run1.qcow2", "--base", "s2.qcow2", "--format", "qcow2", "--to", "back.qcow2"], database: database,
            directory: directory)
        #expect(back.status == 0, "\(back.stderr)")
        try shell("qemu-img compare -q back.qcow2 run1.qcow2", in: directory)
        let unrelated = try extentdb(
            ["export", "s2.qcow2", "--base", "unrelated.qcow2", "--format", "qcow2", "--to", "x.qcow2"], database: database,
            directory: directory)
        #expect(unrelated.status == 1)
        #expect(unrelated.stderr.contains("share no layer"), "\(unrelated.stderr)")
        #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("x.qcow2").path))
    }

    @Test("a VHD delta of one differencing disk against its sibling, read by libvhdi over the sibling, is the disk")
    func vhdSibling() throws {
        let workspace = try TemporaryDirectory(prefix: "extentdb-vhd-sibling")
        defer { workspace.cleanup() }
        let directory = workspace.url
        var parent = VHDWriter(kind: .dynamic, virtualSize: 8 << 20)
        parent.write(sector: 0, count: 64, byte: 0x11)
        parent.write(sector: 5000, count: 16, byte: 0x12)
        try parent.write(to: directory.appendingPathComponent("parent.vhd").path)
        func child(_ name: String, writes: [(UInt64, UInt64, UInt8)]) throws -> VHDWriter {
            var disk = VHDWriter(kind: .differencing, virtualSize: 8 << 20)
            disk.parentUniqueID = parent.uniqueID
            disk.parentName = "parent.vhd"
            disk.locators = [.init(code: "W2ru", path: ".\\parent.vhd")]
            for (sector, count, byte) in writes { disk.write(sector: sector, count: count, byte: byte) }
            try disk.write(to: directory.appendingPathComponent(name).path)
            return disk
        }
        // snap1 wrote over the parent's data at 5000 and over nothing at 12000; snap2 wrote at 8 and 9000.
        _ = try child("snap1.vhd", writes: [(5000, 8, 0x31), (12000, 8, 0x32)])
        let snap2 = try child("snap2.vhd", writes: [(8, 16, 0x21), (9000, 8, 0x22)])
        let database = directory.appendingPathComponent("index.sqlite").path
        let delta = try extentdb(
            ["export", "snap2.vhd", "--base", "snap1.vhd", "--format", "vhd", "--to", "delta.vhd"], database: database, directory: directory
        )
        #expect(delta.status == 0, "\(delta.stderr)")
        let expected = snap2.guestBytes(parent: parent.guestBytes())
        #expect(try extentdbGuestBytes("delta.vhd", database: database, in: directory) == expected)
        // libvhdi, three levels deep: delta -> snap1 -> parent.
        let script = """
            import sys, pyvhdi
            files = []
            for name in sys.argv[1:4]:
                f = pyvhdi.file(); f.open(name); files.append(f)
            files[1].set_parent(files[2]); files[0].set_parent(files[1])
            size = files[0].get_media_size(); data = bytearray()
            while len(data) < size:
                data += files[0].read_buffer_at_offset(min(1 << 20, size - len(data)), len(data))
            open(sys.argv[4], "wb").write(data)
            """
        let read = try runProcess(
            URL(fileURLWithPath: "/usr/bin/python3"), ["-c", script, "delta.vhd", "snap1.vhd", "parent.vhd", "libvhdi.raw"], in: directory)
        #expect(read.status == 0, "\(read.stderr)")
        let libvhdi = Array(try Data(contentsOf: directory.appendingPathComponent("libvhdi.raw")))
        #expect(libvhdi == expected, "libvhdi reads the delta over snap1 as something other than snap2")
    }
}
