import AllocationIndex
import CExtentShims
import Foundation
import ImageFormats
import ImageIO
import Scanner

/// Reads guest data of data extents from the chain's files: plain host ranges with `pread`, compressed
/// qcow2 clusters by reading their stored bytes and inflating them (zlib or zstd).
///
/// Only the host ranges the index names are read; every read can be logged (`readLog`) so tests can
/// prove that no metadata (headers, L1/L2 tables, BAT, bitmaps) is touched.
public final class GuestReader {
    public let plan: ExportPlan
    var sources: [Int: FileBlockSource] = [:]
    private var clusterCache: (depth: Int, hostOffset: UInt64, bytes: [UInt8])?
    /// Every read made, as (path, offset, length), when logging is on.
    public private(set) var readLog: [(path: String, offset: UInt64, length: Int)] = []
    public var logsReads = false
    /// Refuse a file whose identity (device, inode, size, mtime, ctime) is no longer the one the plan was
    /// made from. Only `verify` turns it off: it reads the files as they are, to compare their content.
    public var checksIdentity = true

    public init(plan: ExportPlan) {
        self.plan = plan
    }

    deinit {
        for source in sources.values { source.close() }
    }

    func noteRead(path: String, offset: UInt64, length: Int) {
        if logsReads { readLog.append((path, offset, length)) }
    }

    func source(depth: Int) throws -> FileBlockSource {
        if let source = sources[depth] { return source }
        guard depth < plan.layers.count else { throw ExportError.plan("extent names layer \(depth), which the chain does not have") }
        let path = plan.layers[depth].dataPath
        let source: FileBlockSource
        do {
            source = try FileBlockSource(path: path)
        } catch {
            throw ExportError.data(path: path, offset: 0, reason: "cannot open: \(error)")
        }
        // The descriptor must be the file the plan was made from: a file replaced (or rewritten) since the
        // scan would mix its bytes into the export.
        let now = source.identity
        guard !checksIdentity || plan.layers[depth].dataIdentity.map(now.matches) == true else {
            source.close()
            throw ExportError.data(
                path: path, offset: 0,
                reason: "the file changed since it was scanned (device, inode, size or mtime); rescan and export again")
        }
        sources[depth] = source
        return source
    }

    /// Copies the guest bytes `[guestStart, guestStart + target.count)` of a data extent into `target`.
    public func read(_ extent: Extent, guestStart: UInt64, into target: UnsafeMutableRawBufferPointer) throws {
        precondition(guestStart >= extent.start && guestStart + UInt64(target.count) <= extent.end)
        let depth = Int(extent.depth)
        if let descriptor = extent.compressedCluster {
            try readCompressed(extent, descriptor: descriptor, depth: depth, guestStart: guestStart, into: target)
            return
        }
        guard let offset = extent.offset else {
            throw ExportError.data(
                path: plan.layers[depth].path, offset: 0, reason: "data extent at guest offset \(extent.start) has no host offset")
        }
        let host = offset + (guestStart - extent.start)
        let source = try source(depth: depth)
        if logsReads { readLog.append((source.path, host, target.count)) }
        let got: Int
        do {
            got = try source.read(at: host, into: target)
        } catch {
            throw ExportError.data(path: source.path, offset: host, reason: "\(error)")
        }
        guard got == target.count else {
            throw ExportError.data(
                path: source.path, offset: host, reason: "file ends after \(got) of \(target.count) bytes (truncated image?)")
        }
    }

    private func readCompressed(
        _ extent: Extent, descriptor: Extent.CompressedCluster, depth: Int, guestStart: UInt64, into target: UnsafeMutableRawBufferPointer
    ) throws {
        let layer = plan.layers[depth]
        guard let clusterSize = layer.clusterSize, clusterSize > 0 else {
            throw ExportError.plan("compressed extent in \(layer.path), whose cluster size the index does not know")
        }
        let clusterStart = extent.start / clusterSize * clusterSize
        if clusterCache?.depth != depth || clusterCache?.hostOffset != descriptor.hostOffset {
            let source = try source(depth: depth)
            if logsReads { readLog.append((source.path, descriptor.hostOffset, Int(descriptor.byteCount))) }
            let stored = try source.read(at: descriptor.hostOffset, count: Int(descriptor.byteCount))
            var cluster = [UInt8](repeating: 0, count: Int(clusterSize))
            let status = stored.withUnsafeBytes { input in
                cluster.withUnsafeMutableBytes { output in
                    switch layer.compression {
                    case .zlib: extentdb_inflate_raw(input.baseAddress, input.count, output.baseAddress, output.count)
                    case .zstd: extentdb_zstd_decompress(input.baseAddress, input.count, output.baseAddress, output.count)
                    }
                }
            }
            guard status == 0 else {
                throw ExportError.data(
                    path: source.path, offset: descriptor.hostOffset,
                    reason: "compressed cluster (\(layer.compression)) does not decompress to \(clusterSize) bytes")
            }
            clusterCache = (depth, descriptor.hostOffset, cluster)
        }
        guard let cached = clusterCache else { return }
        let from = Int(guestStart - clusterStart)
        cached.bytes.withUnsafeBytes { raw in
            target.copyMemory(from: UnsafeRawBufferPointer(rebasing: raw[from..<(from + target.count)]))
        }
    }
}

