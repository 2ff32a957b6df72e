import Foundation
import Testing

@testable import TestSupport

/// A directory `site/src` with a qcow2 chain (base.raw <- mid.qcow2 <- top.qcow2) and a VHD chain
/// (parent.vhd <- child.vhd, found by a `.\parent.vhd` locator), plus an empty `site/out`.
/// - Returns: the VHD chain's guest bytes.
func makeSite(_ site: URL) throws -> [UInt8] {
    let source = site.appendingPathComponent("src")
    try FileManager.default.createDirectory(at: source, withIntermediateDirectories: true)
    try FileManager.default.createDirectory(at: site.appendingPathComponent("out"), withIntermediateDirectories: true)
    try shell(
        """
        set -e
        truncate -s 32M base.raw
        qemu-io -f raw -c 'write -P 1 0 1M' base.raw >/dev/null
        qemu-img create -q -f qcow2 -b base.raw -F raw mid.qcow2
        qemu-io -f qcow2 -c 'write -P 2 4M 256k' mid.qcow2 >/dev/null
        qemu-img create -q -f qcow2 -b mid.qcow2 -F qcow2 top.qcow2
        qemu-io -f qcow2 -c 'write -P 3 8M 4k' -c 'write -P 0 4M 64k' top.qcow2 >/dev/null
        """, in: source)
    var parent = VHDWriter(kind: .dynamic, virtualSize: 8 << 20)
    parent.write(sector: 0, count: 64, byte: 0x11)
    parent.write(sector: 5000, count: 16, byte: 0x12)
    try parent.write(to: source.appendingPathComponent("parent.vhd").path)
    var child = VHDWriter(kind: .differencing, virtualSize: 8 << 20)
    child.parentUniqueID = parent.uniqueID
    child.parentName = "parent.vhd"
    child.locators = [.init(code: "W2ru", path: ".\\parent.vhd")]
    child.write(sector: 8, count: 16, byte: 0x21)
    child.write(sector: 9000, count: 8, byte: 0x22)
    try child.write(to: source.appendingPathComponent("child.vhd").path)
    return child.guestBytes(parent: parent.guestBytes())
}

/// `qemu-img info --output=json` of an image, parsed.
func qemuInfo(_ path: String, in directory: URL) throws -> [String: Any] {
    let result = try runProcess(URL(fileURLWithPath: "/usr/bin/qemu-img"), ["info", "--output=json", path], in: directory)
    return try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any] ?? [:]
}

/// `extentdb info --output json`'s `metadata` of an image.
func extentdbMetadata(_ path: String, database: String, in directory: URL) throws -> [String: Any] {
    let result = try extentdb(["info", "--trust-root", ".", "--output", "json", path], database: database, directory: directory)
    let info = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
    return info?["metadata"] as? [String: Any] ?? [:]
}

/// Guest bytes of an image as `extentdb export --format raw` writes them.
func extentdbGuestBytes(_ path: String, database: String, in directory: URL) throws -> [UInt8]? {
    let scratch = try TemporaryDirectory(prefix: "extentdb-guest")
    defer { scratch.cleanup() }
    let out = scratch.url.appendingPathComponent("guest.raw")
    let result = try extentdb(
        ["export", path, "--trust-root", ".", "--format", "raw", "--to", out.path], database: database, directory: directory)
    guard result.status == 0 else {
        Issue.record("export of \(path) failed: \(result.stderr)")
        return nil
    }
    return Array(try Data(contentsOf: out))
}

