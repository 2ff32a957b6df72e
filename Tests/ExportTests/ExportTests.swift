import AllocationIndex
import Foundation
import ImageFormats
import Testing

@testable import Export
@testable import Scanner
@testable import TestSupport

/// Indexes `path` in a fresh in-memory store and plans an export of it.
func plan(_ path: String, base: String? = nil, store: IndexStore? = nil) throws -> ExportPlan {
    let store = try store ?? IndexStore()
    let indexed = try ImageIndexer(store: store).ensureIndexed(path: path).indexed
    return try ExportPlan(store: store, indexed: indexed, basePath: base.map { try ImageIndexer.canonicalPath($0) })
}

/// Runs one exporter into a file.
func export(_ plan: ExportPlan, format: String, to path: String, logging: Bool = false, backing: (String, String)? = nil) throws
    -> GuestReader
{
    let reader = GuestReader(plan: plan)
    reader.logsReads = logging
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard fd >= 0 else { throw CommandFailed(command: "open \(path)", status: errno, stderr: "") }
    defer { close(fd) }
    let output = ExportOutput(descriptor: fd, name: path)
    switch format {
    case "raw": try RawExporter(plan: plan, reader: reader).export(to: output)
    case "qcow2": try QCOW2StreamWriter(plan: plan, reader: reader, backing: backing.map { (name: $0.0, format: $0.1) }).export(to: output)
    case "vhd": try VHDStreamWriter(plan: plan, reader: reader, parent: nil).export(to: output)
    default: try XVAWriter(plan: plan, reader: reader).export(to: output)
    }
    return reader
}

/// Rebuilds a raw disk from an XVA chunk tar (chunks left out read as zeros), checking each XXH64.
func reassembleXVA(_ path: String, size: UInt64, into rawPath: String) throws -> [UInt64] {
    let data = try Data(contentsOf: URL(fileURLWithPath: path))
    var raw = Data(count: Int(size))
    var chunks: [UInt64] = []
    var position = 0
    var lastChunk: (number: UInt64, bytes: Data)?
    while position + 512 <= data.count {
        let header = data[position..<(position + 512)]
        if header.allSatisfy({ $0 == 0 }) { break }
        let name = String(decoding: header.prefix(100).prefix { $0 != 0 }, as: UTF8.self)
        let sizeText = String(decoding: header[(position + 124)..<(position + 135)], as: UTF8.self)
        let length = Int(sizeText, radix: 8) ?? -1
        let body = data[(position + 512)..<(position + 512 + length)]
        position += 512 + (length + 511) / 512 * 512
        if name.hasSuffix(".xxhash") {
            let chunk = try #require(lastChunk)
            let expected = chunk.bytes.withUnsafeBytes { String(format: "%016llX", XXH64.hash($0)) }
            #expect(String(decoding: body, as: UTF8.self) == expected, "\(name)")
        } else {
            let number = try #require(UInt64(name.split(separator: "/").last ?? ""))
            #expect(name == "Ref:0/" + String(format: "%08llu", number))
            raw.replaceSubrange(Int(number << 20)..<(Int(number << 20) + length), with: body)
            chunks.append(number)
            lastChunk = (number, Data(body))
        }
    }
    try raw.write(to: URL(fileURLWithPath: rawPath))
    return chunks
}

/// qemu-img compare, run in the fixtures' directory: qemu resolves an external data file name against
/// its working directory (extentdb resolves it against the image's directory).
func qemuSame(_ a: [String], _ b: [String]) -> Bool {
    do {
        try run("qemu-img", ["compare", "-q"] + a + b, in: try? Fixtures.directory())
        return true
    } catch {
        print("qemu-img compare: \(error)")
        return false
    }
}

@Suite struct ExportTests {
    @Test("XXH64 matches the reference implementation's vectors")
    func xxh64() {
        func hash(_ bytes: [UInt8]) -> UInt64 { bytes.withUnsafeBytes { XXH64.hash($0) } }
        #expect(hash([]) == 0xEF46_DB37_51D8_E999)
        #expect(hash(Array("a".utf8)) == 0xD24E_C4F1_A98C_6E5B)
        #expect(hash(Array("0123456789abcdef0123456789abcdef0123".utf8)) == 0xC425_5BA3_D1AF_5461)
        #expect(hash(Array((0..<4097).flatMap { _ in (0..<256).map { UInt8($0) } })) == 0x9783_5E5F_1573_B458)
    }

