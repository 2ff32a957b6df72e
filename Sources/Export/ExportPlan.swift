import AllocationIndex
import Foundation
import ImageFormats
import ImageIO
import Scanner

/// One layer of the chain an export reads from, as the index recorded it.
public struct PlanLayer: Sendable {
    public var depth: Int
    public var path: String
    public var format: ImageFormat
    /// The file the layer's data lives in (its external data file, or the image itself).
    public var dataPath: String
    public var clusterSize: UInt64?
    public var compression: QCOW2Header.CompressionType
    public var metadata: ImageMetadata?
    /// The identity the data file had when it was scanned; reads go only to a descriptor that still has it.
    public var dataIdentity: StoredFileIdentity?
}

/// What an export sends, decided from the index alone: the latest scan of the image, its chain, and
/// (for `--base`) the depth of the base layer. No metadata table of any image is read.
public struct ExportPlan: Sendable {
    public var store: any IndexStoring
    public var indexed: IndexedScan
    public var layers: [PlanLayer]
    public var virtualSize: UInt64
    /// Depth of the base layer: extents supplied at this depth or below are unchanged and not sent.
    public var baseDepth: Int?
    public var range: Range<UInt64>

    public var scanID: Int64 { indexed.scan.id ?? 0 }
    public var base: PlanLayer? { baseDepth.map { layers[$0] } }

    public init(store: any IndexStoring, indexed: IndexedScan, basePath: String?, range: Range<UInt64>? = nil) throws {
        self.store = store
        self.indexed = indexed
        virtualSize = UInt64(indexed.scan.virtualSize)
        self.range = range ?? 0..<virtualSize
        var layers: [PlanLayer] = []
        for layer in indexed.layers {
            let format = layer.format
            let metadata = try store.image(path: layer.path)?.metadata
            if metadata?.qcow2?.encrypted == true {
                throw ExportError.plan("\(layer.path) is encrypted; extentdb does not export encrypted images")
            }
            layers.append(
                PlanLayer(
                    depth: Int(layer.depth), path: layer.path, format: format, dataPath: layer.dataPath ?? layer.path,
                    clusterSize: layer.clusterSize.map { UInt64($0) },
                    compression: metadata?.qcow2?.compressionType == "zstd" ? .zstd : .zlib, metadata: metadata,
                    dataIdentity: layer.dataPath == nil ? layer.identity : layer.dataIdentity))
        }
        self.layers = layers
        if let basePath {
            guard let depth = layers.firstIndex(where: { $0.path == basePath }), depth > 0 else {
                let chain = layers.map(\.path).joined(separator: " -> ")
                throw ExportError.plan("\(basePath) is not a backing file or parent of \(indexed.image.path) (chain: \(chain))")
            }
            baseDepth = depth
        }
    }

    /// How the export treats an extent.
    public enum Role: Sendable, Equatable {
        /// Stored data: read it.
        case data
        /// Reads as zeros (zero clusters, holes, unallocated ranges, data over host holes).
        case zero
        /// Supplied by the base or below: not part of an incremental export.
        case unchanged
    }

    public func role(of extent: Extent) -> Role {
        if let baseDepth, extent.depth >= UInt32(baseDepth) { return .unchanged }
        if extent.data && !extent.zero { return .data }
        if baseDepth == nil && !extent.present { return .unchanged }
        return .zero
    }

    /// A pull cursor over the plan's extents.
    public func cursor(from lower: UInt64? = nil, to upper: UInt64? = nil) -> ExtentCursor {
        ExtentCursor(
            store: store, scanID: scanID, scannedAtNanoseconds: indexed.scan.scannedAtNs, from: lower ?? range.lowerBound,
            to: upper ?? range.upperBound)
    }
}

/// Why an export could not be made or finished.
public enum ExportError: Error, Sendable, CustomStringConvertible {
    case plan(String, remedy: Remedy? = nil)
    case data(path: String, offset: UInt64, reason: String)
    case output(String, remedy: Remedy? = nil)

    public var description: String {
        switch self {
        case .plan(let message, _): return message
        case let .data(path, offset, reason): return "\(path): data at offset \(offset): \(reason)"
        case .output(let message, _): return message
        }
    }

    /// What a person can do about it, rendered by each front end in its own words.
    public var remedy: Remedy? {
        switch self {
        case .plan(_, let remedy), .output(_, let remedy): return remedy
        case .data: return nil
        }
    }
}
