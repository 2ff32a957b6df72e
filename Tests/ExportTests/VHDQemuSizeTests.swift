import Foundation
import ImageFormats
import Testing

@testable import Export
@testable import Scanner
@testable import TestSupport

/// libvhdi's guest view of a VHD (with `parent` set for a differencing disk), or nil when python3-libvhdi
/// is missing (recorded as an issue: scripts/install-deps.sh installs it).
func libvhdiBytes(of path: String, parent: String? = nil, work: TemporaryDirectory) throws -> [UInt8]? {
    guard (try? run("/usr/bin/python3", ["-c", "import pyvhdi"])) != nil else {
        Issue.record("python3-libvhdi is not installed (scripts/install-deps.sh installs it)")
        return nil
    }
    let script = work.path("libvhdi-read.py")
    try LibvhdiPeerTests.script.write(toFile: script, atomically: true, encoding: .utf8)
    let out = work.path(UUID().uuidString + ".libvhdi")
    try run("/usr/bin/python3", [script, path, out] + (parent.map { [$0] } ?? []))
    return Array(try Data(contentsOf: URL(fileURLWithPath: out)))
}

/// `virtual-size` from `qemu-img info --output=json`, with no options: the size plain qemu sees.
func qemuVirtualSize(_ path: String) throws -> UInt64? {
    let json = try run("qemu-img", ["info", "--output=json", path])
    let info = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
    return (info?["virtual-size"] as? NSNumber)?.uint64Value
}

/// VHD exports read at the footer's current size in plain qemu-img (issue #13, item 3): the footer names
/// the creator `tap\0`, which qemu's vpc driver trusts to mean "current size", not CHS geometry.
@Suite struct VHDQemuSizeTests {
    /// Sizes that are not a multiple of any CHS geometry: 10 MiB (CHS gives 10,479,616) and 3 sectors more.
    static let sizes: [UInt64] = [10 << 20, (10 << 20) + 3 * 512]

    /// A raw disk with data at the start, in the middle and in its last 34 sectors (where GPT keeps its backup).
    static func makeRaw(size: UInt64, at path: String) throws {
        var bytes = [UInt8](repeating: 0, count: Int(size))
        for index in 0..<4096 { bytes[index] = UInt8(truncatingIfNeeded: index * 7 + 1) }
        for index in (3 << 20)..<((3 << 20) + 65536) { bytes[index] = 0x5A }
        for index in (Int(size) - 34 * 512)..<Int(size) { bytes[index] = UInt8(truncatingIfNeeded: index % 251 + 1) }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    @Test("a full VHD export has the footer's size and the same content in plain qemu-img, libvhdi and our reader", arguments: sizes)
    func fullExport(size: UInt64) throws {
        let work = try TemporaryDirectory()
        defer { work.cleanup() }
        let raw = work.path("disk.raw")
        try Self.makeRaw(size: size, at: raw)
        let vhd = work.path("disk.vhd")
        _ = try export(try plan(raw), format: "vhd", to: vhd)
        let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: vhd)))
        let footer = try VHDFooter(parsing: bytes.suffix(512), fileOffset: UInt64(bytes.count - 512))
        #expect(footer.currentSize == size)
        #expect(footer.creatorApplication.hasPrefix("tap"))
        #expect(try qemuVirtualSize(vhd) == size)
        #expect((try? run("qemu-img", ["compare", "-q", vhd, raw])) != nil, "qemu-img compare: \(size)-byte VHD differs")
        // qemu-img convert used to drop the tail (where the GPT backup header lives).
        let converted = work.path("converted.raw")
        try run("qemu-img", ["convert", "-O", "raw", vhd, converted])
        let original = Array(try Data(contentsOf: URL(fileURLWithPath: raw)))
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: converted))) == original)
        if let peer = try libvhdiBytes(of: vhd, work: work) {
            #expect(peer == original, "libvhdi reads the \(size)-byte VHD differently")
        }
        #expect(try VHDReaderContent.guestBytes(of: vhd, work: work) == original)
    }

    @Test(
        "a differencing VHD export has the footer's size in plain qemu-img; its chain reads right in libvhdi and our reader",
        arguments: sizes)
    func differencingExport(size: UInt64) throws {
        let work = try TemporaryDirectory()
        defer { work.cleanup() }
        let sectors = size / 512
        var parent = VHDWriter(kind: .dynamic, virtualSize: size)
        parent.write(sector: 0, count: 64, byte: 0x11)
        parent.write(sector: sectors - 34, count: 34, byte: 0x12)
        try parent.write(to: work.path("parent.vhd"))
        // Changes 8-sector aligned: libvhdi reads a partly marked bitmap byte as wholly present.
        var child = VHDWriter(kind: .differencing, virtualSize: size)
        child.parentUniqueID = parent.uniqueID
        child.parentName = "parent.vhd"
        child.locators = [.init(code: "W2ru", path: ".\\parent.vhd")]
        child.write(sector: 8, count: 16, byte: 0x21)
        child.write(sector: sectors / 8 * 8, count: sectors % 8 == 0 ? 8 : sectors % 8, byte: 0x22)
        try child.write(to: work.path("child.vhd"))
        let expected = child.guestBytes(parent: parent.guestBytes())

        let deltaPlan = try plan(work.path("child.vhd"), base: work.path("parent.vhd"))
        let delta = work.path("delta.vhd")
        let fd = open(delta, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        let parentInfo = VHDStreamWriter.Parent(
            uniqueID: parent.uniqueID, timestamp: 0, name: "parent.vhd", relativePath: "parent.vhd", absolutePath: work.path("parent.vhd"))
        try VHDStreamWriter(plan: deltaPlan, reader: GuestReader(plan: deltaPlan), parent: parentInfo).export(
            to: ExportOutput(descriptor: fd, name: delta))
        close(fd)
        // qemu opens a differencing VHD as a standalone disk: its size is what can be checked there.
        #expect(try qemuVirtualSize(delta) == size)
        #expect(try VHDReaderContent.guestBytes(of: delta, work: work) == expected)
        if let peer = try libvhdiBytes(of: delta, parent: work.path("parent.vhd"), work: work) {
            #expect(peer == expected, "libvhdi reads the \(size)-byte chain differently")
        }
        // The full export of the same chain compares equal in plain qemu-img.
        let full = work.path("full.vhd")
        _ = try export(try plan(work.path("child.vhd")), format: "vhd", to: full)
        let raw = work.path("child.raw")
        try Data(expected).write(to: URL(fileURLWithPath: raw))
        #expect(try qemuVirtualSize(full) == size)
        #expect((try? run("qemu-img", ["compare", "-q", full, raw])) != nil)
    }
}