    @Test("every fixture exports to raw, qcow2, vhd and xva with identical guest content")
    func everyFixtureEveryFormat() throws {
        let fixtures = try Fixtures.directory()
        let work = try TemporaryDirectory()
        defer { work.cleanup() }
        for (name, file) in try Fixtures.manifest() where name != "encrypted" {
            let image = fixtures.appendingPathComponent(file).path
            let plan = try plan(image)
            let raw = work.path("\(name).raw")
            _ = try export(plan, format: "raw", to: raw)
            let format = file.hasSuffix(".raw") ? "raw" : "qcow2"
            #expect(qemuSame(["-f", "raw", raw], ["-F", format, image]), "\(name): raw export differs")
            let qcow2 = work.path("\(name).qcow2")
            _ = try export(plan, format: "qcow2", to: qcow2)
            #expect((try? run("qemu-img", ["check", "-q", qcow2])) != nil, "\(name): qemu-img check failed")
            #expect(qemuSame(["-f", "qcow2", qcow2], ["-F", "raw", raw]), "\(name): qcow2 export differs")
            if plan.virtualSize <= VHDStreamWriter.maximumSize {
                let vhd = work.path("\(name).vhd")
                _ = try export(plan, format: "vhd", to: vhd)
                #expect(
                    (try? run("qemu-img", ["compare", "-q", "-f", "vpc", "-F", "raw", vhd, raw])) != nil,
                    "\(name): vhd export differs")
                // Our own reader reads the VHD back to the same map of data.
                let reread = try ChainScanner.scan(path: vhd)
                #expect(reread.top.metadata.virtualSize == (plan.virtualSize + 511) / 512 * 512)
            }
            if plan.virtualSize <= 64 << 20 {
                let xva = work.path("\(name).xva")
                _ = try export(plan, format: "xva", to: xva)
                let rebuilt = work.path("\(name).xva.raw")
                let chunks = try reassembleXVA(xva, size: plan.virtualSize, into: rebuilt)
                if plan.virtualSize > 0 {
                    #expect(
                        chunks.first == 0 && chunks.last == (plan.virtualSize - 1) >> 20, "\(name): first and last chunks are always sent")
                } else {
                    #expect(chunks.isEmpty, "\(name): a zero-length disk has no chunks")
                }
                #expect(qemuSame(["-f", "raw", rebuilt], ["-F", "raw", raw]), "\(name): xva export differs")
            }
            try? FileManager.default.removeItem(atPath: raw)
        }
    }

    @Test("the export reads only data: every read lies inside a data extent's host range or compressed cluster")
    func readsOnlyData() throws {
        let fixtures = try Fixtures.directory()
        let work = try TemporaryDirectory()
        defer { work.cleanup() }
        for file in ["chain-top.qcow2", "compressed-zstd.qcow2", "extl2-128k.qcow2", "datafile.qcow2", "cluster-512.qcow2"] {
            let plan = try plan(fixtures.appendingPathComponent(file).path)
            let extents = try plan.store.extents(scanID: plan.scanID)
            for format in ["raw", "qcow2", "xva"] {
                let reader = try export(plan, format: format, to: work.path("out.\(format)"), logging: true)
                #expect(!reader.readLog.isEmpty)
                for read in reader.readLog {
                    let inside = extents.contains { extent in
                        guard extent.data, !extent.zero, plan.layers[Int(extent.depth)].dataPath == read.path else { return false }
                        if let descriptor = extent.compressedCluster {
                            return read.offset == descriptor.hostOffset && read.length == Int(descriptor.byteCount)
                        }
                        guard let offset = extent.offset else { return false }
                        return read.offset >= offset && read.offset + UInt64(read.length) <= offset + extent.length
                    }
                    #expect(inside, "\(file) \(format): read of \(read.length) bytes at \(read.offset) in \(read.path) is not data")
                }
            }
        }
    }

    @Test("a delta of the top of a 3-level chain over its middle, rebased onto the middle, equals the top")
    func qcow2Delta() throws {
        let fixtures = try Fixtures.directory()
        let top = fixtures.appendingPathComponent("chain-top.qcow2").path
        let middle = fixtures.appendingPathComponent("chain-mid.qcow2").path
        let work = try TemporaryDirectory()
        defer { work.cleanup() }
        let delta = work.path("delta.qcow2")
        let plan = try plan(top, base: middle)
        _ = try export(plan, format: "qcow2", to: delta, backing: (middle, "qcow2"))
        #expect((try? run("qemu-img", ["check", "-q", delta])) != nil)
        #expect(qemuSame([delta], [top]))
        // Only the top layer's clusters are in the delta (whose base lies in the fixtures, a trusted root here).
        let deltaScan = try ChainScanner.scan(path: delta, options: ScanOptions(trustedRoots: [fixtures.path]))
        let topScan = try ChainScanner.scan(path: top)
        let ownData = { (scan: ChainScan) in scan.extents.filter { $0.depth == 0 && $0.present }.reduce(0) { $0 + $1.length } }
        #expect(ownData(deltaScan) >= ownData(topScan))
        #expect(ownData(deltaScan) < topScan.top.metadata.virtualSize / 4)
    }

    @Test("incremental raw and xva exports send only what changed above the base")
    func incrementalRawAndXVA() throws {
        let fixtures = try Fixtures.directory()
        let top = fixtures.appendingPathComponent("chain-top.qcow2").path
        let middle = fixtures.appendingPathComponent("chain-mid.qcow2").path
        let work = try TemporaryDirectory()
        defer { work.cleanup() }
        let plan = try plan(top, base: middle)
        let reader = GuestReader(plan: plan)
        let fd = open(work.path("delta.raw"), O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        let changed = try RawExporter(plan: plan, reader: reader).export(to: ExportOutput(descriptor: fd, name: "delta.raw"))
        close(fd)
        let all = try plan.store.extents(scanID: plan.scanID)
        #expect(changed.reduce(0) { $0 + $1.length } == all.filter { $0.depth == 0 }.reduce(0) { $0 + $1.length })
        // Applying the changed ranges onto the middle layer's content gives the top's content.
        let middleRaw = work.path("middle.raw")
        try run("qemu-img", ["convert", "-O", "raw", middle, middleRaw])
        let patched = try FileHandle(forUpdating: URL(fileURLWithPath: middleRaw))
        let deltaBytes = try Data(contentsOf: URL(fileURLWithPath: work.path("delta.raw")))
        for extent in changed {
            try patched.seek(toOffset: extent.start)
            patched.write(
                deltaBytes.count >= Int(extent.end) ? deltaBytes[Int(extent.start)..<Int(extent.end)] : Data(count: Int(extent.length)))
        }
        try patched.close()
        #expect(qemuSame(["-f", "raw", middleRaw], [top]))
        // XVA: only chunks with changes, plus the first and the last.
        _ = try export(plan, format: "xva", to: work.path("delta.xva"))
        let chunks = try reassembleXVA(work.path("delta.xva"), size: plan.virtualSize, into: work.path("delta.xva.raw"))
        let changedChunks = Set(changed.flatMap { Array(($0.start >> 20)...(($0.end - 1) >> 20)) })
        #expect(Set(chunks) == changedChunks.union([0, (plan.virtualSize - 1) >> 20]))
    }

    @Test("a VHD differencing delta, read back through our reader, equals the child")
    func vhdDelta() throws {
        let work = try TemporaryDirectory()
        defer { work.cleanup() }
        var parent = VHDWriter(kind: .dynamic, virtualSize: 8 << 20)
        parent.garbage = 0xEE
        parent.write(sector: 0, count: 64, byte: 0x11)
        parent.write(sector: 5000, count: 10, byte: 0x12)
        try parent.write(to: work.path("parent.vhd"))
        var child = VHDWriter(kind: .differencing, virtualSize: 8 << 20)
        child.garbage = 0xDD
        child.parentUniqueID = parent.uniqueID
        child.parentName = "parent.vhd"
        child.locators = [.init(code: "W2ru", path: ".\\parent.vhd")]
        child.write(sector: 10, count: 20, byte: 0x21)
        child.write(sector: 9000, count: 3, byte: 0x22)
        try child.write(to: work.path("child.vhd"))
        let plan = try plan(work.path("child.vhd"), base: work.path("parent.vhd"))
        let reader = GuestReader(plan: plan)
        let fd = open(work.path("delta.vhd"), O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        let vhd = try #require(plan.base?.metadata?.vhd)
        let parentInfo = VHDStreamWriter.Parent(
            uniqueID: parent.uniqueID, timestamp: 0, name: "parent.vhd", relativePath: "parent.vhd",
            absolutePath: work.path("parent.vhd"))
        #expect(vhd.uniqueID == VHDFooter.uuidString(parent.uniqueID))
        try VHDStreamWriter(plan: plan, reader: reader, parent: parentInfo).export(to: ExportOutput(descriptor: fd, name: "delta.vhd"))
        close(fd)
        // Read the delta through our reader (its parent found by locator) and compare guest bytes.
        let original = try VHDReaderContent.guestBytes(of: work.path("child.vhd"), work: work)
        let viaDelta = try VHDReaderContent.guestBytes(of: work.path("delta.vhd"), work: work)
        #expect(original == viaDelta)
        #expect(original == child.guestBytes(parent: parent.guestBytes()))
        let deltaScan = try ChainScanner.scan(path: work.path("delta.vhd"))
        #expect(deltaScan.layers.count == 2)
        #expect(dataRunsAtDepth0(deltaScan.extents) == [5120..<15360, 4_608_000..<4_609_536])
    }

    @Test("a truncated data cluster is an error naming the file and offset, not a short output")
    func truncatedData() throws {
        let work = try TemporaryDirectory()
        defer { work.cleanup() }
        let image = work.path("disk.qcow2")
        try run("qemu-img", ["create", "-q", "-f", "qcow2", image, "16M"])
        try run("qemu-io", ["-f", "qcow2", "-c", "write -P 7 0 1M", image])
        let plan = try plan(image)
        let size = try #require(try FileManager.default.attributesOfItem(atPath: image)[.size] as? UInt64)
        try FileHandle(forUpdating: URL(fileURLWithPath: image)).truncate(atOffset: size - 512 * 1024)
        for format in ["qcow2", "raw"] {
            do {
                _ = try export(plan, format: format, to: work.path("out.\(format)"))
                Issue.record("\(format) export of truncated data succeeded")
            } catch {
                #expect("\(error)".contains(image) && "\(error)".contains("offset"), "\(format): \(error)")
            }
        }
    }

    @Test("raw export into a file is the same by copy_file_range, by pread/pwrite, and looking for zeros")
    func copyMethods() throws {
        let fixtures = try Fixtures.directory()
        let work = try TemporaryDirectory()
        defer { work.cleanup() }
        for file in ["chain-top.qcow2", "compressed-zlib.qcow2", "datafile.qcow2"] {
            let image = fixtures.appendingPathComponent(file).path
            let plan = try plan(image)
            for (kernel, zeros) in [(true, false), (false, false), (false, true)] {
                let out = work.path("\(file)-\(kernel)-\(zeros).raw")
                let fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
                var exporter = RawExporter(plan: plan, reader: GuestReader(plan: plan))
                exporter.kernelCopy = kernel
                exporter.detectsZeros = zeros
                try exporter.export(to: ExportOutput(descriptor: fd, name: out))
                close(fd)
                #expect(qemuSame(["-f", "raw", out], [image]), "\(file) kernel copy \(kernel)")
            }
        }
    }

    @Test("encrypted images are refused at planning")
    func encrypted() throws {
        let fixtures = try Fixtures.directory()
        #expect(throws: ExportError.self) { try plan(fixtures.appendingPathComponent("encrypted.qcow2").path) }
    }

    @Test("--base must be indexed and share a layer with the image")
    func baseMustBeRelated() throws {
        let fixtures = try Fixtures.directory()
        let error = #expect(throws: ExportError.self) {
            try plan(fixtures.appendingPathComponent("chain-mid.qcow2").path, base: fixtures.appendingPathComponent("encrypted.qcow2").path)
        }
        #expect(error?.description.contains("not in the index") == true || error?.description.contains("share no layer") == true)
    }
}

