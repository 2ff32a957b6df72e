import AllocationIndex
import NBD
import NIOConcurrencyHelpers
import NIOCore
import Scanner
import Testing

@testable import NBDServer
@testable import TestSupport

/// A connection looks an export up once per negotiation, and answers options that need no lookup without
/// the blocking-I/O pool.
@Suite struct NegotiatedExportsTests {
    /// Counts the catalog lookups a negotiation makes.
    final class CountingCatalog: ImageExportCatalog {
        let inner: SingleImageCatalog
        let lookups = NIOLockedValueBox(0)
        init(_ inner: SingleImageCatalog) { self.inner = inner }
        func exportNames() -> [String] { inner.exportNames() }
        func imageExport(named name: String) -> Result<ImageExport, NBDExportUnavailable> {
            lookups.withLockedValue { $0 += 1 }
            return inner.imageExport(named: name)
        }
        var checksOnLookup: Bool { inner.checksOnLookup }
    }

    static func catalog() throws -> CountingCatalog {
        let path = try Fixtures.directory().appendingPathComponent("chain-top.qcow2").path
        let store = try IndexStore()
        let options = ScanOptions(allowsOutsideBacking: false, trustedRoots: [try Fixtures.directory().path], pinnedFormat: nil)
        let indexer = ImageIndexer(store: store, options: options)
        let indexed = try indexer.ensureIndexed(path: path).indexed
        let export = try ImageExport(store: store, indexed: indexed)
        return CountingCatalog(
            SingleImageCatalog(export) { try ImageExport(store: store, indexed: indexer.ensureIndexed(path: path).indexed) })
    }

    @Test func `SET_META_CONTEXT then GO looks the image up once, and the GO lookup counts as the session's check`() throws {
        let catalog = try Self.catalog()
        let exports = NegotiatedExports(catalog: catalog)
        var negotiation = NBDNegotiation(exports: exports)
        var bytes = ByteBuffer()
        bytes.writeInteger(NBDClientFlags.fixedNewstyle)
        NBDOption(code: NBDOptionCode.structuredReply, data: ByteBuffer()).encode(into: &bytes)
        var query = ByteBuffer()
        NBDMetaContextQuery(exportName: "", queries: ["base:allocation"]).encode(into: &query)
        NBDOption(code: NBDOptionCode.setMetaContext, data: query).encode(into: &bytes)
        var go = ByteBuffer()
        NBDExportQuery(name: "", requests: []).encode(into: &go)
        NBDOption(code: NBDOptionCode.go, data: go).encode(into: &bytes)
        var decoder = NBDServerDecoder()
        var outcomes: [NBDNegotiation.Outcome] = []
        var consulted: [Bool] = []
        while let message = try decoder.next(from: &bytes) {
            consulted.append(NBDNegotiation.consultsDirectory(message))
            outcomes.append(negotiation.handle(message))
            if case .beginTransmission = outcomes.last { break }
        }
        // Client flags and STRUCTURED_REPLY are answered from state; SET_META_CONTEXT and GO consult.
        #expect(consulted == [false, false, true, true])
        guard case .beginTransmission = try #require(outcomes.last) else {
            Issue.record("GO did not begin transmission: \(outcomes)")
            return
        }
        #expect(catalog.lookups.withLockedValue { $0 } == 1)
        #expect(exports.image(named: "") != nil)
        #expect(exports.imagesWereChecked, "the CLI's catalog rescans a changed image when it is looked up")
    }

    @Test func `only options about the export already found are answered without the blocking-I/O pool`() throws {
        let catalog = try Self.catalog()
        let exports = NegotiatedExports(catalog: catalog)
        func go(_ name: String) -> NBDClientMessage {
            var data = ByteBuffer()
            NBDExportQuery(name: name, requests: []).encode(into: &data)
            return .option(NBDOption(code: NBDOptionCode.go, data: data))
        }
        #expect(!exports.answersFromMemory(go("")), "nothing was looked up yet")
        _ = exports.export(named: "")
        #expect(exports.answersFromMemory(go("")))
        #expect(!exports.answersFromMemory(go("other")))
        #expect(!exports.answersFromMemory(.option(NBDOption(code: NBDOptionCode.list, data: ByteBuffer()))))
        #expect(catalog.lookups.withLockedValue { $0 } == 1)
    }
}
