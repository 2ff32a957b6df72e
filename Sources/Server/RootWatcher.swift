import Catalog
import AllocationIndex
import Foundation
import ImageIO
import Scanner
import ServiceLifecycle

#if canImport(Glibc)
    import Glibc
#endif

/// Keeps the index fresh with no client asking: inotify events and a periodic `stat` sweep of the roots
/// mark images dirty; once an image's writes have settled (``ServerConfiguration/debounce``), it is
/// rescanned through the scan queue. Deleted images are marked missing (their scans stay until `DELETE`).
struct RootWatcher: Service {
    let service: IndexService
    /// Opens once the service's listeners are bound: nothing is scanned for a service that cannot start.
    let gate: ListenGate
    /// How often inotify is drained and settled images are dispatched.
    static let tick: Duration = .milliseconds(200)

    func run() async throws {
        await gate.waitUntilOpen()
        if Task.isCancelled { return }
        let state = WatchState(service: service, inotify: InotifyWatch(roots: service.configuration.roots))
        service.logger.info(
            "watching roots", metadata: ["roots": "\(service.configuration.roots)", "inotify": "\(state.inotify != nil)"])
        let started = WatchState.now()
        let swept = state.sweep()
        service.logger.info(
            "first sweep done",
            metadata: [
                "images": "\(swept.compared)", "new": "\(swept.found)",
                "milliseconds": "\(Int((WatchState.now() - started) * 1000))",
            ])
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                state.poll()
                do { try await Task.sleep(for: Self.tick) } catch { break }
            }
        }
    }
}

/// The watcher's mutable state; touched only from the watcher's loop.
final class WatchState: @unchecked Sendable {
    let service: IndexService
    let inotify: InotifyWatch?
    /// What a sweep compares with the disk, for each indexed image under the roots, kept between sweeps:
    /// the key of its latest scan (``ListedImageKey``), its chain's layers and the host that scanned it.
    private var indexed: [String: IndexedLayers] = [:]
    struct IndexedLayers {
        var key: ListedImageKey
        var layers: [ScanLayerRecord]
        var host: String?
    }
    /// Dirty paths and when they last changed (seconds, monotonic).
    private var dirty: [String: Double] = [:]
    /// Paths with a scan queued or running (a change during it marks them dirty again).
    private var scanning: Set<String> = []
    private let scanningLock = NSLock()
    private var lastSweep = 0.0
    /// External data files of the qcow2 images under the roots (canonical paths): a data file is that
    /// image's data, not a raw disk of its own, so it is never indexed alone (as `scan DIR` does).
    private var dataFiles: Set<String> = []
    /// Which new files are images: by content, the rule `scan DIR` follows (``ImageDiscovery``).
    let discovery: ImageDiscovery
    /// Files a sweep found not to be images (or skipped), with the identity they had then: not probed
    /// again until they change.
    private var notImages: [String: FileIdentity] = [:]

    init(service: IndexService, inotify: InotifyWatch?) {
        self.service = service
        self.inotify = inotify
        discovery = ImageDiscovery(includeRaw: service.configuration.includeRaw)
        lastSweep = Self.now()
    }

    static func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

    /// Drains inotify, sweeps when due, and dispatches settled paths.
    func poll() {
        let now = Self.now()
        if let inotify {
            for change in inotify.drain() where !change.isDirectory {
                // The listed summary goes at once: until the rescan, the list says stale (or missing).
                service.listing.forget(path: change.path)
                if change.removed || isCandidate(change.path) || isIndexedPath(change.path) { dirty[change.path] = now }
            }
            if inotify.overflowed { sweep() }
        }
        if now - lastSweep >= service.configuration.watchInterval { sweep() }
        for (path, changed) in dirty where now - changed >= service.configuration.debounce {
            dirty.removeValue(forKey: path)
            settle(path)
        }
    }

    /// Compares every indexed image under the roots with the disk, and finds new images.
    ///
    /// - Returns: how many indexed images it compared, and how many new images it found.
    @discardableResult
    func sweep() -> (compared: Int, found: Int) {
        lastSweep = Self.now()
        let now = lastSweep
        guard refreshIndexed() else { return (0, 0) }
        var known = Set<String>()
        var dataFiles = Set(indexed.values.flatMap { $0.layers.compactMap(\.dataPath) })
        for (path, image) in indexed {
            known.insert(path)
            if ImageIndexer.freshness(layers: image.layers, scannedBy: image.host).isFresh {
                service.markChecked(path)
            } else if dirty[path] == nil {
                service.listing.forget(path: path)
                dirty[path] = now
            }
        }
        // Failures are read once per sweep: a directory full of junk files that fail to scan costs one
        // query, not one per file (which made an idle service spin on 3,000 of them).
        let failures = (try? service.store.failures()) ?? [:]
        var found: [String] = []
        for root in service.configuration.roots {
            let walk = discovery.walk(root, knownDataFiles: dataFiles) { path in
                if known.contains(path) || self.dirty[path] != nil { return true }
                if let failure = failures[path], self.hasFailedSince(failure, path: path) { return true }
                if let seen = self.notImages[path], let now = try? FileIdentity(path: path), now.matches(seen) { return true }
                return false
            }
            found += walk.images
            for path in walk.otherFiles + walk.skipped.map(\.path) {
                notImages[path] = try? FileIdentity(path: path)
            }
        }
        dataFiles.formUnion(ChainScanner.externalDataFiles(among: found).keys)
        self.dataFiles = dataFiles
        for path in found where !dataFiles.contains(PathResolver.canonical(path) ?? path) { dirty[path] = now }
        return (indexed.count, found.count)
    }