func dataRunsAtDepth0(_ extents: [Extent]) -> [Range<UInt64>] {
    var runs: [Range<UInt64>] = []
    for extent in extents where extent.data && extent.depth == 0 {
        if let last = runs.last, last.upperBound == extent.start {
            runs[runs.count - 1] = last.lowerBound..<extent.end
        } else {
            runs.append(extent.start..<extent.end)
        }
    }
    return runs
}

/// Guest bytes of an image as extentdb reads it (scan + raw export to a pipe-less file).
enum VHDReaderContent {
    static func guestBytes(of path: String, work: TemporaryDirectory) throws -> [UInt8] {
        let plan = try plan(path)
        let out = work.path(UUID().uuidString + ".raw")
        _ = try export(plan, format: "raw", to: out)
        return Array(try Data(contentsOf: URL(fileURLWithPath: out)))
    }
}

/// libvhdi (python3-libvhdi) as a second reader of VHDs, where it follows the specification: images
/// without garbage in unmarked sectors, read in 1 MiB pieces (it drops sectors on very large reads).
@Suite struct LibvhdiPeerTests {
    static let script = """
        import sys, pyvhdi
        child = pyvhdi.file(); child.open(sys.argv[1])
        if len(sys.argv) > 3:
            parent = pyvhdi.file(); parent.open(sys.argv[3]); child.set_parent(parent)
        size = child.get_media_size()
        with open(sys.argv[2], "wb") as out:
            offset = 0
            while offset < size:
                piece = min(1 << 20, size - offset)
                out.write(child.read_buffer_at_offset(piece, offset))
                offset += piece
        """

