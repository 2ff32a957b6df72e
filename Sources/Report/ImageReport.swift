import AllocationIndex
import Foundation
import ImageFormats
import ImageIO
import Scanner

/// Sparse-usage figures of one indexed image, all from the index (plus a `stat` for size on disk and
/// freshness). Byte counts follow the composed map of the latest scan.
public struct ImageReport: Codable, Sendable, Equatable {
    /// The image's id in the index (the HTTP API's `/v1/images/{id}`).
    public var id: Int64
    public var path: String
    public var directory: String
    public var format: String
    public var virtualSize: UInt64
    /// Bytes the file occupies on disk (`st_blocks * 512`): `disk_usage` (what `du` shows).
    public var diskUsage: UInt64
    /// The file's length (`st_size`): `file_size`, as `info` and `ls -l` show it.
    public var fileSize: UInt64
    /// Data supplied by the image's own layer (depth 0).
    public var allocatedBytes: UInt64
    /// Zero clusters/extents of the image's own layer: ranges a format records as reading zero. The holes
    /// of a file that stores every block in place (a raw file, a fixed VHD's data area) are not "zero"
    /// here but unallocated: nothing is stored for them, as for a qcow2 cluster never written
    /// (see ``storesBlocksInPlace(_:)``).
    public var zeroBytes: UInt64
    /// The rest of the disk: neither the image's data nor its zero ranges.
    public var unallocatedBytes: UInt64
    /// fresh, stale, missing (the file is gone) or failed (its last scan failed): ``ImageState``.
    public var state: String
    /// The failed scan's error, when `state` is failed.
    public var error: String?
    /// The chain below the image, nearest first (backing files or VHD parents).
    public var chain: [String]
    /// Internal snapshots (qcow2), by name.
    public var snapshots: [String]
    /// The formats of the chain's layers, by depth (0 = the image).
    public var layerFormats: [String]
    public var compressedBytes: UInt64
    /// Data over the whole chain (what a full export sends).
    public var chainAllocatedBytes: UInt64
    /// Stored extents of the composed map.
    public var extentCount: UInt64
    public var dataExtentCount: UInt64
    public var meanExtent: UInt64
    public var medianExtent: UInt64
    public var largestExtent: UInt64
    /// Own data over virtual size, 0 to 1 (`used_fraction`: the part of the disk the image itself stores).
    public var usedFraction: Double
    /// Layers in the chain, the image included (1 for a lone image). `depth` elsewhere is a position in the
    /// chain, 0 being the image itself, as in `map`.
    public var chainLength: UInt64
    public var parent: String?
    public var scanId: Int64
    public var scannedAt: String
    /// The host that made the scan (``ScanRecord/host``: a pool catalog's hosts); nil for scans recorded
    /// before hosts were (schema version 8).
    public var scannedBy: String?
    public var stale: Bool
    public var staleReason: String?
    /// Bytes a full export sends (data over the whole chain).
    public var exportBytes: UInt64
    /// Bytes `export --base PARENT` sends (the image's own data and zero ranges); nil without a parent.
    public var deltaBytes: UInt64?
    /// Data extents by size: `histogram[k]` counts extents of 2^k to 2^(k+1) - 1 bytes.
    public var histogram: [UInt64]
    /// Earlier scans, oldest first (with `--history`).
    public var history: [HistoryPoint]?

    public struct HistoryPoint: Codable, Sendable, Equatable {
        public var scanId: Int64
        public var scannedAt: String
        public var allocatedBytes: UInt64
        public var chainAllocatedBytes: UInt64
    }

