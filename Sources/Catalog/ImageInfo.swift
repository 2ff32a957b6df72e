import AllocationIndex
import Foundation
import ImageFormats
import ImageIO
import Report
import Scanner

/// One image in full: its summary (the shared vocabulary, at the top level), what the lookup did, the
/// scan's own details, the chain and the header metadata. `info --output json` and `GET /v1/images/{id}`
/// both print this.
public struct ImageInfo: Encodable, Sendable {
    /// What the lookup behind this answer did.
    public struct Lookup: Codable, Sendable, Equatable {
        /// The image had a good scan in the index before this lookup.
        public var indexed: Bool
        /// It was scanned now (it was not indexed, or was stale).
        public var rescanned = false
        /// Why the index was stale, when it was.
        public var staleReason: String?
        /// The scan a rescan replaced.
        public var replacedScanId: Int64?

        public init(indexed: Bool, rescanned: Bool = false, staleReason: String? = nil, replacedScanId: Int64? = nil) {
            self.indexed = indexed
            self.rescanned = rescanned
            self.staleReason = staleReason
            self.replacedScanId = replacedScanId
        }

        enum CodingKeys: String, CodingKey {
            case indexed, rescanned
            case staleReason = "stale_reason"
            case replacedScanId = "replaced_scan_id"
        }
    }

    /// What the latest scan recorded beyond the summary's figures.
    public struct Scan: Codable, Sendable, Equatable {
        public var durationMs: Double
        public var toolVersion: String
        /// Zero ranges over the whole chain (the summary's `zero_bytes` counts the image's own layer).
        public var chainZeroBytes: UInt64
        public var compressedBytes: UInt64
        public var warnings: [String]

        enum CodingKeys: String, CodingKey {
            case warnings
            case durationMs = "duration_ms"
            case toolVersion = "tool_version"
            case chainZeroBytes = "chain_zero_bytes"
            case compressedBytes = "compressed_bytes"
        }
    }

    /// A layer of the chain, 0 being the image itself.
    public struct Layer: Codable, Sendable, Equatable {
        public var depth: Int64
        public var path: String
        public var format: String
        public var fileSize: Int64
        public var clusterSize: Int64?

        enum CodingKeys: String, CodingKey {
            case depth, path, format
            case fileSize = "file_size"
            case clusterSize = "cluster_size"
        }
    }

    public var summary: ImageSummary
    public var index: Lookup
    public var scan: Scan?
    public var chain: [Layer]?
    public var metadata: ImageMetadata?
    /// The file's length (`st_size`).
    public var fileSize: UInt64?
    /// The kept scans with chunk digests (`scan --digests`), oldest first: what `--since-scan` may name.
    public var digestScans: [DigestScanSummary]?

    enum CodingKeys: String, CodingKey {
        case index, scan, chain, metadata
        case fileSize = "file_size"
        case digestScans = "digest_scans"
    }

    public func encode(to encoder: any Encoder) throws {
        try summary.encode(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(index, forKey: .index)
        try container.encodeIfPresent(scan, forKey: .scan)
        try container.encodeIfPresent(chain, forKey: .chain)
        try container.encodeIfPresent(fileSize, forKey: .fileSize)
        try container.encodeIfPresent(digestScans, forKey: .digestScans)
        if let metadata {
            // The metadata as the index stores it: snake_case keys.
            let encoded = try Self.metadataEncoder.encode(metadata)
            try container.encode(try JSONDecoder().decode(JSONValue.self, from: encoded), forKey: .metadata)
        }
    }

    static let metadataEncoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        return encoder
    }()

    /// The info of an indexed image's latest scan.
    public init(_ indexed: IndexedScan, summary: ImageSummary, index: Lookup) {
        self.summary = summary
        self.index = index
        scan = Scan(
            durationMs: Double(indexed.scan.durationNs) / 1e6, toolVersion: indexed.scan.toolVersion,
            chainZeroBytes: UInt64(indexed.scan.zeroBytes), compressedBytes: UInt64(indexed.scan.compressedBytes),
            warnings: indexed.scan.warnings)
        chain = indexed.layers.map {
            Layer(depth: $0.depth, path: $0.path, format: $0.format.rawValue, fileSize: $0.fileSize, clusterSize: $0.clusterSize)
        }
        metadata = indexed.image.metadata
        fileSize = indexed.layers.first.map { UInt64($0.fileSize) }
    }

    /// An image the index cannot answer for: its own header only, and the state the failure left.
    public init(path: String, summary: ImageSummary, index: Lookup, metadata: ImageMetadata?) {
        self.summary = summary
        self.index = index
        self.metadata = metadata
        fileSize = metadata?.fileSize
    }
}

extension ImageCatalog {
    /// The info of the image at `path`, rescanning first unless `rescan` is false (then the index is shown as
    /// it is). When the chain cannot be scanned, the image's own header is still read and returned, with
    /// the error as its state; the error is also returned, for the front end's exit status.
    ///
    /// - Parameter format: the format the caller pinned, to read the header when there is no scan.
    public func info(path: String, rescan: Bool, format: ImageFormat? = nil) throws(CatalogError) -> (ImageInfo, CatalogError?) {
        let canonical = try canonicalPath(path)
        let previous = try classified { try store.latestScan(path: canonical) }
        var index = ImageInfo.Lookup(indexed: previous != nil)
        do {
            let found = try lookup(path: canonical, rescan: rescan, answerStale: true)
            index.staleReason = found.rescannedBecause ?? found.staleNotRescanned
            if found.indexed.scan.id != previous?.scan.id {
                index.rescanned = true
                index.replacedScanId = previous?.scan.id
            }
            var info = ImageInfo(found.indexed, summary: try summary(of: found.indexed), index: index)
            info.digestScans = try classified { try store.digestScans(path: canonical) }
            return (info, nil)
        } catch {
            // Not indexed (and not to be scanned), or the scan failed: show the header as it reads now.
            let header = try classified {
                try ChainScanner.inspect(path: canonical, format: format ?? previous?.image.format)
                    .metadata
            }
            let failure = try classified { try store.failure(path: canonical) }
            var summary =
                try previous.map { indexed throws(CatalogError) in try self.summary(of: indexed) }
                ?? ImageSummary(path: canonical, state: ImageState.of(path: canonical, indexed: nil, failure: failure))
            if error.code != .notIndexed, summary.error == nil {
                summary.state = "failed"
                summary.error = error.message
            }
            if summary.format == nil { summary.format = header.format.rawValue }
            if summary.virtualSize == nil { summary.virtualSize = header.virtualSize }
            summary.diskUsage = summary.diskUsage ?? (try? FileIdentity(path: canonical))?.allocatedBytes
            return (ImageInfo(path: canonical, summary: summary, index: index, metadata: header), error.code == .notIndexed ? nil : error)
        }
    }
}
