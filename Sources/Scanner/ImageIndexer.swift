import AllocationIndex
import Foundation
import ImageFormats
import ImageIO

/// The version recorded with every scan.
public let extentdbVersion = "0.1.0"

/// Whether an indexed scan still describes the files on disk.
public enum Freshness: Sendable, Equatable {
    case fresh
    /// Names the layer and what changed.
    case stale(String)

    public var isFresh: Bool { self == .fresh }
}

/// What `ensureIndexed` did for one image.
public struct IndexingOutcome: Sendable {
    /// `reused`: another process sharing the index (a host of the pool) scanned the image while this one
    /// waited for the image's scan lock; its scan answers.
    public enum Action: String, Sendable { case scanned, unchanged, reused }
    public var path: String
    public var action: Action
    public var indexed: IndexedScan
    /// For `unchanged`: why this host's view of the file disagrees with the host that scanned it, when that
    /// is why it was not rescanned (``ImageIndexer/hostDisagreement(of:)``); nil otherwise.
    public var hostDisagreement: String? = nil
}

/// Keeps the index in step with images: scans when an image is new or changed, and records the result.
public struct ImageIndexer: Sendable {
    public let store: any IndexStoring
    public let options: ScanOptions
    /// Scans kept per image after each new scan (the oldest beyond it are deleted); nil keeps all.
    public var keepScans: Int?
    /// History kept by default: enough to see a trend, small enough that a cron job cannot grow the index
    /// without bound.
    public static let defaultKeepScans = 10

    public init(store: any IndexStoring, options: ScanOptions = ScanOptions(), keepScans: Int? = ImageIndexer.defaultKeepScans) {
        self.store = store
        self.options = options
        self.keepScans = keepScans
    }

    /// What ``lookup(path:rescan:checkHeaders:)`` found and did.
    public struct Lookup: Sendable {
        public var indexed: IndexedScan
        /// Why the image was rescanned first (its index was stale), or nil.
        public var rescannedBecause: String?
        /// Why the index is stale, when it could not be rescanned (a read-only index), or nil.
        public var staleNotRescanned: String?
    }

    /// The canonical path of an image as the index keys it (absolute, symbolic links resolved).
    public static func canonicalPath(_ path: String) throws -> String {
        let absolute = PathResolver.absolute(path, relativeTo: PathResolver.currentDirectory())
        guard let canonical = PathResolver.canonical(absolute) else { throw ImageError.chain(path, "no such file") }
        return canonical
    }

    /// Compares every layer's recorded identity (device, inode, size, mtime, ctime) with a fresh `stat`;
    /// reads nothing from the images.
    public static func freshness(of indexed: IndexedScan) -> Freshness {
        freshness(layers: indexed.layers, scannedBy: indexed.scan.host)
    }

    /// ``freshness(of:)`` from what it reads of a scan: its chain's layers and the host that made it.
    public static func freshness(layers: [ScanLayerRecord], scannedBy host: String?) -> Freshness {
        // Layer 0's identity serves both the disagreement rule and the loop: one `stat` per layer.
        let top = layers.first.flatMap { try? FileIdentity(path: $0.path) }
        if let disagreement = hostDisagreement(layers: layers, scannedBy: host, seen: top) { return .stale(disagreement) }
        for (index, layer) in layers.enumerated() {
            guard let now = index == 0 ? top : try? FileIdentity(path: layer.path) else {
                return .stale("layer \(layer.depth) \(layer.path) is missing")
            }
            if UInt64(bitPattern: layer.device) != now.device || UInt64(bitPattern: layer.inode) != now.inode {
                return .stale("layer \(layer.depth) \(layer.path) was replaced (device/inode changed)")
            }
            if UInt64(layer.fileSize) != now.size { return .stale("layer \(layer.depth) \(layer.path) changed size") }
            if layer.mtimeNs != now.modificationTimeNanoseconds {
                return .stale("layer \(layer.depth) \(layer.path) was modified")
            }
            guard let ctime = layer.ctimeNs else {
                return .stale("layer \(layer.depth) \(layer.path) was scanned before change times were recorded")
            }
            if ctime != now.changeTimeNanoseconds {
                return .stale("layer \(layer.depth) \(layer.path) was changed (its ctime moved, whatever its mtime says)")
            }
            if let dataPath = layer.dataPath {
                guard let recorded = layer.dataIdentity else {
                    return .stale("layer \(layer.depth) \(layer.path): its data file's identity was not recorded")
                }
                guard let current = try? FileIdentity(path: dataPath) else {
                    return .stale("layer \(layer.depth) data file \(dataPath) is missing")
                }
                guard current.matches(recorded) else {
                    return .stale("layer \(layer.depth) data file \(dataPath) was replaced or modified")
                }
            }
        }
        return .fresh
    }