    /// The figures of one image's latest scan; `failure` is the index's record of its last failed scan.
    public init(_ entry: ImageWithScan, history: [ScanRecord]?, failure: ScanFailure? = nil, knownMissing: Bool = false) {
        let scan = entry.scan
        id = entry.image.id ?? 0
        path = entry.image.path
        directory = PathResolver.directory(of: entry.image.path)
        format = entry.image.format.rawValue
        virtualSize = UInt64(scan.virtualSize)
        let identity = try? FileIdentity(path: entry.image.path)
        diskUsage = identity?.allocatedBytes ?? 0
        fileSize = identity?.size ?? 0
        allocatedBytes = UInt64(scan.ownDataBytes)
        zeroBytes = entry.layers.first.map(Self.storesBlocksInPlace) == true ? 0 : UInt64(scan.ownZeroBytes)
        unallocatedBytes = UInt64(scan.virtualSize) - min(UInt64(scan.virtualSize), UInt64(scan.ownDataBytes) + zeroBytes)
        chain = entry.layers.dropFirst().map(\.path)
        layerFormats = entry.layers.map(\.format.rawValue)
        snapshots = entry.image.snapshotNames
        compressedBytes = UInt64(scan.compressedBytes)
        chainAllocatedBytes = UInt64(scan.dataBytes)
        extentCount = UInt64(scan.extentCount)
        dataExtentCount = UInt64(scan.dataExtentCount)
        meanExtent = scan.dataExtentCount > 0 ? UInt64(scan.dataBytes / scan.dataExtentCount) : 0
        medianExtent = UInt64(scan.dataExtentMedian)
        largestExtent = UInt64(scan.dataExtentLargest)
        usedFraction = virtualSize > 0 ? Double(allocatedBytes) / Double(virtualSize) : 0
        chainLength = UInt64(scan.chainDepth)
        parent = entry.image.backingPath
        scanId = scan.id ?? 0
        scannedAt = Self.timestamp(scan.scannedAtNs)
        scannedBy = scan.host
        let imageState = ImageState.of(
            path: entry.image.path, indexed: IndexedScan(image: entry.image, scan: scan, layers: entry.layers), failure: failure,
            knownMissing: knownMissing)
        staleReason = imageState.staleReason
        stale = staleReason != nil
        state = imageState.word
        error = imageState.error
        exportBytes = chainAllocatedBytes
        deltaBytes = parent == nil ? nil : allocatedBytes + zeroBytes
        histogram = scan.histogram
        self.history = history.map { scans in
            scans.map {
                HistoryPoint(
                    scanId: $0.id ?? 0, scannedAt: Self.timestamp($0.scannedAtNs), allocatedBytes: UInt64($0.ownDataBytes),
                    chainAllocatedBytes: UInt64($0.dataBytes))
            }
        }
    }

    /// True for a layer that stores every guest block at the same offset of its file: a raw file, and a
    /// fixed VHD (its data area is a raw disk followed by the footer; it has no block size). Such a layer
    /// records no zero ranges of its own: its holes are holes of the host file, which `map` shows as
    /// zero (as `qemu-img map` does) and reports count as unallocated, the same for both formats.
    public static func storesBlocksInPlace(_ layer: ScanLayerRecord) -> Bool {
        layer.format == .raw || (layer.format == .vhd && layer.clusterSize == nil)
    }

    /// The second since the epoch that ``timestamp(_:)`` shows for `nanoseconds`: as the formatter it replaced
    /// counted, to the nearest millisecond, then down to the second. Equal seconds give equal texts.
    public static func timestampSecond(_ nanoseconds: Int64) -> Int64 {
        func floorDivide(_ value: Int64, _ divisor: Int64) -> Int64 { value >= 0 ? value / divisor : (value - divisor + 1) / divisor }
        let (shifted, overflow) = nanoseconds.addingReportingOverflow(500_000)
        return floorDivide(floorDivide(overflow ? Int64.max : shifted, 1_000_000), 1000)
    }

    /// A time in the index (ns since the epoch) as every output shows it: UTC, ISO 8601, to the second.
    ///
    /// Formatted with `gmtime_r`, not a new `ISO8601DateFormatter` each time (making one took a third of a
    /// 1,000-image list); the text is the same (`2026-12-06T21:08:02Z`).
    public static func timestamp(_ nanoseconds: Int64) -> String {
        var seconds = time_t(timestampSecond(nanoseconds))
        var parts = tm()
        guard gmtime_r(&seconds, &parts) != nil else {
            return ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double(nanoseconds) / 1e9))
        }
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        let year = Int(parts.tm_year) + 1900
        let yearText = year >= 1000 ? "\(year)" : String(repeating: "0", count: max(0, 4 - "\(year)".count)) + "\(year)"
        return "\(yearText)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))Z"
    }
}

/// Sums over a set of images.
public struct ReportTotals: Codable, Sendable, Equatable {
    public var directory: String?
    /// The host whose scans these are (per-host totals of a pool catalog); nil for other totals.
    public var host: String?
    public var imageCount: UInt64 = 0
    public var staleCount: UInt64 = 0
    public var virtualSize: UInt64 = 0
    public var diskUsage: UInt64 = 0
    public var allocatedBytes: UInt64 = 0
    public var zeroBytes: UInt64 = 0
    public var compressedBytes: UInt64 = 0
    public var chainAllocatedBytes: UInt64 = 0
    public var extentCount: UInt64 = 0
    public var exportBytes: UInt64 = 0
    public var deltaBytes: UInt64 = 0
    /// Own data over virtual size, 0 to 1 (`used_fraction`: the part of the disk the image itself stores).
    public var usedFraction: Double = 0

    init(directory: String?, host: String? = nil, images: [ImageReport]) {
        self.directory = directory
        self.host = host
        for image in images {
            imageCount += 1
            if image.stale { staleCount += 1 }
            virtualSize += image.virtualSize
            diskUsage += image.diskUsage
            allocatedBytes += image.allocatedBytes
            zeroBytes += image.zeroBytes
            compressedBytes += image.compressedBytes
            chainAllocatedBytes += image.chainAllocatedBytes
            extentCount += image.extentCount
            exportBytes += image.exportBytes
            deltaBytes += image.deltaBytes ?? 0
        }
        usedFraction = virtualSize > 0 ? Double(allocatedBytes) / Double(virtualSize) : 0
    }
}

