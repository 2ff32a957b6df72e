import AllocationIndex
import Export
import Foundation
import ImageFormats

/// What differs between an image and a related base, from the index alone: the guest ranges a delta
/// carries (``ExportPlan``'s decision), each with whether it reads as zeros in the image. No image data is
/// read to decide; the list is a superset of the bytes that differ, exact at layer granularity.
public struct ChangeList: Sendable, Equatable {
    /// A piece of the disk: `dirty` when it differs from the base, `zero` when it reads as zeros in the image.
    public struct Range: Sendable, Equatable {
        public var start: UInt64
        public var length: UInt64
        public var dirty: Bool
        public var zero: Bool

        public var end: UInt64 { start + length }
    }

    public var virtualSize: UInt64
    /// Consecutive pieces tiling `[0, virtualSize)`, neighbours with the same flags merged.
    public var pieces: [Range]

    /// The dirty pieces only.
    public var changed: [Range] { pieces.filter(\.dirty) }
    public var changedBytes: UInt64 { changed.reduce(0) { $0 + $1.length } }

    /// The changes a delta of `plan` would carry.
    public init(plan: ExportPlan) throws {
        virtualSize = plan.virtualSize
        var pieces: [Range] = []
        var position: UInt64 = 0
        func append(_ piece: Range) {
            if let last = pieces.last, last.end == piece.start, last.dirty == piece.dirty, last.zero == piece.zero {
                pieces[pieces.count - 1].length += piece.length
            } else {
                pieces.append(piece)
            }
        }
        let cursor = plan.cursor(from: 0, to: plan.virtualSize)
        while let extent = try cursor.next() {
            if extent.start > position { append(Range(start: position, length: extent.start - position, dirty: false, zero: true)) }
            let readsZero = !extent.storesData
            append(Range(start: extent.start, length: extent.length, dirty: plan.role(of: extent) != .unchanged, zero: readsZero))
            position = extent.end
        }
        if position < virtualSize { append(Range(start: position, length: virtualSize - position, dirty: false, zero: true)) }
        self.pieces = pieces
    }
}

extension ChangeList {
    /// The formats backup clients read a change list in.
    public enum Format: String, Sendable, CaseIterable {
        /// `[{"start","length","zero"}]`: the changed ranges.
        case json
        /// oVirt imageio's `GET .../extents?context=dirty`: `[{"start","length","dirty","zero"}]` over the whole disk.
        case imageio
        /// xapi's `VDI.list_changed_blocks`: base64 of a bitmap, one bit per 64 KiB block, the first block in
        /// the high bit of byte 0, ceil(size / 64 KiB / 8) bytes.
        case xapiCBT = "xapi-cbt"
        /// VMware's `QueryChangedDiskAreas` answer (DiskChangeInfo): `{"startOffset","length","changedArea"}`.
        case vmware
    }

    /// xapi's changed-block granularity (`VDI.list_changed_blocks`: 64 KiB blocks).
    public static let xapiBlockSize: UInt64 = 65536

    /// The change list in `format`, as a client of that format reads it.
    public func rendered(_ format: Format) -> String {
        switch format {
        case .json:
            return "[" + changed.map { "{\"start\":\($0.start),\"length\":\($0.length),\"zero\":\($0.zero)}" }.joined(separator: ",") + "]"
        case .imageio:
            return "["
                + pieces.map { "{\"start\":\($0.start),\"length\":\($0.length),\"dirty\":\($0.dirty),\"zero\":\($0.zero)}" }
                .joined(separator: ",") + "]"
        case .xapiCBT:
            return xapiBitmap().base64EncodedString()
        case .vmware:
            let areas = changed.map { "{\"start\":\($0.start),\"length\":\($0.length)}" }.joined(separator: ",")
            return "{\"startOffset\":0,\"length\":\(virtualSize),\"changedArea\":[\(areas)]}"
        }
    }

    /// One bit per 64 KiB block, set when any byte of the block changed; the first block in the high bit of
    /// byte 0 (xapi's `VDI.list_changed_blocks`).
    public func xapiBitmap() -> Data {
        let blocks = (virtualSize + Self.xapiBlockSize - 1) / Self.xapiBlockSize
        var bytes = [UInt8](repeating: 0, count: Int((blocks + 7) / 8))
        for piece in changed {
            var block = piece.start / Self.xapiBlockSize
            let last = (piece.end - 1) / Self.xapiBlockSize
            while block <= last {
                bytes[Int(block / 8)] |= 0x80 >> UInt8(block % 8)
                block += 1
            }
        }
        return Data(bytes)
    }
}

extension ImageCatalog {
    /// What differs between `image` and the related base at `basePath` (indexed), from the index alone.
    ///
    /// - Throws: ``CatalogError`` `invalidExport` when the base shares no layer with the image.
    public func changes(of image: IndexedScan, base basePath: String) throws(CatalogError) -> ChangeList {
        try classified { try ChangeList(plan: ExportPlan(store: store, indexed: image, basePath: basePath)) }
    }
}

extension ImageCatalog {
    /// What a qcow2 persistent dirty bitmap of `image` marks, as the index recorded it at the image's last
    /// scan, with whether each range reads as zeros.
    ///
    /// - Throws: ``CatalogError`` `notFound` for a bitmap the image does not have (naming those it has),
    ///   `invalidImage` for a bitmap flagged `in_use` (its writer died: its content may be stale, and qemu
    ///   refuses it too).
    public func changes(of image: IndexedScan, bitmap name: String) throws(CatalogError) -> ChangeList {
        let ranges = try dirtyRanges(of: image, bitmap: name)
        return try classified {
            var plan = try ExportPlan(store: store, indexed: image, basePath: nil)
            plan.restrict(toDirty: ranges)
            return try ChangeList(plan: plan)
        }
    }

    /// The dirty ranges of a bitmap of `image` (what `export --bitmap` sends), with the same refusals as
    /// ``changes(of:bitmap:)``.
    public func dirtyRanges(of image: IndexedScan, bitmap name: String) throws(CatalogError) -> [Range<UInt64>] {
        try bitmap(of: image, named: name).ranges
    }

    /// A bitmap of `image` as its last scan recorded it, refused when the image has none of that name or it
    /// is flagged `in_use`.
    public func bitmap(of image: IndexedScan, named name: String) throws(CatalogError) -> DirtyBitmap {
        let bitmaps = try classified { try store.bitmaps(scanID: image.scan.id ?? -1) }
        guard let bitmap = bitmaps.first(where: { $0.name == name }) else {
            let known = bitmaps.isEmpty ? "it has none" : "its bitmaps: " + bitmaps.map(\.name).joined(separator: ", ")
            throw CatalogError(.notFound, "\(image.image.path) has no bitmap '\(name)' (\(known))", path: image.image.path)
        }
        guard !bitmap.inUse else {
            throw CatalogError(
                .invalidImage,
                "\(image.image.path): bitmap '\(name)' is in use (flag in_use: its writer did not save it, so it may miss writes); "
                    + "refusing it, as qemu does",
                path: image.image.path)
        }
        return bitmap
    }
}