    /// When another host of a pool made the latest scan and this host sees the image's file as it was
    /// *before* that scan (an earlier mtime or ctime than the other host recorded: an NFS attribute cache
    /// behind the other host's), why the two disagree; else nil. Such an image is flagged (stale, with this
    /// reason, in list, info and the API) and not rescanned, which would only have the hosts rescan it back
    /// and forth; `scan --force` still rescans it here. A file changed after the scan has later times on
    /// every host and is rescanned as usual.
    public static func hostDisagreement(of indexed: IndexedScan) -> String? {
        hostDisagreement(layers: indexed.layers, scannedBy: indexed.scan.host)
    }

    /// ``hostDisagreement(of:)`` from a scan's layers and the host that made it.
    public static func hostDisagreement(layers: [ScanLayerRecord], scannedBy host: String?) -> String? {
        hostDisagreement(layers: layers, scannedBy: host, seen: layers.first.flatMap { try? FileIdentity(path: $0.path) })
    }

    /// ``hostDisagreement(layers:scannedBy:)`` with layer 0's identity as this host sees it now (`seen`, nil
    /// when it cannot be read).
    static func hostDisagreement(layers: [ScanLayerRecord], scannedBy host: String?, seen: FileIdentity?) -> String? {
        guard let host, !host.isEmpty, host != HostName.current, let layer = layers.first,
            let recordedChange = layer.ctimeNs, let seen,
            seen.changeTimeNanoseconds < recordedChange || seen.modificationTimeNanoseconds < layer.mtimeNs
        else { return nil }
        return "hosts disagree: \(host) scanned \(layer.path) as changed at \(Self.time(recordedChange)), this host "
            + "(\(HostName.current)) sees it changed at \(Self.time(seen.changeTimeNanoseconds)): one host's view of the "
            + "file is behind (an attribute cache?); not rescanned here (scan --force rescans it)"
    }

    /// Nanoseconds since the epoch as seconds with their fraction, for messages.
    static func time(_ nanoseconds: Int64) -> String {
        let fraction = String(nanoseconds.magnitude % 1_000_000_000)
        return "\(nanoseconds / 1_000_000_000).\(String(repeating: "0", count: 9 - fraction.count) + fraction)"
    }

    /// Why this indexer may not reuse `indexed` as it stands (its chain needed more trust than this
    /// indexer gives, or its trust was never recorded), or nil when it may. Such a scan is made again under
    /// this indexer's trust, which refuses the chain if it still needs more.
    public func trustShortfall(of indexed: IndexedScan) -> String? {
        guard let trust = indexed.scan.trust else { return "it was scanned before the trust it needed was recorded" }
        let outside = options.allowsOutsideBacking || (options.keepsRecordedTrust && indexed.image.allowsOutsideBacking)
        return trust.uncovered(byTrustedRoots: options.trustedRoots, allowsOutside: outside).map { "it cannot be reused here: \($0)" }
    }

    /// Like ``freshness(of:)``, then also compares each layer's header checksum (one small read per layer),
    /// which catches a header rewritten with its mtime restored.
    public static func freshnessWithHeaders(of indexed: IndexedScan) -> Freshness {
        let stat = freshness(of: indexed)
        guard stat.isFresh else { return stat }
        for layer in indexed.layers {
            guard let same = try? ChainScanner.headerMatches(path: layer.path, format: layer.format, recorded: layer.headerChecksum)
            else {
                return .stale("layer \(layer.depth) \(layer.path) no longer reads as \(layer.format.rawValue)")
            }
            if !same { return .stale("layer \(layer.depth) \(layer.path) has a new header") }
        }
        return .fresh
    }

    /// Returns the latest scan of `path`, scanning first when it is not indexed, stale (by `stat` or header
    /// checksum), or `force` is set.
    /// - Parameter progress: counts the tables a scan reads (nothing is counted when the image is unchanged).
    public func ensureIndexed(path: String, force: Bool = false, progress: ScanProgress? = nil) throws -> IndexingOutcome {
        // Waiting for the lock always yields an outcome.
        try ensureIndexed(path: path, force: force, progress: progress, waitsForOtherHosts: true)
            ?? { throw StoreError.notFound("the scan of \(path)") }()
    }

