import AllocationIndex
import Catalog
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOPosix
import PoolCatalog
import Scanner

/// The state every route shares: the index, the roots, the freshness marks the watcher keeps, and the
/// threads that run blocking work (scans, export producers, pipe reads) off the request threads.
public final class IndexService: Sendable {
    public let configuration: ServerConfiguration
    public let store: any IndexStoring
    public let policy: RootPolicy
    public let indexer: ImageIndexer
    /// The front door: lookups, summaries and errors as every front end has them.
    public let catalog: ImageCatalog
    public let scans: ScanJobs
    public let metrics: ServiceMetrics
    let logger: Logger
    let cache = ResponseCache()
    /// The image list's summaries between requests (`GET /v1/images?limit=`), kept true by the watcher.
    let listing: ListingCache
    /// Export producers and the reads of their pipes.
    let blockingPool: NIOThreadPool
    private let activeExports = NIOLockedValueBox((total: 0, byClient: [String: Int]()))
    /// When the watcher (or a request) last compared each image with the disk, in seconds since 1970.
    private let checked = NIOLockedValueBox([PathKey: Double]())
    /// Indexed images the watcher found deleted.
    private let missing = NIOLockedValueBox(Set<String>())
    /// The pool catalog's change feed (nil on SQLite): other hosts' rescans and forgets reach the caches.
    private let changes = NIOLockedValueBox<(any ChangeSubscription)?>(nil)

    /// Opens the index and starts the worker threads.
    ///
    /// - Throws: when the index cannot be opened.
    public init(configuration: ServerConfiguration, logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        listing = ListingCache(watched: configuration.watchInterval > 0)
        // A PostgreSQL catalog gets a connection for each scan, export and a few lookups at once.
        let connections = configuration.concurrentScans + 2 * configuration.concurrentExports + 4
        store = try IndexLocation(configuration.databasePath).open(maximumConnections: connections)
        policy = RootPolicy(roots: configuration.roots)
        // The CLI's rule: a backing file, parent or data file lies beneath the naming image's directory, or
        // under a --trust-root. The image itself is opened beneath its root with no symbolic link, and trust
        // recorded by other users of the index (--allow-outside-backing) is not inherited.
        var options = ScanOptions(allowsOutsideBacking: false, trustedRoots: configuration.trustRoots)
        options.keepsRecordedTrust = false
        options.confinementRoots = configuration.roots
        options.timeLimit = configuration.scanTimeLimit
        options.maximumExtents = configuration.maximumScanExtents
        indexer = ImageIndexer(store: store, options: options)
        catalog = ImageCatalog(indexer: indexer)
        metrics = ServiceMetrics.shared
        scans = ScanJobs(
            indexer: indexer, concurrency: configuration.concurrentScans, maximumUnfinished: configuration.maximumQueuedScans,
            metrics: metrics, logger: logger)
        blockingPool = NIOThreadPool(numberOfThreads: 2 * configuration.concurrentExports + 2)
        blockingPool.start()
        do {
            let subscription = try store.watchChanges { [cache, logger] change in
                cache.forget(imageID: change.imageID)
                guard change.host != HostName.current else { return }
                logger.info(
                    "catalog changed by another host",
                    metadata: [
                        "path": "\(change.path)", "host": "\(change.host)", "image_id": "\(change.imageID)",
                        "scan_id": "\(change.scanID.map(String.init) ?? "forgotten")",
                    ])
            } interrupted: { [cache, logger] what in
                cache.forgetScans()
                logger.warning("\(what)")
            }
            changes.withLockedValue { $0 = subscription }
        } catch {
            logger.warning("no change feed from the catalog: other hosts' rescans show when caches expire (\(error))")
        }
    }

    /// Counts an export in, or refuses it (503) when ``ServerConfiguration/concurrentExports`` are running, or
    /// when this client already runs its share (``ServerConfiguration/exportsPerClient``): one client cannot
    /// take every slot.
    func beginExport(client: String) throws {
        let refusal: (limit: String, detail: String)? = activeExports.withLockedValue { state in
            guard state.total < configuration.concurrentExports else {
                return ("exports", "\(configuration.concurrentExports) exports are already running")
            }
            let mine = state.byClient[client, default: 0]
            guard mine < configuration.exportsPerClient else {
                return (
                    "exports_per_client",
                    "this client already runs \(configuration.exportsPerClient) exports, its share; try again when one ends"
                )
            }
            state.total += 1
            state.byClient[client] = mine + 1
            return nil
        }
        if let refusal {
            metrics.limitHit(refusal.limit)
            throw APIError(.serviceUnavailable, "busy", refusal.detail)
        }
    }

    func endExport(client: String) {
        activeExports.withLockedValue { state in
            state.total -= 1
            let mine = state.byClient[client, default: 1] - 1
            if mine <= 0 { state.byClient.removeValue(forKey: client) } else { state.byClient[client] = mine }
        }
    }

    /// Records that `path` was just compared with the disk; `exists` false marks it missing.
    public func markChecked(_ path: String, exists: Bool = true) {
        checked.withLockedValue { $0[PathKey(path)] = Date().timeIntervalSince1970 }
        missing.withLockedValue { if exists { $0.remove(path) } else { $0.insert(path) } }
    }

    /// When `path` was last compared with the disk, if it was since the service started.
    public func lastChecked(_ path: String) -> Double? {
        checked.withLockedValue { $0[PathKey(path)] }
    }

    public func isMarkedMissing(_ path: String) -> Bool {
        missing.withLockedValue { $0.contains(path) }
    }

    /// ``lastChecked(_:)`` of each of `paths`, under one lock.
    func lastChecked(_ paths: [String]) -> [Double?] {
        let keys = paths.map(PathKey.init)
        return checked.withLockedValue { checked in keys.map { checked[$0] } }
    }

    /// ``isMarkedMissing(_:)`` of each of `paths`, under one lock.
    func areMarkedMissing(_ paths: [String]) -> [Bool] {
        missing.withLockedValue { missing in missing.isEmpty ? Array(repeating: false, count: paths.count) : paths.map(missing.contains) }
    }

    /// Lets running scans finish. The blocking pool is left running: responses still streaming an export
    /// read each piece through it (`PipeStream`), and the HTTP server's own graceful shutdown may still be
    /// waiting for them; stopping the pool here cut such exports short under load. Its threads end with
    /// the process.
    func shutdown() async {
        await scans.shutdown()
        changes.withLockedValue { subscription in
            subscription?.stop()
            subscription = nil
        }
    }
}