    @Test("our guest view of writer-made VHDs equals libvhdi's (dynamic, 512 KiB blocks, differencing)")
    func sameAsLibvhdi() throws {
        guard
            FileManager.default.fileExists(atPath: "/usr/lib/python3/dist-packages/pyvhdi.cpython-311-x86_64-linux-gnu.so")
                || (try? run("/usr/bin/python3", ["-c", "import pyvhdi"])) != nil
        else {
            Issue.record("python3-libvhdi is not installed (scripts/install-deps.sh installs it)")
            return
        }
        let work = try TemporaryDirectory()
        defer { work.cleanup() }
        try Self.script.write(toFile: work.path("read.py"), atomically: true, encoding: .utf8)
        var parent = VHDWriter(kind: .dynamic, virtualSize: 6 << 20, blockSize: 512 << 10)
        parent.write(sector: 0, count: 40, byte: 0x11)
        parent.write(sector: 3000, count: 17, byte: 0x12)
        try parent.write(to: work.path("parent.vhd"))
        var child = VHDWriter(kind: .differencing, virtualSize: 6 << 20, blockSize: 512 << 10)
        child.parentUniqueID = parent.uniqueID
        child.parentName = "parent.vhd"
        child.locators = [.init(code: "W2ru", path: ".\\parent.vhd")]
        child.write(sector: 8, count: 16, byte: 0x21)
        child.write(sector: 9000, count: 8, byte: 0x22)
        try child.write(to: work.path("child.vhd"))
        for (name, peerArguments) in [("parent.vhd", [String]()), ("child.vhd", [work.path("parent.vhd")])] {
            try run("/usr/bin/python3", [work.path("read.py"), work.path(name), work.path(name + ".peer")] + peerArguments)
            let peer = Array(try Data(contentsOf: URL(fileURLWithPath: work.path(name + ".peer"))))
            let ours = try VHDReaderContent.guestBytes(of: work.path(name), work: work)
            #expect(ours == peer, "\(name) differs from libvhdi")
        }
    }
}