/// Produces the guest view (what a reader of the image sees) of increasing ranges of the disk.
public final class GuestStream {
    public let plan: ExportPlan
    public let reader: GuestReader
    private let cursor: PlanCursor
    private var current: Extent?

    public init(plan: ExportPlan, reader: GuestReader, from lower: UInt64? = nil) {
        self.plan = plan
        self.reader = reader
        cursor = plan.cursor(from: lower ?? plan.range.lowerBound, to: plan.range.upperBound)
    }

    /// The file and host offset holding `[start, start + count)` when one plain (uncompressed, not zero)
    /// data extent covers all of it, so the bytes can be sent by the kernel; nil otherwise. Like `fill`,
    /// ranges must not go backwards. The read is logged as if it were made.
    public func plainSource(from start: UInt64, count: UInt64) throws -> (descriptor: Int32, offset: UInt64)? {
        try advance(to: start)
        guard let extent = current, extent.start <= start, start + count <= extent.end, extent.storesData,
            extent.compressedCluster == nil, let offset = extent.offset
        else { return nil }
        let source = try reader.source(depth: Int(extent.depth))
        let host = offset + (start - extent.start)
        guard host + count <= source.size else { return nil }
        reader.noteRead(path: source.path, offset: host, length: Int(count))
        return (source.descriptor.rawValue, host)
    }

    /// Moves `current` to the first extent that ends after `position` (nil past the map).
    private func advance(to position: UInt64) throws {
        while current.map({ $0.end <= position }) ?? true {
            current = try cursor.next()
            if current == nil { return }
        }
    }

    /// Fills `buffer` with the guest bytes of `[start, start + buffer.count)`; ranges must not go backwards.
    public func fill(from start: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws {
        var position = start
        let end = start + UInt64(buffer.count)
        while position < end {
            try advance(to: position)
            guard let extent = current, extent.start <= position else {
                // Past the indexed map (or a gap): zeros.
                let stop = current.map { min($0.start, end) } ?? end
                UnsafeMutableRawBufferPointer(rebasing: buffer[Int(position - start)..<Int(stop - start)]).initializeMemory(
                    as: UInt8.self, repeating: 0)
                position = stop
                continue
            }
            let stop = min(extent.end, end)
            let slice = UnsafeMutableRawBufferPointer(rebasing: buffer[Int(position - start)..<Int(stop - start)])
            if extent.storesData {
                try reader.read(extent, guestStart: position, into: slice)
            } else {
                slice.initializeMemory(as: UInt8.self, repeating: 0)
            }
            position = stop
        }
    }
}

/// Walks extents and reports, per fixed-size unit (cluster, block, chunk), which roles occur in it.
public struct UnitRoles: OptionSet, Sendable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let data = UnitRoles(rawValue: 1)
    public static let zero = UnitRoles(rawValue: 2)
    public static let unchanged = UnitRoles(rawValue: 4)

    init(_ role: ExportPlan.Role) {
        switch role {
        case .data: self = .data
        case .zero: self = .zero
        case .unchanged: self = .unchanged
        }
    }
}

extension ExportPlan {
    /// Calls `body(firstUnit, unitCount, roles)` for runs of units of `unitSize` bytes covering the plan's
    /// range, in order, where every unit in a run has the same set of roles. Streams the index.
    public func forEachUnitRun(unitSize: UInt64, _ body: (UInt64, UInt64, UnitRoles) throws -> Void) throws {
        let cursor = self.cursor()
        var unit = range.lowerBound / unitSize
        var pending: UnitRoles = []
        var pendingHasBytes = false
        while let extent = try cursor.next() {
            let roles = UnitRoles(role(of: extent))
            var position = extent.start
            while position < extent.end {
                let unitEnd = (unit + 1) * unitSize
                if position > unit * unitSize || extent.end < unitEnd {
                    // Partial unit: accumulate.
                    pending.formUnion(roles)
                    pendingHasBytes = true
                    let stop = min(extent.end, unitEnd)
                    position = stop
                    if stop == unitEnd {
                        try body(unit, 1, pending)
                        pending = []
                        pendingHasBytes = false
                        unit += 1
                    }
                } else {
                    // Whole units inside this extent.
                    let count = (extent.end - position) / unitSize
                    try body(unit, count, roles)
                    unit += count
                    position = unit * unitSize
                }
            }
        }
        if pendingHasBytes { try body(unit, 1, pending) }
    }
}
