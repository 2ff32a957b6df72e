import Foundation
internal import GRDB
import ImageFormats

/// A row of `images` (migrations/0001_initial.sql).
public struct ImageRecord: Codable, Sendable, Equatable {
    public var id: Int64?
    public var path: String
    public var format: ImageFormat
    public var virtualSize: Int64
    public var clusterSize: Int64?
    public var backingPath: String?
    public var backingImageId: Int64?
    public var metadataJson: String
    public var latestScanId: Int64?
    /// Trust given at scan time (`--allow-outside-backing`), kept for later rescans (schema version 2).
    public var allowsOutsideBacking: Bool = false

    /// The table's columns, as the record names them (a store that selects them by name).
    public static var columnNames: [String] { CodingKeys.allCases.map(\.rawValue) }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case id, path, format
        case virtualSize = "virtual_size"
        case clusterSize = "cluster_size"
        case backingPath = "backing_path"
        case backingImageId = "backing_image_id"
        case metadataJson = "metadata_json"
        case latestScanId = "latest_scan_id"
        case allowsOutsideBacking = "allows_outside_backing"
    }

}

/// A row of `scans`.
public struct ScanRecord: Codable, Sendable, Equatable {
    public var id: Int64?
    public var imageId: Int64
    public var scannedAtNs: Int64
    public var durationNs: Int64
    public var toolVersion: String
    public var virtualSize: Int64
    public var chainDepth: Int64
    public var extentCount: Int64
    public var dataBytes: Int64
    public var ownDataBytes: Int64
    public var zeroBytes: Int64
    public var compressedBytes: Int64
    public var ownZeroBytes: Int64
    public var dataExtentCount: Int64
    public var dataExtentLargest: Int64
    public var dataExtentMedian: Int64
    public var dataExtentHistogram: String
    public var warningsJson: String
    /// The scan whose stored chunks are this scan's extents (an unchanged rescan); nil: its own chunks.
    public var extentsScanId: Int64? = nil
    /// ``ScanTrust`` as JSON (schema version 5); nil for a scan recorded before, whose trust is unknown.
    public var trustJson: String? = nil
    /// The host that made the scan (``HostName``); nil for scans recorded before schema version 8.
    public var host: String? = nil

    /// The trust the scan was made under, or nil when it was not recorded (or cannot be read).
    public var trust: ScanTrust? { trustJson.flatMap(ScanTrust.init(json:)) }

    /// The table's columns, as the record names them (a store that selects them by name).
    public static var columnNames: [String] { CodingKeys.allCases.map(\.rawValue) }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case id
        case imageId = "image_id"
        case scannedAtNs = "scanned_at_ns"
        case durationNs = "duration_ns"
        case toolVersion = "tool_version"
        case virtualSize = "virtual_size"
        case chainDepth = "chain_depth"
        case extentCount = "extent_count"
        case dataBytes = "data_bytes"
        case ownDataBytes = "own_data_bytes"
        case zeroBytes = "zero_bytes"
        case compressedBytes = "compressed_bytes"
        case ownZeroBytes = "own_zero_bytes"
        case dataExtentCount = "data_extent_count"
        case dataExtentLargest = "data_extent_largest"
        case dataExtentMedian = "data_extent_median"
        case dataExtentHistogram = "data_extent_histogram"
        case warningsJson = "warnings_json"
        case extentsScanId = "extents_scan_id"
        case trustJson = "trust_json"
        case host
    }

}

/// A row of `scan_layers`: one chain layer's identity at scan time.
public struct ScanLayerRecord: Codable, Sendable, Equatable {
    public var scanId: Int64
    public var depth: Int64
    public var path: String
    public var format: ImageFormat
    public var device: Int64
    public var inode: Int64
    public var fileSize: Int64
    public var mtimeNs: Int64
    /// Nil when recorded before schema version 5 (the layer then counts as changed).
    public var ctimeNs: Int64?
    public var headerChecksum: String
    public var clusterSize: Int64?
    public var dataPath: String?
    /// Identity of the data file at scan time (schema version 2); nil without a data file.
    public var dataDevice: Int64?
    public var dataInode: Int64?
    public var dataFileSize: Int64?
    public var dataMtimeNs: Int64?
    public var dataCtimeNs: Int64?