    /// Like ``ensureIndexed(path:force:progress:)``; when `waitsForOtherHosts` is false and another process
    /// sharing the index is scanning the image right now, returns nil at once (come back to it later).
    ///
    /// - Parameter hint: the image's latest scan as read moments ago with others (``LatestScanLookahead``),
    ///   used instead of reading it again when it is of this image's canonical path. It answers only when
    ///   it is fresh; a stale one is read again under the scan lock, like any.
    public func ensureIndexed(
        path: String, force: Bool, progress: ScanProgress?, waitsForOtherHosts: Bool, hint: IndexedScan? = nil
    ) throws -> IndexingOutcome? {
        let canonical = try Self.canonicalPath(path)
        let previous = try hint.flatMap { $0.image.path == canonical ? $0 : nil } ?? store.latestScan(path: canonical)
        if !force, let indexed = previous {
            // A fresh scan has no disagreement (freshness would have said stale); only a stale one is asked.
            let stale = staleness(of: indexed, checkHeaders: true) != nil
            let disagreement = stale ? Self.hostDisagreement(of: indexed) : nil
            if !stale || disagreement != nil {
                return IndexingOutcome(path: canonical, action: .unchanged, indexed: indexed, hostDisagreement: disagreement)
            }
        }
        guard !store.isReadOnly else { throw StoreError.readOnly(store.path ?? "the index") }
        let scan = { () throws -> IndexingOutcome in
            if let reused = try scanMadeMeanwhile(path: canonical, previous: previous) {
                return IndexingOutcome(path: canonical, action: .reused, indexed: reused)
            }
            let indexed = try recordingFailure(of: canonical) { try scanAndRecord(path: canonical, previous: previous, progress: progress) }
            return IndexingOutcome(path: canonical, action: .scanned, indexed: indexed)
        }
        return waitsForOtherHosts ? try store.withScanLock(path: canonical, scan) : try store.withScanLockIfFree(path: canonical, scan)
    }

    /// A scan of `path` that another process sharing the index recorded after `previous` was read (while
    /// this one waited for the scan lock), when it is fresh: scanning again would only repeat it.
    func scanMadeMeanwhile(path: String, previous: IndexedScan?) throws -> IndexedScan? {
        guard let current = try store.latestScan(path: path), current.scan.id != previous?.scan.id,
            staleness(of: current, checkHeaders: true) == nil
        else { return nil }
        return current
    }

    /// The options a scan of `path` uses: the trust recorded with an indexed image is kept, and its format
    /// is pinned to the one it was indexed as (pinned or probed at first contact), so a guest that writes a
    /// qcow2 header into sector 0 of its raw disk cannot change how the disk is read.
    ///
    /// - Throws: when an image indexed as qcow2 or vhd no longer reads as that format, or when a file named
    ///   `*.raw` probes as another format at first contact; both unless the caller pinned the format.
    public func options(for path: String, previous: IndexedScan?) throws -> ScanOptions {
        var options = self.options
        if options.keepsRecordedTrust && previous?.image.allowsOutsideBacking == true { options.allowsOutsideBacking = true }
        guard options.pinnedFormat == nil else { return options }
        let probed = try ChainScanner.probe(path: path)
        if let indexed = previous?.image.format {
            if indexed != .raw && probed.format != indexed {
                throw ImageError.chain(
                    path,
                    "indexed as \(indexed.rawValue), now reads as \(probed.foreign ?? probed.format.rawValue)",
                    remedy: .pinFormat([indexed.rawValue, probed.format.rawValue]))
            }
            options.pinnedFormat = indexed
        } else if path.lowercased().hasSuffix(".raw"), probed.format != .raw || probed.foreign != nil {
            throw ImageError.chain(
                path,
                "named .raw but its content reads as \(probed.foreign ?? probed.format.rawValue); a guest can write any header "
                    + "into its raw disk, so its format must be stated", remedy: .pinFormat(["raw", probed.format.rawValue]))
        }
        return options
    }

    /// Why the index cannot answer for an image without a scan the caller ruled out.
    public enum LookupError: Error, Sendable, CustomStringConvertible {
        case notIndexed(path: String)
        case stale(path: String, reason: String)

        public var description: String {
            switch self {
            case .notIndexed(let path): return "\(path): not in the index"
            case let .stale(path, reason): return "\(path): index is stale (\(reason))"
            }
        }
    }

    /// Why `indexed` may not answer as it stands, or nil when it may: the one decision behind every lookup
    /// (``lookup(path:rescan:checkHeaders:answerStale:)``, ``ensureIndexed(path:force:progress:)``, the
    /// service's lookup by id). A layer changed (`stat`, or with `checkHeaders` also each header's checksum),
    /// the scan needed more trust than this indexer gives, or the caller pinned another format.
    public func staleness(of indexed: IndexedScan, checkHeaders: Bool) -> String? {
        let freshness = checkHeaders ? Self.freshnessWithHeaders(of: indexed) : Self.freshness(of: indexed)
        if case .stale(let why) = freshness { return why }
        if let shortfall = trustShortfall(of: indexed) { return shortfall }
        if !pinAgrees(with: indexed) { return "pinned to \(options.pinnedFormat?.rawValue ?? "")" }
        return nil
    }

