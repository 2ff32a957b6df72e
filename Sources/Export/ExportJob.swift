import AllocationIndex
import Foundation
import ImageFormats
import ImageIO

/// The output formats an export writes.
public enum ExportFormat: String, Sendable, CaseIterable {
    case raw, qcow2, vhd, xva
}

/// What an export is asked for, apart from the image and where the bytes go.
public struct ExportRequest: Sendable {
    public var format: ExportFormat
    /// The canonical path of an ancestor: only what the layers above it supply is exported.
    public var basePath: String?
    /// The guest range (raw only); nil is the whole disk.
    public var range: Range<UInt64>?
    /// qcow2 cluster size; nil chooses 65536, or the smallest size whose L1 table fits qemu's limit.
    public var clusterSize: UInt64?
    /// XVA chunk name prefix.
    public var xvaPrefix = "Ref:0"
    /// XVA: end the tar archive with its two zero blocks.
    public var closesArchive = true
    /// Look for 4 KiB blocks of zeros in the data, as `qemu-img convert -S 4k`: raw into a file leaves them as
    /// holes while copying; qcow2, VHD and XVA read the data once first (their tables come before the data)
    /// and send wholly zero clusters or blocks as zeros. The service turns it off: a stream must start at once.
    public var detectsZeros = true
    /// How a qcow2 or VHD delta names its base, recorded as-is; nil derives it from ``outputDirectory``.
    public var backingName: String?
    /// The directory the output will live in (relative backing names are worked out from it).
    public var outputDirectory: String
    /// The dirty ranges of a qcow2 persistent bitmap (`export --bitmap NAME`): only those are sent, over the
    /// previous backup (a qcow2 naming ``backingName`` as its backing file, or a raw file of the ranges).
    public var dirtyRanges: [Range<UInt64>]?

    public init(
        format: ExportFormat, basePath: String? = nil, range: Range<UInt64>? = nil, clusterSize: UInt64? = nil, backingName: String? = nil,
        outputDirectory: String = PathResolver.currentDirectory()
    ) {
        self.format = format
        self.basePath = basePath
        self.range = range
        self.clusterSize = clusterSize
        self.backingName = backingName
        self.outputDirectory = outputDirectory
    }
}

/// One export planned from the index and written to an ``ExportOutput``: the orchestration the CLI's
/// `export` and the HTTP service share.
///
/// The plan is made when the job is created (so a bad `base` fails before a byte is sent); ``run(to:)``
/// then streams the chosen format front to back in bounded memory.
public struct ExportJob: Sendable {
    public let request: ExportRequest
    public let plan: ExportPlan
    /// Says something the user should know (e.g. a cluster size chosen for them); not an error.
    public var notice: @Sendable (String) -> Void = { _ in }

    /// - Throws: ``ExportError/plan(_:)`` when the base is not in the image's chain (or, for vhd, not a VHD),
    ///   or the range is asked of a format other than raw.
    public init(store: any IndexStoring, indexed: IndexedScan, request: ExportRequest) throws {
        if request.format != .raw && request.range != nil {
            throw ExportError.plan("a guest range applies to raw exports only")
        }
        self.request = request
        var plan = try ExportPlan(store: store, indexed: indexed, basePath: request.basePath, range: request.range)
        if let dirty = request.dirtyRanges {
            guard request.basePath == nil else { throw ExportError.plan("a base and a bitmap cannot be combined") }
            guard request.format != .vhd else {
                throw ExportError.plan("a VHD delta needs its parent's unique id, which a bitmap does not give (export it as qcow2 or raw)")
            }
            if request.format == .qcow2, request.backingName == nil {
                throw ExportError.plan("a qcow2 of a bitmap's ranges needs the previous backup it goes over (its backing file name)")
            }
            plan.restrict(toDirty: dirty)
        }
        self.plan = plan
        // Refused here, before a byte is sent (over HTTP the status is gone once the body starts).
        if request.format == .vhd { _ = try vhdParent() }
    }

    /// The bytes a stream of this export will carry, when it is known before writing (raw without a base).
    public var streamLength: UInt64? {
        guard request.format == .raw, plan.baseDepth == nil else { return nil }
        return plan.range.upperBound - plan.range.lowerBound
    }