    /// The table's columns, as the record names them (a store that selects them by name).
    public static var columnNames: [String] { CodingKeys.allCases.map(\.rawValue) }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case scanId = "scan_id"
        case depth, path, format, device, inode
        case fileSize = "file_size"
        case mtimeNs = "mtime_ns"
        case ctimeNs = "ctime_ns"
        case headerChecksum = "header_checksum"
        case clusterSize = "cluster_size"
        case dataPath = "data_path"
        case dataDevice = "data_device"
        case dataInode = "data_inode"
        case dataFileSize = "data_file_size"
        case dataMtimeNs = "data_mtime_ns"
        case dataCtimeNs = "data_ctime_ns"
    }

    public init(
        scanId: Int64 = 0, depth: Int64, path: String, format: ImageFormat, device: Int64, inode: Int64, fileSize: Int64,
        mtimeNs: Int64, ctimeNs: Int64? = nil, headerChecksum: String, clusterSize: Int64? = nil, dataPath: String? = nil,
        dataDevice: Int64? = nil, dataInode: Int64? = nil, dataFileSize: Int64? = nil, dataMtimeNs: Int64? = nil,
        dataCtimeNs: Int64? = nil
    ) {
        self.ctimeNs = ctimeNs
        self.dataCtimeNs = dataCtimeNs
        self.scanId = scanId
        self.depth = depth
        self.path = path
        self.format = format
        self.device = device
        self.inode = inode
        self.fileSize = fileSize
        self.mtimeNs = mtimeNs
        self.headerChecksum = headerChecksum
        self.clusterSize = clusterSize
        self.dataPath = dataPath
        self.dataDevice = dataDevice
        self.dataInode = dataInode
        self.dataFileSize = dataFileSize
        self.dataMtimeNs = dataMtimeNs
    }
}

extension ScanLayerRecord {
    /// The layer file's own recorded identity.
    public var identity: StoredFileIdentity {
        StoredFileIdentity(
            device: UInt64(bitPattern: device), inode: UInt64(bitPattern: inode), size: UInt64(max(fileSize, 0)), mtimeNanoseconds: mtimeNs,
            ctimeNanoseconds: ctimeNs)
    }

    /// The data file's recorded identity, when the layer has one and it was recorded.
    public var dataIdentity: StoredFileIdentity? {
        guard let dataDevice, let dataInode, let dataFileSize, let dataMtimeNs else { return nil }
        return StoredFileIdentity(
            device: UInt64(bitPattern: dataDevice), inode: UInt64(bitPattern: dataInode), size: UInt64(max(dataFileSize, 0)),
            mtimeNanoseconds: dataMtimeNs, ctimeNanoseconds: dataCtimeNs)
    }
}

/// Decoded values, so callers never parse the JSON columns themselves.
extension ScanRecord {
    /// What did not stop the scan (`warnings_json`), layer by layer.
    public var warnings: [String] {
        (try? JSONDecoder().decode([String].self, from: Data(warningsJson.utf8))) ?? []
    }

    /// Data extents by size (`data_extent_histogram`): `[k]` counts extents of 2^k to 2^(k+1) - 1 bytes.
    /// Read by hand: the column is a JSON array of counts (`[0,3,12]`) that every listed image needs, and
    /// JSONDecoder took a sixth of a 1,000-image page. Anything else is left to JSONDecoder.
    public var histogram: [UInt64] {
        var values: [UInt64] = []
        var current: UInt64?
        var utf8 = dataExtentHistogram.utf8.makeIterator()
        guard utf8.next() == UInt8(ascii: "[") else { return Self.decodeHistogram(dataExtentHistogram) }
        while let byte = utf8.next() {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                let (shifted, overflow1) = (current ?? 0).multipliedReportingOverflow(by: 10)
                let (sum, overflow2) = shifted.addingReportingOverflow(UInt64(byte - UInt8(ascii: "0")))
                guard !overflow1, !overflow2 else { return Self.decodeHistogram(dataExtentHistogram) }
                current = sum
            case UInt8(ascii: ","):
                guard let value = current else { return Self.decodeHistogram(dataExtentHistogram) }
                values.append(value)
                current = nil
            case UInt8(ascii: "]"):
                if let value = current { values.append(value) }
                return utf8.next() == nil ? values : Self.decodeHistogram(dataExtentHistogram)
            default:
                return Self.decodeHistogram(dataExtentHistogram)
            }
        }
        return Self.decodeHistogram(dataExtentHistogram)
    }

    private static func decodeHistogram(_ text: String) -> [UInt64] {
        (try? JSONDecoder().decode([UInt64].self, from: Data(text.utf8))) ?? []
    }
}

/// How a record is stored: its table. Internal, with ``Stored``: GRDB stays out of the public API, as
/// GRDB's own guide puts it, "record types hide intimate database details".
protocol StoredTable: Codable, Sendable {
    static var tableName: String { get }
}

extension ImageRecord: StoredTable { static let tableName = "images" }
extension ScanRecord: StoredTable { static let tableName = "scans" }
extension ScanLayerRecord: StoredTable { static let tableName = "scan_layers" }

/// The GRDB face of a record, used only inside the store: it decodes and encodes through the record's
/// own coding keys (the column names).
struct Stored<Value: StoredTable>: Codable, FetchableRecord, PersistableRecord {
    var value: Value

    static var databaseTableName: String { Value.tableName }

    init(_ value: Value) { self.value = value }
    init(from decoder: any Decoder) throws { value = try Value(from: decoder) }
    func encode(to encoder: any Encoder) throws { try value.encode(to: encoder) }
}

/// Columns the store's queries name.
enum Columns {
    static let id = Column("id")
    static let path = Column("path")
    static let latestScanId = Column("latest_scan_id")
    static let imageId = Column("image_id")
    static let scanId = Column("scan_id")
    static let depth = Column("depth")
}
