import AllocationIndex
import Export
import ImageFormats
import ImageIO
import Scanner
import Testing

@testable import Catalog

/// The one classification of library errors: each front end maps the code, so the code must be right.
@Suite struct CatalogErrorTests {
    @Test("image errors keep their file, field and offset; refused and replaced get their own codes")
    func imageErrors() {
        let format = CatalogError(classifying: ImageError.format("/d.qcow2", .badMagic(field: "magic", found: 1, offset: 0)))
        #expect(format.code == .invalidImage)
        #expect(format.path == "/d.qcow2")
        #expect(format.field == "magic")
        #expect(format.offset == 0)
        #expect(CatalogError(classifying: ImageError(path: "/d", .refused("no"))).code == .refused)
        #expect(CatalogError(classifying: ImageError(path: "/d", .replaced("link"))).code == .replaced)
        let io = CatalogError(classifying: ImageError(path: "/d", .io(IOError(path: "/d/base", operation: "read"))))
        #expect(io.path == "/d/base")
    }

    @Test("a lookup that may not scan says not_indexed or stale, with the remedy 'scan first' and no CLI flag")
    func lookupErrors() {
        let missing = CatalogError(classifying: ImageIndexer.LookupError.notIndexed(path: "/d"))
        #expect(missing.code == .notIndexed)
        #expect(missing.remedy == .scanFirst)
        let stale = CatalogError(classifying: ImageIndexer.LookupError.stale(path: "/d", reason: "modified"))
        #expect(stale.code == .stale)
        #expect(!stale.message.contains("--"), "\(stale.message)")
    }

    @Test("index errors: read-only, gone, and unusable")
    func storeErrors() {
        #expect(CatalogError(classifying: StoreError.readOnly("/i")).code == .indexReadOnly)
        #expect(CatalogError(classifying: StoreError.scanGone("x")).code == .notFound)
        #expect(CatalogError(classifying: StoreError.full(path: "/i", detail: "")).code == .indexUnavailable)
    }

    @Test("export errors: a plan that cannot be is a bad export; its remedy travels")
    func exportErrors() {
        let plan = CatalogError(classifying: ExportError.plan("too big", remedy: .clusterSize(1 << 21)))
        #expect(plan.code == .invalidExport)
        #expect(plan.remedy == .clusterSize(1 << 21))
        #expect(CatalogError(classifying: ExportError.data(path: "/d", offset: 7, reason: "short")).offset == 7)
    }

    @Test("the codes' words are stable: they are the API's error field")
    func stableWords() {
        #expect(
            CatalogError.Code.allCases.map(\.rawValue).sorted() == [
                "bad_export", "bad_request", "busy", "forbidden", "image_error", "index_read_only", "index_unavailable", "internal",
                "io_failed", "missing", "not_found", "not_indexed", "replaced", "stale",
            ])
    }
}