/// libvhdi's guest view of a differencing VHD with its parent set, or nil when python3-libvhdi is missing.
func libvhdiChainBytes(child: String, parent: String, in directory: URL) throws -> [UInt8]? {
    guard (try? run("/usr/bin/python3", ["-c", "import pyvhdi"])) != nil else {
        Issue.record("python3-libvhdi is not installed (scripts/install-deps.sh installs it)")
        return nil
    }
    let script = """
        import sys, pyvhdi
        child = pyvhdi.file(); child.open(sys.argv[1])
        parent = pyvhdi.file(); parent.open(sys.argv[2]); child.set_parent(parent)
        size = child.get_media_size(); data = bytearray()
        while len(data) < size:
            data += child.read_buffer_at_offset(min(1 << 20, size - len(data)), len(data))
        open(sys.argv[3], "wb").write(data)
        """
    let scratch = try TemporaryDirectory(prefix: "extentdb-libvhdi")
    defer { scratch.cleanup() }
    let out = scratch.url.appendingPathComponent("guest.raw")
    let result = try runProcess(URL(fileURLWithPath: "/usr/bin/python3"), ["-c", script, child, parent, out.path], in: directory)
    guard result.status == 0 else {
        Issue.record("libvhdi failed: \(result.stderr)")
        return nil
    }
    return Array(try Data(contentsOf: out))
}

/// Deltas that survive being moved (issue #13, item 4): `export --base` names the base relative to the
/// output's directory, or as `--backing-name` says.
@Suite(.serialized) struct MovedDeltaTests {
    @Test("qcow2 and VHD deltas exported to another directory still open after base and delta move together")
    func movedTogether() throws {
        let workspace = try TemporaryDirectory(prefix: "extentdb-moved")
        defer { workspace.cleanup() }
        let root = workspace.url
        let site = root.appendingPathComponent("site1")
        let vhdGuest = try makeSite(site)
        let db = root.appendingPathComponent("index.sqlite").path
        let qcow2 = try extentdb(
            ["export", "src/top.qcow2", "--base", "src/mid.qcow2", "--format", "qcow2", "--to", "out/delta.qcow2"], database: db,
            directory: site)
        #expect(qcow2.status == 0, "\(qcow2.stderr)")
        let vhd = try extentdb(
            ["export", "src/child.vhd", "--base", "src/parent.vhd", "--format", "vhd", "--to", "out/delta.vhd"], database: db,
            directory: site)
        #expect(vhd.status == 0, "\(vhd.stderr)")
        #expect(try qemuInfo("out/delta.qcow2", in: site)["backing-filename"] as? String == "../src/mid.qcow2")
        let topGuest = try extentdbGuestBytes("src/top.qcow2", database: db, in: site)

        // Move the whole site: the old absolute paths (W2ku's) no longer exist. A fresh index, as on another host.
        let moved = root.appendingPathComponent("elsewhere/site2")
        try FileManager.default.createDirectory(at: moved.deletingLastPathComponent(), withIntermediateDirectories: true)
        try FileManager.default.moveItem(at: site, to: moved)
        let newDB = root.appendingPathComponent("moved.sqlite").path

        #expect(try extentdb(["map", "--trust-root", ".", "out/delta.qcow2"], database: newDB, directory: moved).status == 0)
        #expect(try extentdbGuestBytes("out/delta.qcow2", database: newDB, in: moved) == topGuest)
        #expect(
            (try? shell("qemu-img compare -q out/delta.qcow2 src/top.qcow2", in: moved)) != nil, "qemu-img: the moved qcow2 delta differs")

