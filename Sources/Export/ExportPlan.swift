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
    /// Depth in the image's chain of the layer it shares with the base (the base itself when it is an
    /// ancestor): extents supplied at this depth or below are unchanged, unless the base's branch wrote them.
    public var baseDepth: Int?
    /// The base's own top layer: what a qcow2 delta names as its backing file, a VHD delta as its parent.
    public var base: PlanLayer?
    /// Ranges the base's branch supplies above the common ancestor (a sibling or cousin base): sent with the
    /// image's content, so that the base's own changes are reverted. Empty for an ancestor base.
    public var baseBranch = RangeSet([])
    public var range: Range<UInt64>
    /// Guest ranges a digest scan found to hold only zeros inside stored data: read as zeros, never read.
    public var foundZeros = RangeSet([])

    public var scanID: Int64 { indexed.scan.id ?? 0 }

    /// - Parameter usingFoundZeros: treat the zeros a digest scan found as zeros (exports); false reads
    ///   every stored byte (a digest scan, `verify`).
    public init(
        store: any IndexStoring, indexed: IndexedScan, basePath: String?, range: Range<UInt64>? = nil, usingFoundZeros: Bool = true
    ) throws {
        self.store = store
        self.indexed = indexed
        if usingFoundZeros, let id = indexed.scan.id { foundZeros = RangeSet(try store.foundZeroRanges(scanID: id)) }
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
            if let depth = layers.firstIndex(where: { $0.path == basePath }), depth > 0 {
                baseDepth = depth
                base = layers[depth]
            } else {
                try relate(toBase: basePath)
            }
        }
    }

    /// Narrows the plan to the ranges a persistent dirty bitmap marks (qcow2 "Bitmaps"): those carry the
    /// image's content (data, or zeros), everything else is unchanged, whatever layer supplies it.
    public mutating func restrict(toDirty ranges: [Range<UInt64>]) {
        baseDepth = 0
        base = nil
        baseBranch = RangeSet(ranges)
    }

    /// Sets the plan up against a base that is not an ancestor: a sibling, a cousin, or a descendant.
    ///
    /// - Throws: ``ExportError/plan(_:remedy:)`` when the base is not indexed, is the image itself, or shares
    ///   no layer with it.
    private mutating func relate(toBase basePath: String) throws {
        guard basePath != indexed.image.path else {
            throw ExportError.plan("\(basePath) is the image itself; a delta against it would be empty")
        }
        guard let baseScan = try store.latestScan(path: basePath) else {
            throw ExportError.plan("\(basePath) is not in the index", remedy: .scanFirst)
        }
        let store = store
        let relation = BaseRelation.between(image: indexed, base: baseScan) { path in
            (try? store.image(path: path))??.metadata?.vhd?.uniqueID
        }
        guard let relation else {
            let chain = layers.map(\.path).joined(separator: " -> ")
            let baseChain = baseScan.layers.map(\.path).joined(separator: " -> ")
            throw ExportError.plan(
                "\(basePath) and \(indexed.image.path) share no layer, so one cannot be a delta of the other "
                    + "(chains: \(chain); \(baseChain))")
        }
        baseDepth = relation.imageDepth
        baseBranch = RangeSet(try relation.baseBranchRanges(of: baseScan, store: store))
        guard let top = baseScan.layers.first else { throw ExportError.plan("\(basePath): its scan has no layers") }
        let metadata = try store.image(path: top.path)?.metadata
        base = PlanLayer(
            depth: Int(top.depth), path: top.path, format: top.format, dataPath: top.dataPath ?? top.path,
            clusterSize: top.clusterSize.map { UInt64($0) }, compression: metadata?.qcow2?.compressionType == "zstd" ? .zstd : .zlib,
            metadata: metadata, dataIdentity: top.dataPath == nil ? top.identity : top.dataIdentity)
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

    /// Extents come from ``cursor(from:to:)``, cut at the base's branch ranges, so a whole extent lies in or
    /// out of them.
    public func role(of extent: Extent) -> Role {
        if let baseDepth, extent.depth >= UInt32(baseDepth), !baseBranch.contains(extent.start) { return .unchanged }
        if extent.storesData { return .data }
        if baseDepth == nil && !extent.present { return .unchanged }
        return .zero
    }

    /// A pull cursor over the plan's extents.
    public func cursor(from lower: UInt64? = nil, to upper: UInt64? = nil) -> PlanCursor {
        PlanCursor(
            cursor: ExtentCursor(
                store: store, scanID: scanID, scannedAtNanoseconds: indexed.scan.scannedAtNs, from: lower ?? range.lowerBound,
                to: upper ?? range.upperBound),
            cuts: baseBranch, zeros: foundZeros)
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
