import AllocationIndex
import Foundation
import Scanner

/// One image in `GET /v1/images`.
struct ImageSummary: Codable, Sendable {
    var id: Int64
    var path: String
    var format: String
    var virtualSize: Int64
    /// `fresh`, `stale` (changed since its scan), or `missing` (deleted).
    var state: String
    var scannedAt: Double
    var lastChecked: Double?
    var extentCount: Int64
    var dataBytes: Int64
    var chainLength: Int64

    enum CodingKeys: String, CodingKey {
        case id, path, format, state
        case virtualSize = "virtual_size"
        case scannedAt = "scanned_at"
        case lastChecked = "last_checked"
        case extentCount = "extent_count"
        case dataBytes = "data_bytes"
        case chainLength = "chain_length"
    }
}

/// A layer of an image's chain in `GET /v1/images/{id}`.
struct LayerView: Codable, Sendable {
    var depth: Int64
    var path: String
    var format: String
    var fileSize: Int64
    var clusterSize: Int64?

    enum CodingKeys: String, CodingKey {
        case depth, path, format
        case fileSize = "file_size"
        case clusterSize = "cluster_size"
    }
}

/// `GET /v1/images/{id}`: the summary, the chain, why it is stale, and the header metadata as scanned.
struct ImageDetail: Encodable, Sendable {
    var image: ImageSummary
    var staleReason: String?
    var clusterSize: Int64?
    var chain: [LayerView]
    var metadata: JSONText

    func encode(to encoder: any Encoder) throws {
        try image.encode(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encodeIfPresent(staleReason, forKey: .staleReason)
        try container.encodeIfPresent(clusterSize, forKey: .clusterSize)
        try container.encode(chain, forKey: .chain)
        try container.encode(metadata, forKey: .metadata)
    }

    enum CodingKeys: String, CodingKey {
        case chain, metadata
        case staleReason = "stale_reason"
        case clusterSize = "cluster_size"
    }
}

/// JSON text stored in the index (an image's metadata), re-emitted as a value rather than a string.
struct JSONText: Encodable, Sendable {
    var text: String

    func encode(to encoder: any Encoder) throws {
        let value = (try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))) ?? .object([:])
        try value.encode(to: encoder)
    }
}

/// Any JSON value, decoded and encoded as it is.
indirect enum JSONValue: Codable, Sendable, Equatable {
    case null
    case bool(Bool)
    case integer(Int64)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .integer(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .integer(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }
}

extension IndexService {
    /// The summary of an indexed image, its state from a `stat` of each layer.
    func summary(of indexed: IndexedScan) -> (ImageSummary, staleReason: String?) {
        let freshness = ImageIndexer.freshness(of: indexed)
        let path = indexed.image.path
        var state = "fresh"
        var reason: String?
        if isMarkedMissing(path) || !FileManager.default.fileExists(atPath: path) {
            state = "missing"
            reason = "\(path) is missing"
        } else if case .stale(let why) = freshness {
            state = "stale"
            reason = why
        }
        let summary = ImageSummary(
            id: indexed.image.id ?? 0, path: path, format: indexed.image.format, virtualSize: indexed.scan.virtualSize, state: state,
            scannedAt: Double(indexed.scan.scannedAtNs) / 1e9, lastChecked: lastChecked(path), extentCount: indexed.scan.extentCount,
            dataBytes: indexed.scan.dataBytes, chainLength: indexed.scan.chainDepth)
        return (summary, reason)
    }

    func detail(of indexed: IndexedScan) -> ImageDetail {
        let (summary, reason) = summary(of: indexed)
        return ImageDetail(
            image: summary, staleReason: reason, clusterSize: indexed.image.clusterSize,
            chain: indexed.layers.map {
                LayerView(depth: $0.depth, path: $0.path, format: $0.format, fileSize: $0.fileSize, clusterSize: $0.clusterSize)
            },
            metadata: JSONText(text: indexed.image.metadataJson))
    }
}