/// A whole report: images, per-directory totals and overall totals.
public struct Report: Codable, Sendable {
    public struct Totals: Codable, Sendable {
        public var overall: ReportTotals
        public var directories: [ReportTotals]
        /// By the host that made each image's latest scan (``ScanRecord/host``): a pool catalog's hosts.
        public var hosts: [ReportTotals]
    }

    /// The name scans recorded before hosts were (schema version 8) are grouped under.
    public static let unrecordedHost = "(not recorded)"

    public var images: [ImageReport]
    /// Images whose every scan failed (never indexed): path, state `failed`, error, failed_at.
    public var failures: [ImageSummary]
    public var totals: Totals

    /// Keys `--sort` accepts; numbers sort largest first, text A to Z.
    public static let sortKeys = [
        "path", "format", "virtual_size", "disk_usage", "allocated_bytes", "zero_bytes", "compressed_bytes",
        "chain_allocated_bytes", "extent_count", "used_fraction", "chain_length", "export_bytes", "delta_bytes", "scanned_at",
    ]

    /// Builds the report for images at `paths` or under `directories` (everything when both are empty).
    public init(
        store: any IndexStoring, paths: [String] = [], directories: [String] = [], sort: String = "path", top: Int? = nil,
        history: Bool = false
    ) throws {
        let entries = try store.scannedImages(matching: paths, directories: directories)
        let recorded = try store.failures()
        var images = try entries.map { entry in
            ImageReport(entry, history: history ? try store.scans(path: entry.image.path) : nil, failure: recorded[entry.image.path])
        }
        images.sort(by: try Self.ordering(sort))
        let scanned = Set(entries.map(\.image.path))
        let selected = Set(paths)
        failures = recorded.values.filter { failure in
            !scanned.contains(failure.path)
                && ((paths.isEmpty && directories.isEmpty) || selected.contains(failure.path)
                    || directories.contains { PathResolver.isInside(failure.path, directory: $0) })
        }.sorted { $0.path < $1.path }.map(ImageSummary.init(failure:))
        if let top { images = Array(images.prefix(top)) }
        let byDirectory = Dictionary(grouping: images, by: \.directory)
        let hostOf = Dictionary(
            entries.map { ($0.image.path, $0.scan.host ?? Self.unrecordedHost) }, uniquingKeysWith: { first, _ in first })
        let byHost = Dictionary(grouping: images, by: { hostOf[$0.path] ?? Self.unrecordedHost })
        totals = Totals(
            overall: ReportTotals(directory: nil, images: images),
            directories: byDirectory.keys.sorted().map { ReportTotals(directory: $0, images: byDirectory[$0] ?? []) },
            hosts: byHost.keys.sorted().map { ReportTotals(directory: nil, host: $0, images: byHost[$0] ?? []) })
        self.images = images
    }

    static func ordering(_ key: String) throws -> (ImageReport, ImageReport) -> Bool {
        func numeric(_ value: @escaping (ImageReport) -> Double) -> (ImageReport, ImageReport) -> Bool {
            { left, right in value(left) != value(right) ? value(left) > value(right) : left.path < right.path }
        }
        switch key {
        case "path": return { $0.path < $1.path }
        case "format": return { ($0.format, $0.path) < ($1.format, $1.path) }
        case "scanned_at": return { ($0.scannedAt, $0.path) > ($1.scannedAt, $1.path) }
        case "virtual_size": return numeric { Double($0.virtualSize) }
        case "disk_usage": return numeric { Double($0.diskUsage) }
        case "allocated_bytes": return numeric { Double($0.allocatedBytes) }
        case "zero_bytes": return numeric { Double($0.zeroBytes) }
        case "compressed_bytes": return numeric { Double($0.compressedBytes) }
        case "chain_allocated_bytes": return numeric { Double($0.chainAllocatedBytes) }
        case "extent_count": return numeric { Double($0.extentCount) }
        case "used_fraction": return numeric { $0.usedFraction }
        case "chain_length": return numeric { Double($0.chainLength) }
        case "export_bytes": return numeric { Double($0.exportBytes) }
        case "delta_bytes": return numeric { Double($0.deltaBytes ?? 0) }
        default: throw ReportError.unknownSortKey(key)
        }
    }
}

public enum ReportError: Error, CustomStringConvertible {
    case unknownSortKey(String)

    public var description: String {
        switch self {
        case .unknownSortKey(let key): return "unknown sort key '\(key)' (one of: \(Report.sortKeys.joined(separator: ", ")))"
        }
    }
}