    /// Brings ``indexed`` up to the index: the keys of every image under the roots (10,000 a query), then
    /// the rows of those whose key moved since the last sweep. A sweep of an unchanged index of 100,000
    /// images reads ten pages of keys, not 100,000 scans' records.
    ///
    /// - Returns: false when the index could not be read (the sweep waits for the next round).
    private func refreshIndexed() -> Bool {
        let pageSize = 10_000
        var keys: [ListedImageKey] = []
        var after: String?
        do {
            repeat {
                let page = try service.store.imagePageKeys(after: after, limit: pageSize, under: service.configuration.roots)
                keys += page.filter { $0.scanID != nil }
                after = page.count == pageSize ? page.last?.path : nil
            } while after != nil
            let moved = keys.filter { indexed[$0.path]?.key != $0 }.map(\.path)
            for start in stride(from: 0, to: moved.count, by: 1000) {
                for row in try service.store.listedImages(paths: Array(moved[start..<min(start + 1000, moved.count)])) {
                    guard let scanned = row.scanned else { continue }
                    indexed[row.path] = IndexedLayers(key: row.key, layers: scanned.layers, host: scanned.scan.host)
                }
            }
        } catch {
            service.logger.warning("sweep: the index cannot be read", metadata: ["error": "\(error)"])
            return false
        }
        let listed = Set(keys.map(\.path))
        indexed = indexed.filter { listed.contains($0.key) }
        return true
    }

    /// True when `canonical` is the external data file of a qcow2 image: one found by the last sweep, or
    /// one beside it (a new image and its data file appear together, before either is indexed).
    private func isDataFile(_ canonical: String) -> Bool {
        if dataFiles.contains(canonical) { return true }
        guard (try? ChainScanner.probe(path: canonical))?.format == .raw else { return false }
        let directory = PathResolver.directory(of: canonical)
        let siblings = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).map { directory + "/" + $0 }
        let candidates = siblings.filter { $0 != canonical && isCandidate($0) && (try? ChainScanner.probe(path: $0))?.format == .qcow2 }
        let found = ChainScanner.externalDataFiles(among: candidates)
        dataFiles.formUnion(found.keys)
        return found[canonical] != nil
    }

    /// Acts on a path whose changes settled: rescans a changed or new image, marks a deleted one missing.
    private func settle(_ path: String) {
        guard service.policy.contains(path) else { return }
        var info = stat()
        guard lstat(path, &info) == 0 else {
            if isIndexedPath(path) {
                service.markChecked(path, exists: false)
                service.logger.info("image deleted; marked missing", metadata: ["path": "\(path)"])
            }
            return
        }
        // Symbolic links are followed by scans only when they resolve inside the roots.
        guard let canonical = PathResolver.canonical(path), service.policy.contains(canonical) else { return }
        if let indexed = try? service.store.latestScan(path: canonical), ImageIndexer.freshness(of: indexed).isFresh {
            service.markChecked(canonical)
            return
        }
        // A scan that failed since the file last changed (a missing backing file) is not retried every
        // sweep; a write to the file, a client's scan or a query brings it back.
        if hasFailedBefore(canonical) { return }
        if !isIndexedPath(canonical) {
            // A new file: an image only by the discovery rule (content, links confined, raw files only with
            // --include-raw), and never a qcow2's external data file.
            let root = service.configuration.roots.first { PathResolver.isInside(path, directory: $0) } ?? PathResolver.directory(of: path)
            guard case .image = discovery.classify(path, under: root) else { return }
            if isDataFile(canonical) { return }
        }
        let started = scanningLock.withLock { scanning.insert(canonical).inserted }
        guard started else {
            dirty[path] = Self.now()
            return
        }
        service.logger.info("image changed; rescanning", metadata: ["path": "\(canonical)"])
        let service = service
        do {
            try service.scans.submit(path: canonical) { [weak self] _ in
                service.markChecked(canonical)
                guard let self else { return }
                self.scanningLock.withLock { _ = self.scanning.remove(canonical) }
            }
        } catch {
            // The queue is full: tried again once it drains.
            scanningLock.withLock { _ = scanning.remove(canonical) }
            dirty[path] = Self.now()
        }
    }

    /// A file an inotify event may be about: a regular file, or a link to one. Whether it is an image is
    /// decided by content once its writes settle (``ImageDiscovery``), not on every event.
    private func isCandidate(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFREG
    }

    private func isIndexedPath(_ path: String) -> Bool {
        (try? service.store.image(path: path))??.latestScanId != nil
    }

    /// A file that failed to scan is not retried by the sweep until it changes (inotify still sees that).
    private func hasFailedBefore(_ path: String) -> Bool {
        guard let failure = try? service.store.failure(path: path) else { return false }
        return hasFailedSince(failure, path: path)
    }

    /// True when `failure` is newer than the file's last change.
    private func hasFailedSince(_ failure: ScanFailure, path: String) -> Bool {
        var info = stat()
        guard stat(path, &info) == 0 else { return true }
        let modified = Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec)
        return modified <= failure.failedAtNanoseconds
    }
}
