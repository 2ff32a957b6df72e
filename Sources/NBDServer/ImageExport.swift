import AllocationIndex
import Export
import NBD
import Scanner

/// One indexed image served over NBD: the index's latest scan of it, the export plan made from that scan,
/// and what clients are told about it. Shared by every connection; each connection reads through its own
/// ``ExportSession``.
public struct ImageExport: Sendable {
    public let indexed: IndexedScan
    public let plan: ExportPlan
    /// What clients are told: name, size, flags, block sizes, metadata contexts.
    public let advertised: NBDExport
    /// The persistent dirty bitmaps offered as `qemu:dirty-bitmap:NAME`, by name.
    public let bitmaps: [String: RangeSet]

    /// - Parameters:
    ///   - store: The index holding `indexed`.
    ///   - indexed: The scan to serve (fresh when the server starts: the caller's freshness policy).
    ///   - name: The export name clients must ask for (`""`, as qemu-nbd, by default).
    ///   - bitmaps: qcow2 persistent dirty bitmaps to offer (the caller leaves out those flagged in use).
    /// - Throws: `ExportError.plan` when the scan cannot be exported (an encrypted image, an unknown format).
    public init(store: any IndexStoring, indexed: IndexedScan, name: String = "", bitmaps: [DirtyBitmap] = []) throws {
        self.indexed = indexed
        plan = try ExportPlan(store: store, indexed: indexed, basePath: nil)
        let offered = bitmaps.sorted { $0.name < $1.name }
        self.bitmaps = Dictionary(offered.map { ($0.name, RangeSet($0.ranges)) }, uniquingKeysWith: { first, _ in first })
        let contexts = MetaContext.standard + offered.map { MetaContext.dirtyBitmap($0.name) }
        advertised = NBDExport(name: name, size: plan.virtualSize, metaContexts: contexts.map(\.name))
    }

    /// Whether the image still is what the index describes (`stat` of every layer and a header checksum),
    /// checked when a client connects.
    public func freshness() -> Freshness {
        ImageIndexer.freshnessWithHeaders(of: indexed)
    }
}
