import AllocationIndex
import Foundation
import ImageFormats
import ImageIO
import Testing

#if canImport(FoundationXML)
    import FoundationXML
#endif

@testable import Report
@testable import Scanner
@testable import TestSupport

/// A store with every qcow2/raw fixture indexed.
func indexedFixtures() throws -> IndexStore {
    let store = try IndexStore()
    let indexer = ImageIndexer(store: store)
    let directory = try Fixtures.directory()
    for (name, file) in try Fixtures.manifest() where name != "encrypted" {
        _ = try indexer.ensureIndexed(path: directory.appendingPathComponent(file).path)
    }
    return store
}

/// Checks that a document parses as XML and counts its elements by name.
final class ElementCounter: NSObject, XMLParserDelegate {
    var counts: [String: Int] = [:]
    func parser(
        _ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?, attributes: [String: String] = [:]
    ) {
        counts[name, default: 0] += 1
    }
}

@Suite struct ReportTests {
    @Test("per-image numbers equal qemu-img map's data bytes (own layer and whole chain), less the stored zeros inside them")
    func numbersMatchQemu() throws {
        let store = try indexedFixtures()
        let report = try Report(store: store)
        let directory = try Fixtures.directory()
        for (name, file) in try Fixtures.manifest() where name != "encrypted" {
            let path = try #require(PathResolver.canonical(directory.appendingPathComponent(file).path))
            let image = try #require(report.images.first { $0.path == path }, "\(name)")
            let qemu = try qemuExtents(Data(contentsOf: directory.appendingPathComponent("\(name).map.json")))
            // Data the host holds as holes reads as zeros and is counted as zero (StoredZeroTests checks that
            // each such range lies in qemu's data and reads as zeros through qemu-io).
            var ownStoredZero: UInt64 = 0
            var chainStoredZero: UInt64 = 0
            let scanID = try #require(try store.latestScan(path: path)?.scan.id)
            try store.forEachExtent(scanID: scanID, from: 0) { extent in
                guard extent.data && !extent.zero && extent.storedZero else { return }
                chainStoredZero += extent.length
                if extent.depth == 0 { ownStoredZero += extent.length }
            }
            let own = qemu.filter { $0.data && $0.depth == 0 }.reduce(0) { $0 + $1.length } - ownStoredZero
            let chain = qemu.filter(\.data).reduce(0) { $0 + $1.length } - chainStoredZero
            #expect(image.allocatedBytes == own, "\(name) allocated")
            #expect(image.chainAllocatedBytes == chain, "\(name) chain")
            #expect(image.exportBytes == chain)
            #expect(image.virtualSize == (qemu.last?.end ?? 0))
            #expect(
                image.dataExtentCount >= UInt64(ExtentListBuilder.displayMerged(qemu).filter(\.data).count) || image.dataExtentCount > 0
                    || chain == 0)
            if image.dataExtentCount > 0 {
                #expect(image.largestExtent >= image.medianExtent && image.medianExtent > 0)
                #expect(image.histogram.reduce(0, +) == image.dataExtentCount)
            }
        }
        let overall = report.totals.overall
        #expect(overall.imageCount == UInt64(report.images.count))
        #expect(overall.allocatedBytes == report.images.reduce(0) { $0 + $1.allocatedBytes })
        #expect(report.totals.directories.reduce(0) { $0 + $1.imageCount } == overall.imageCount)
    }

    @Test("VHD numbers are sector-exact: allocated bytes are the marked sectors")
    func vhdSectorExact() throws {
        let work = try TemporaryDirectory()
        defer { work.cleanup() }
        var writer = VHDWriter(kind: .dynamic, virtualSize: 8 << 20)
        writer.garbage = 0xEE
        writer.write(sector: 1, count: 3, byte: 1)
        writer.write(sector: 5000, count: 7, byte: 2)
        try writer.write(to: work.path("disk.vhd"))
        let store = try IndexStore()
        _ = try ImageIndexer(store: store).ensureIndexed(path: work.path("disk.vhd"))
        let image = try #require(try Report(store: store).images.first)
        #expect(image.allocatedBytes == 10 * 512)
        #expect(image.dataExtentCount == 2 && image.largestExtent == 7 * 512 && image.medianExtent == 3 * 512)
        #expect(image.format == "vhd")
    }

    @Test("delta bytes are what an export over the parent sends")
    func deltaBytes() throws {
        let store = try indexedFixtures()
        let report = try Report(store: store)
        let top = try #require(report.images.first { $0.path.hasSuffix("chain-top.qcow2") })
        let scan = try #require(try store.latestScan(path: top.path))
        let own = try store.extents(scanID: try #require(scan.scan.id)).filter { $0.depth == 0 && $0.present }.reduce(0) { $0 + $1.length }
        #expect(top.deltaBytes == own)
        #expect(top.parent?.hasSuffix("chain-mid.qcow2") == true)
        #expect(report.images.first { $0.path.hasSuffix("empty.qcow2") }?.deltaBytes == nil)
    }

    @Test("JSON and CSV parse; the HTML is well-formed with one <svg> per image")
    func formats() throws {
        let store = try indexedFixtures()
        let report = try Report(store: store, history: true)
        let json = try JSONSerialization.jsonObject(with: Data(try report.json().utf8)) as? [String: Any]
        #expect((json?["images"] as? [Any])?.count == report.images.count)
        let totals = json?["totals"] as? [String: Any]
        #expect((totals?["overall"] as? [String: Any])?["image_count"] as? Int == report.images.count)
        let csv = report.csv().split(separator: "\r\n")
        #expect(csv.count == report.images.count + 1)
        let columns = csv[0].split(separator: ",").count
        #expect(csv.allSatisfy { $0.split(separator: ",", omittingEmptySubsequences: false).count == columns })
        let html = try report.html(store: store)
        let parser = XMLParser(data: Data(html.utf8))
        let counter = ElementCounter()
        parser.delegate = counter
        #expect(parser.parse(), "HTML is not well-formed: \(String(describing: parser.parserError))")
        #expect(counter.counts["svg"] == report.images.count)
        #expect(!html.contains("http://") || !html.contains("src=\"http"), "no network resources")
        #expect(!html.contains("<link") && !html.contains("src="))
    }

    @Test("sort and top pick the largest images first")
    func sortAndTop() throws {
        let store = try indexedFixtures()
        let report = try Report(store: store, sort: "virtual_size", top: 3)
        #expect(report.images.count == 3)
        #expect(report.images.map(\.virtualSize) == report.images.map(\.virtualSize).sorted(by: >))
        #expect(report.images.first?.path.hasSuffix("big.qcow2") == true)
        #expect(throws: ReportError.self) { try Report(store: store, sort: "nonsense") }
    }

    @Test("diff of two scans shows what a write changed; history keeps both scans")
    func diffAndHistory() throws {
        let work = try TemporaryDirectory()
        defer { work.cleanup() }
        let image = work.path("disk.qcow2")
        try run("qemu-img", ["create", "-q", "-f", "qcow2", image, "64M"])
        try run("qemu-io", ["-f", "qcow2", "-c", "write -P 1 0 64k", image])
        let store = try IndexStore()
        let indexer = ImageIndexer(store: store)
        let first = try indexer.ensureIndexed(path: image).indexed
        try run("qemu-io", ["-f", "qcow2", "-c", "write -P 2 1M 128k", "-c", "write -z 0 64k", image])
        let second = try indexer.ensureIndexed(path: image).indexed
        let diff = try AllocationDiff(store: store, before: try #require(first.scan.id), after: try #require(second.scan.id))
        #expect(diff.newlyAllocatedBytes == 128 * 1024)
        #expect(diff.freedBytes == 64 * 1024)
        #expect(diff.changes.map(\.start) == [0, 1 << 20])
        #expect(diff.changes.map(\.length) == [65536, 131072])
        let history = try #require(try Report(store: store, history: true).images.first?.history)
        #expect(history.map(\.allocatedBytes) == [65536, 131072])
    }
}