/// A sibling base is decided from the index alone (#19): planning reads no byte of any image.
@Suite struct SiblingPlanTests {
    @Test("a delta against a sibling is planned without reading image data, and covers both branches")
    func planFromIndexAlone() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        for command in [
            "qemu-img create -q -f qcow2 base.qcow2 16M", "qemu-io -f qcow2 -c 'write -P 1 0 1M' base.qcow2",
            "qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 a.qcow2", "qemu-io -f qcow2 -c 'write -P 2 4M 64k' a.qcow2",
            "qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 b.qcow2", "qemu-io -f qcow2 -c 'write -P 3 8M 64k' b.qcow2",
        ] {
            _ = try run("/bin/bash", ["-c", command], in: directory.url)
        }
        let store = try IndexStore()
        let indexer = ImageIndexer(store: store)
        let image = try indexer.ensureIndexed(path: directory.path("b.qcow2")).indexed
        _ = try indexer.ensureIndexed(path: directory.path("a.qcow2"))
        let basePath = try ImageIndexer.canonicalPath(directory.path("a.qcow2"))
        // The images are moved away: a plan that read any of them would fail.
        let away = directory.url.deletingLastPathComponent().appendingPathComponent(directory.url.lastPathComponent + "-away")
        try FileManager.default.moveItem(at: directory.url, to: away)
        defer { try? FileManager.default.moveItem(at: away, to: directory.url) }
        let plan = try ExportPlan(store: store, indexed: image, basePath: basePath)
        var sent: [Range<UInt64>] = []
        let cursor = plan.cursor()
        while let extent = try cursor.next() {
            if plan.role(of: extent) != .unchanged { sent.append(extent.start..<extent.end) }
        }
        #expect(plan.baseDepth == 1)
        #expect(plan.base?.path.hasSuffix("/a.qcow2") == true)
        // b's own write, and a's write reverted: nothing of the common base.
        #expect(sent.contains { $0.contains(8 << 20) })
        #expect(sent.contains { $0.contains(4 << 20) })
        #expect(!sent.contains { $0.contains(0) })
    }
}