    /// Writes the export.
    ///
    /// - Returns: for raw with a base, the changed extents (the data went to `output`); otherwise empty.
    /// - Throws: ``ExportError`` (including a closed output) or a read error from an image.
    @discardableResult
    public func run(to output: ExportOutput) throws -> [Extent] {
        var plan = self.plan
        if request.detectsZeros, request.format != .raw {
            plan = try ZeroProbe.probed(plan, reader: GuestReader(plan: plan))
        }
        let reader = GuestReader(plan: plan)
        // Every file read is checked again when the export ends: a file rewritten in place while it was
        // read (same inode, new size or mtime) fails the export instead of leaving a mix of old and new data.
        switch request.format {
        case .raw:
            var exporter = RawExporter(plan: plan, reader: reader)
            exporter.detectsZeros = request.detectsZeros
            let changed = try exporter.export(to: output)
            try reader.verifyUnchanged()
            return changed
        case .qcow2:
            // Over a base: named relative to the output. Over the previous backup of a bitmap: as given (a qcow2).
            let backing =
                plan.base.map { base in
                    (name: backingName(for: base.path), format: base.format == .vhd ? "vpc" : base.format.rawValue)
                } ?? (request.dirtyRanges == nil ? nil : request.backingName.map { (name: $0, format: "qcow2") })
            var chosen = request.clusterSize ?? 65536
            if request.clusterSize == nil, let fitting = QCOW2StreamWriter.smallestClusterSize(virtualSize: plan.virtualSize),
                fitting != chosen
            {
                chosen = fitting
                notice("using \(fitting)-byte clusters: with 65536 the L1 table would exceed qemu's 32 MiB limit")
            }
            try QCOW2StreamWriter(plan: plan, reader: reader, clusterSize: chosen, backing: backing).export(to: output)
        case .vhd:
            try VHDStreamWriter(plan: plan, reader: reader, parent: try vhdParent()).export(to: output)
        case .xva:
            try XVAWriter(plan: plan, reader: reader, prefix: request.xvaPrefix, closeArchive: request.closesArchive).export(to: output)
        }
        try reader.verifyUnchanged()
        return []
    }

    /// How a delta names its base: the request's name as given, else the base's path relative to the
    /// output's directory, so that base and delta can move together.
    public func backingName(for basePath: String) -> String {
        if let name = request.backingName { return name }
        // The base path is canonical; so must the directory be, or a symbolic link would count as a level.
        let directory = request.outputDirectory
        return PathResolver.relative(basePath, from: PathResolver.canonical(directory) ?? directory)
    }

    /// The parent fields of a differencing VHD, from the base layer.
    ///
    /// - Throws: ``ExportError/plan(_:)`` when the base is not a VHD.
    func vhdParent() throws -> VHDStreamWriter.Parent? {
        guard let base = plan.base else { return nil }
        guard base.format == .vhd, let vhd = base.metadata?.vhd else {
            throw ExportError.plan(
                "a differencing VHD needs a VHD parent; \(base.path) is \(base.format.rawValue) (export as qcow2 instead)")
        }
        let identity = try FileIdentity(path: base.path)
        let name = String(base.path.split(separator: "/").last ?? "")
        return VHDStreamWriter.Parent(
            uniqueID: Self.uuidBytes(vhd.uniqueID),
            timestamp: VHDStreamWriter.vhdTimestamp(Date(timeIntervalSince1970: Double(identity.modificationTimeNanoseconds) / 1e9)),
            name: name, relativePath: backingName(for: base.path), absolutePath: base.path)
    }

    /// The 16 bytes of a UUID written as text (dashes ignored; bad digits read as zero).
    public static func uuidBytes(_ text: String) -> [UInt8] {
        let hex = Array(text.replacingOccurrences(of: "-", with: "").utf8)
        return stride(from: 0, to: min(hex.count, 32), by: 2).map {
            UInt8(String(decoding: hex[$0..<$0 + 2], as: UTF8.self), radix: 16) ?? 0
        }
    }

    /// The changed extents of an incremental raw export, in qemu-img map's list shape.
    public static func changedExtentsJSON(_ changed: [Extent]) -> String {
        var text = "["
        for (index, extent) in changed.enumerated() {
            text +=
                (index == 0 ? "" : ",\n") + "{ \"start\": \(extent.start), \"length\": \(extent.length), \"depth\": \(extent.depth), "
                + "\"zero\": \(!extent.storesData), \"data\": \(extent.storesData)}"
        }
        return text + "]\n"
    }
}