        #expect(try extentdb(["map", "--trust-root", ".", "out/delta.vhd"], database: newDB, directory: moved).status == 0)
        #expect(try extentdbGuestBytes("out/delta.vhd", database: newDB, in: moved) == vhdGuest)
        let metadata = try extentdbMetadata("out/delta.vhd", database: newDB, in: moved)
        let backing = metadata["backing"] as? [String: Any]
        #expect(backing?["name"] as? String == ".\\..\\src\\parent.vhd", "found by W2ru")
        #expect((backing?["resolved_path"] as? String)?.hasSuffix("/elsewhere/site2/src/parent.vhd") == true)
        let locators = ((metadata["vhd"] as? [String: Any])?["parent_locators"] as? [[String: Any]])?.map {
            "\($0["code"] ?? ""):\($0["path"] ?? "")"
        }
        #expect(locators?.prefix(2) == ["W2ru:.\\..\\src\\parent.vhd", "MacX:../src/parent.vhd"])
        #expect(locators?.last?.hasPrefix("W2ku:\\") == true && locators?.last?.hasSuffix("\\site1\\src\\parent.vhd") == true)
        if let peer = try libvhdiChainBytes(child: "out/delta.vhd", parent: "src/parent.vhd", in: moved) {
            #expect(peer == vhdGuest, "libvhdi reads the moved chain differently")
        }
    }

    @Test("on standard output the base is named relative to the current directory")
    func standardOutput() throws {
        let workspace = try TemporaryDirectory(prefix: "extentdb-moved")
        defer { workspace.cleanup() }
        let root = workspace.url
        _ = try makeSite(root)
        let binary = productsDirectory.appendingPathComponent("extentdb").path
        try shell(
            """
            set -e -o pipefail
            export EXTENTDB_DB=\(root.path)/index.sqlite
            cd out
            '\(binary)' export ../src/top.qcow2 --base ../src/mid.qcow2 --format qcow2 | cat > piped.qcow2
            qemu-img compare -q piped.qcow2 ../src/top.qcow2
            """, in: root)
        #expect(try qemuInfo("out/piped.qcow2", in: root)["backing-filename"] as? String == "../src/mid.qcow2")
    }

    @Test("--backing-name is recorded as given: qcow2 backing name, VHD W2ru and MacX; the parent name stays the file name")
    func backingName() throws {
        let workspace = try TemporaryDirectory(prefix: "extentdb-moved")
        defer { workspace.cleanup() }
        let root = workspace.url
        let vhdGuest = try makeSite(root)
        let db = root.appendingPathComponent("index.sqlite").path
        let topGuest = try extentdbGuestBytes("src/top.qcow2", database: db, in: root)
        let qcow2 = try extentdb(
            [
                "export", "src/top.qcow2", "--base", "src/mid.qcow2", "--format", "qcow2", "--backing-name", "../base/mid.qcow2", "--to",
                "out/named.qcow2",
            ],
            database: db, directory: root)
        #expect(qcow2.status == 0, "\(qcow2.stderr)")
        let vhd = try extentdb(
            [
                "export", "src/child.vhd", "--base", "src/parent.vhd", "--format", "vhd", "--backing-name", "../parents/parent.vhd", "--to",
                "out/named.vhd",
            ],
            database: db, directory: root)
        #expect(vhd.status == 0, "\(vhd.stderr)")
        #expect(try qemuInfo("out/named.qcow2", in: root)["backing-filename"] as? String == "../base/mid.qcow2")
        let empty = try extentdb(
            ["export", "src/top.qcow2", "--base", "src/mid.qcow2", "--format", "qcow2", "--backing-name", "", "--to", "out/x.qcow2"],
            database: db, directory: root)
        #expect(empty.status == 2)

        // The destination layout the names promise; the VHD parent leaves its old place (W2ku's).
        try shell(
            """
            set -e
            mkdir -p dest/base dest/parents dest/deltas
            cp src/mid.qcow2 src/base.raw dest/base/
            mv src/parent.vhd dest/parents/
            mv out/named.qcow2 out/named.vhd dest/deltas/
            """, in: root)
        let newDB = root.appendingPathComponent("dest.sqlite").path
        #expect(try extentdbGuestBytes("dest/deltas/named.qcow2", database: newDB, in: root) == topGuest)
        #expect(
            (try? shell("qemu-img compare -q dest/deltas/named.qcow2 src/top.qcow2", in: root)) != nil,
            "qemu-img: the named qcow2 delta differs")
        #expect(try extentdbGuestBytes("dest/deltas/named.vhd", database: newDB, in: root) == vhdGuest)
        let metadata = try extentdbMetadata("dest/deltas/named.vhd", database: newDB, in: root)
        let details = metadata["vhd"] as? [String: Any]
        #expect(details?["parent_name"] as? String == "parent.vhd")
        let locators = (details?["parent_locators"] as? [[String: Any]])?.map { "\($0["code"] ?? ""):\($0["path"] ?? "")" }
        #expect(locators?.prefix(2) == ["W2ru:.\\..\\parents\\parent.vhd", "MacX:../parents/parent.vhd"])
        if let peer = try libvhdiChainBytes(child: "dest/deltas/named.vhd", parent: "dest/parents/parent.vhd", in: root) {
            #expect(peer == vhdGuest, "libvhdi reads the named chain differently")
        }
    }
}
