import NBD
import NIOConcurrencyHelpers

/// The images a server offers, by export name: one image for `extentdb nbd`, every indexed image under the
/// roots for `extentdb serve --nbd-socket`. Lookups may read the index or rescan, so connections call them
/// on a blocking-I/O thread.
public protocol ImageExportCatalog: Sendable {
    /// The names `NBD_OPT_LIST` announces.
    func exportNames() -> [String]
    /// The image served as `name`, as fresh as the catalog's policy makes it, or why there is none.
    func imageExport(named name: String) -> Result<ImageExport, NBDExportUnavailable>
    /// True when every export ``imageExport(named:)`` returns was checked (stat and header checksum) and
    /// found fresh, or rescanned, in that call: a session starting right after needs no second check.
    var checksOnLookup: Bool { get }
}

extension ImageExportCatalog {
    public var checksOnLookup: Bool { false }
}

/// One image under one name (`""` by default, as qemu-nbd). When a client asks for it and the image
/// changed since its export was made (`stat` and header checksum), `refresh` makes a new one (the CLI
/// rescans); connections already transmitting keep the old one, whose reads then fail with EIO.
public final class SingleImageCatalog: ImageExportCatalog {
    public let name: String
    private let current: NIOLockedValueBox<ImageExport>
    private let refresh: (@Sendable () throws -> ImageExport)?

    /// - Parameters:
    ///   - export: The image as indexed when the server starts.
    ///   - refresh: Rescans the image and makes its new export; nil serves `export` as it is (stale reads
    ///     then fail).
    public init(_ export: ImageExport, refresh: (@Sendable () throws -> ImageExport)? = nil) {
        name = export.advertised.name
        current = NIOLockedValueBox(export)
        self.refresh = refresh
    }

    public func exportNames() -> [String] { [name] }

    /// With `refresh`, a stale image is rescanned before it is returned; without, it is returned as it is.
    public var checksOnLookup: Bool { refresh != nil }

    public func imageExport(named name: String) -> Result<ImageExport, NBDExportUnavailable> {
        guard name == self.name else { return .failure(NBDExportUnavailable("no export named '\(name)'")) }
        // One rescan at a time: clients connecting together after a change wait for the same one.
        return current.withLockedValue { export in
            guard let refresh, !export.freshness().isFresh else { return .success(export) }
            do {
                export = try refresh()
                return .success(export)
            } catch {
                return .failure(NBDExportUnavailable("\(export.indexed.image.path): cannot rescan it: \(error)"))
            }
        }
    }
}

/// A connection's view of a catalog for its negotiation: remembers the image of the last name it found,
/// which is the one `NBD_OPT_GO` or `NBD_OPT_EXPORT_NAME` just chose when transmission begins. Only one is
/// kept, so a client asking about many names holds no more than one export. Asking again for that name
/// (a client sends `NBD_OPT_SET_META_CONTEXT`, then `NBD_OPT_GO`) reuses it instead of looking it up and
/// checking the image again: a negotiation lasts at most the handshake limit, and every read the session
/// makes checks the files again (``GuestReader``).
final class NegotiatedExports: NBDExportDirectory {
    let catalog: any ImageExportCatalog
    private let last = NIOLockedValueBox<ImageExport?>(nil)

    init(catalog: any ImageExportCatalog) {
        self.catalog = catalog
    }

    func exportNames() -> [String] { catalog.exportNames() }

    func export(named name: String) -> Result<NBDExport, NBDExportUnavailable> {
        if let found = image(named: name) { return .success(found.advertised) }
        let found = catalog.imageExport(named: name)
        last.withLockedValue { $0 = try? found.get() }
        return found.map(\.advertised)
    }

    /// The image of `name`, if it was the last one found.
    func image(named name: String) -> ImageExport? {
        last.withLockedValue { $0.flatMap { $0.advertised.name == name ? $0 : nil } }
    }

    /// True when the image the session starts on was checked (stat and header checksum) when this
    /// negotiation looked it up (``ImageExportCatalog/checksOnLookup``), so the session need not check again.
    var imagesWereChecked: Bool { catalog.checksOnLookup }

    /// True when answering `message` needs nothing but what this negotiation already found: an option
    /// about the export it already looked up, on a catalog that checked it then. The connection answers
    /// those where it is, without a hop to the blocking-I/O pool.
    func answersFromMemory(_ message: NBDClientMessage) -> Bool {
        guard imagesWereChecked, case .option(let option) = message else { return false }
        let name: String?
        switch option.code {
        case NBDOptionCode.go, NBDOptionCode.info:
            name = try? NBDExportQuery(parsing: option.data).name
        case NBDOptionCode.setMetaContext, NBDOptionCode.listMetaContext:
            name = try? NBDMetaContextQuery(parsing: option.data).exportName
        default:
            return false
        }
        return name.map { image(named: $0) != nil } ?? false
    }
}
