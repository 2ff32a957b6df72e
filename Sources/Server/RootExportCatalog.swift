import AllocationIndex
import Catalog
import Foundation
import NBD
import NBDServer
import Scanner

/// What `serve --nbd-socket/--nbd-listen` exports: every indexed image under the roots, named by its path
/// relative to its root (`vm1/disk.qcow2`); with several roots, the first root holding a path names it.
///
/// A name is confined exactly like an HTTP path (``RootPolicy``: `..` and symbolic links that leave the
/// roots are refused), and a client is told only "no export named ..." for anything it may not read, so it
/// cannot probe the host. An image that changed since its last scan is rescanned when a client asks for it
/// (the CLI's freshness policy); one never indexed is not served (scan it first: `POST /v1/scans`, or let
/// the watcher find it).
struct RootExportCatalog: ImageExportCatalog {
    let service: IndexService

    func exportNames() -> [String] {
        let images = (try? service.store.scannedImages(matching: [], directories: service.configuration.roots)) ?? []
        // Only images it would serve: a chain with a layer outside the roots (indexed by another user of the
        // index) is neither served nor announced.
        let servable = images.filter { image in
            let indexed = IndexedScan(image: image.image, scan: image.scan, layers: image.layers)
            // A deleted image is not announced: a client listing exports and opening each would fail on it.
            var info = stat()
            guard stat(image.image.path, &info) == 0 else { return false }
            return (try? service.confine(indexed)) != nil && service.indexer.trustShortfall(of: indexed) == nil
        }
        return servable.compactMap { service.policy.relativePath(of: $0.image.path) }.sorted()
    }

    /// Every lookup checks the image's headers and rescans it when it changed.
    var checksOnLookup: Bool { true }

    func imageExport(named name: String) -> Result<ImageExport, NBDExportUnavailable> {
        let unknown = NBDExportUnavailable("no export named '\(name)'")
        guard let path = resolve(name) else { return .failure(unknown) }
        do {
            guard try service.store.latestScan(path: path) != nil else {
                return .failure(NBDExportUnavailable("'\(name)' is not indexed yet: scan it first"))
            }
            let indexed = try service.indexer.lookup(path: path, rescan: true, checkHeaders: true).indexed
            service.markChecked(path)
            try service.confine(indexed)
            // Every persistent bitmap not flagged in use, as qemu:dirty-bitmap:NAME, in name order.
            let bitmaps = try service.store.bitmaps(scanID: indexed.scan.id ?? -1).filter { !$0.inUse }
            return .success(try ImageExport(store: service.store, indexed: indexed, name: name, bitmaps: bitmaps))
        } catch {
            // A name the roots or the chain boundary refuse, or one now leading through a link, is unknown here,
            // so a client learns nothing about files it may not read.
            let classified = CatalogError(classifying: error)
            switch classified.code {
            case .refused, .notFound, .replaced: return .failure(unknown)
            default: return .failure(NBDExportUnavailable("'\(name)': \(classified.message)"))
            }
        }
    }

    /// The canonical path of the image `name` names under the first root where it exists, or nil.
    private func resolve(_ name: String) -> String? {
        guard !name.isEmpty, !name.hasPrefix("/"), !name.contains("\0") else { return nil }
        for root in service.configuration.roots {
            if let path = try? service.policy.resolve(root + "/" + name) { return path }
        }
        return nil
    }
}