    /// True when no format is pinned, or the pin is the format the image was indexed as (a new pin means
    /// a rescan).
    func pinAgrees(with indexed: IndexedScan?) -> Bool {
        options.pinnedFormat == nil || options.pinnedFormat == indexed?.image.format
    }

    /// The latest scan of `path`, rescanning when the index is missing or stale: the freshness policy every
    /// front end shares. Says whether it rescanned, or why a stale scan was returned as it is (an index this
    /// process can only read is never rescanned).
    ///
    /// - Parameters:
    ///   - rescan: scan when needed; false makes a missing or stale index a ``LookupError``.
    ///   - checkHeaders: also compare each layer's header checksum (exports), not only `stat`.
    ///   - answerStale: with `rescan` false, return a stale scan as it is (saying why) instead of throwing.
    public func lookup(path: String, rescan: Bool, checkHeaders: Bool = false, answerStale: Bool = false) throws -> Lookup {
        let canonical = try Self.canonicalPath(path)
        let previous = try store.latestScan(path: canonical)
        var reason: String?
        if let indexed = previous {
            if let why = staleness(of: indexed, checkHeaders: checkHeaders) { reason = why } else { return Lookup(indexed: indexed) }
            if Self.hostDisagreement(of: indexed) != nil { return Lookup(indexed: indexed, staleNotRescanned: reason) }
            if store.isReadOnly || (!rescan && answerStale) { return Lookup(indexed: indexed, staleNotRescanned: reason) }
            if !rescan { throw LookupError.stale(path: canonical, reason: reason ?? "") }
        } else if !rescan || store.isReadOnly {
            throw LookupError.notIndexed(path: canonical)
        }
        return try store.withScanLock(path: canonical) {
            if let reused = try scanMadeMeanwhile(path: canonical, previous: previous) { return Lookup(indexed: reused) }
            let indexed = try recordingFailure(of: canonical) { try scanAndRecord(path: canonical, previous: previous) }
            return Lookup(indexed: indexed, rescannedBecause: reason)
        }
    }

    /// Runs a scan of `path`, remembering its failure in the index (for `list`) before rethrowing it.
    public func recordingFailure<T>(of path: String, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch {
            if !store.isReadOnly {
                try? store.recordFailure(path: path, message: "\(error)", atNanoseconds: Int64(Date().timeIntervalSince1970 * 1e9))
            }
            throw error
        }
    }

    /// Scans the chain and records it in one transaction.
    ///
    /// - Parameter previous: the image's latest scan, if any (its recorded trust is kept).
    public func scanAndRecord(path: String, previous: IndexedScan? = nil, progress: ScanProgress? = nil) throws -> IndexedScan {
        let startedAt = Int64(Date().timeIntervalSince1970 * 1e9)
        var options = try options(for: path, previous: previous)
        options.progress = progress
        let chain = try ChainScanner.scan(path: path, options: options)
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys]
        var layers: [NewLayer] = []
        for layer in chain.layers {
            let metadata = String(decoding: try encoder.encode(layer.metadata), as: UTF8.self)
            layers.append(
                NewLayer(
                    path: layer.path, format: layer.format, virtualSize: layer.metadata.virtualSize,
                    clusterSize: layer.metadata.clusterSize,
                    backingPath: layer.metadata.backing.map { PathResolver.canonical($0.resolvedPath) ?? $0.resolvedPath },
                    metadataJSON: metadata, device: layer.identity.device, inode: layer.identity.inode,
                    fileSize: layer.identity.size, mtimeNanoseconds: layer.identity.modificationTimeNanoseconds,
                    ctimeNanoseconds: layer.identity.changeTimeNanoseconds, headerChecksum: layer.headerChecksum, dataPath: layer.dataPath,
                    dataIdentity: layer.dataIdentity.map {
                        StoredFileIdentity(
                            device: $0.device, inode: $0.inode, size: $0.size, mtimeNanoseconds: $0.modificationTimeNanoseconds,
                            ctimeNanoseconds: $0.changeTimeNanoseconds)
                    }))
        }
        let warnings = chain.layers.enumerated().flatMap { depth, layer in
            layer.metadata.warnings.map { "layer \(depth) \(layer.path): \($0)" }
        }
        var scan = NewScan(
            layers: layers, extents: chain.extents, scannedAtNanoseconds: startedAt,
            durationNanoseconds: chain.durationNanoseconds, toolVersion: "extentdb \(extentdbVersion)",
            warnings: warnings, allowsOutsideBacking: options.allowsOutsideBacking, keepScans: keepScans, trust: chain.trust)
        // The image's own bitmaps: a backing file's track writes to the backing file, not to this image.
        scan.bitmaps = chain.layers.first?.bitmaps ?? []
        return try store.save(scan)
    }
}
