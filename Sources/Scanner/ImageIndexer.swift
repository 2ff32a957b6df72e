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
    public enum Action: String, Sendable { case scanned, unchanged }
    public var path: String
    public var action: Action
    public var indexed: IndexedScan
}

/// Keeps the index in step with images: scans when an image is new or changed, and records the result.
public struct ImageIndexer: Sendable {
    public let store: IndexStore
    public let options: ScanOptions

    public init(store: IndexStore, options: ScanOptions = ScanOptions()) {
        self.store = store
        self.options = options
    }

    /// The canonical path of an image as the index keys it (absolute, symbolic links resolved).
    public static func canonicalPath(_ path: String) throws -> String {
        let absolute = PathResolver.absolute(path, relativeTo: PathResolver.currentDirectory())
        guard let canonical = PathResolver.canonical(absolute) else { throw ImageError.chain(path, "no such file") }
        return canonical
    }

    /// Compares every layer's recorded identity with a fresh `stat`; reads nothing from the images.
    public static func freshness(of indexed: IndexedScan) -> Freshness {
        for layer in indexed.layers {
            guard let now = try? FileIdentity(path: layer.path) else {
                return .stale("layer \(layer.depth) \(layer.path) is missing")
            }
            if UInt64(bitPattern: layer.device) != now.device || UInt64(bitPattern: layer.inode) != now.inode {
                return .stale("layer \(layer.depth) \(layer.path) was replaced (device/inode changed)")
            }
            if UInt64(layer.fileSize) != now.size { return .stale("layer \(layer.depth) \(layer.path) changed size") }
            if layer.mtimeNs != now.modificationTimeNanoseconds {
                return .stale("layer \(layer.depth) \(layer.path) was modified")
            }
        }
        return .fresh
    }

    /// Like ``freshness(of:)``, then also compares each layer's header checksum (one small read per layer),
    /// which catches a header rewritten with its mtime restored.
    public static func freshnessWithHeaders(of indexed: IndexedScan) -> Freshness {
        let stat = freshness(of: indexed)
        guard stat.isFresh else { return stat }
        for layer in indexed.layers {
            let format = ImageFormat(rawValue: layer.format) ?? .raw
            guard let current = try? ChainScanner.headerChecksum(path: layer.path, format: format) else {
                return .stale("layer \(layer.depth) \(layer.path) no longer reads as \(layer.format)")
            }
            if current != layer.headerChecksum { return .stale("layer \(layer.depth) \(layer.path) has a new header") }
        }
        return .fresh
    }

    /// Returns the latest scan of `path`, scanning first when it is not indexed, stale (by `stat` or header
    /// checksum), or `force` is set.
    public func ensureIndexed(path: String, force: Bool = false) throws -> IndexingOutcome {
        let canonical = try Self.canonicalPath(path)
        if !force, let indexed = try store.latestScan(path: canonical), Self.freshnessWithHeaders(of: indexed).isFresh {
            return IndexingOutcome(path: canonical, action: .unchanged, indexed: indexed)
        }
        let indexed = try scanAndRecord(path: canonical)
        return IndexingOutcome(path: canonical, action: .scanned, indexed: indexed)
    }

    /// Scans the chain and records it in one transaction.
    public func scanAndRecord(path: String) throws -> IndexedScan {
        let startedAt = Int64(Date().timeIntervalSince1970 * 1e9)
        let chain = try ChainScanner.scan(path: path, options: options)
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys]
        var layers: [NewLayer] = []
        for layer in chain.layers {
            let metadata = String(decoding: try encoder.encode(layer.metadata), as: UTF8.self)
            layers.append(
                NewLayer(
                    path: layer.path, format: layer.format.rawValue, virtualSize: layer.metadata.virtualSize,
                    clusterSize: layer.metadata.clusterSize,
                    backingPath: layer.metadata.backing.map { PathResolver.canonical($0.resolvedPath) ?? $0.resolvedPath },
                    metadataJSON: metadata, device: layer.identity.device, inode: layer.identity.inode,
                    fileSize: layer.identity.size, mtimeNanoseconds: layer.identity.modificationTimeNanoseconds,
                    headerChecksum: layer.headerChecksum, dataPath: layer.dataPath))
        }
        let warnings = chain.layers.enumerated().flatMap { depth, layer in
            layer.metadata.warnings.map { "layer \(depth) \(layer.path): \($0)" }
        }
        return try store.save(
            NewScan(
                layers: layers, extents: chain.extents, scannedAtNanoseconds: startedAt,
                durationNanoseconds: chain.durationNanoseconds, toolVersion: "extentdb \(extentdbVersion)",
                warnings: warnings))
    }
}
