import AllocationIndex
import Foundation
import ImageFormats

/// Header metadata of one image, stored as JSON in the index and printed by `info`.
public struct ImageMetadata: Sendable, Codable, Equatable {
    public var format: ImageFormat
    public var virtualSize: UInt64
    public var clusterSize: UInt64?
    public var fileSize: UInt64
    public var backing: BackingReference?
    public var qcow2: QCOW2Details?
    public var vhd: VHDDetails?
    /// Things worth knowing that did not stop the scan (dirty bit, unknown extensions...).
    public var warnings: [String] = []

    public init(format: ImageFormat, virtualSize: UInt64, clusterSize: UInt64?, fileSize: UInt64) {
        self.format = format
        self.virtualSize = virtualSize
        self.clusterSize = clusterSize
        self.fileSize = fileSize
    }
}

/// The backing file (qcow2) or parent (VHD) as the header names it and as it resolved.
public struct BackingReference: Sendable, Codable, Equatable {
    /// The name exactly as stored in the image.
    public var name: String
    /// Absolute path it resolves to (relative names against the image's directory).
    public var resolvedPath: String
    /// Format the image declares for it (qcow2 backing-format extension), if any.
    public var declaredFormat: String?
    /// True when the resolved path lies outside the image's directory tree.
    public var escapesImageDirectory: Bool
    /// The unique id the parent must carry (VHD differencing disks: the header's parent unique id).
    public var expectedUniqueID: String?

    enum CodingKeys: String, CodingKey {
        case name, resolvedPath, declaredFormat, escapesImageDirectory, expectedUniqueID = "expectedUniqueId"
    }
}

/// QCOW2-specific header facts.
public struct QCOW2Details: Sendable, Codable, Equatable {
    public var version: UInt32
    public var clusterBits: UInt32
    public var refcountBits: UInt64
    public var l1Size: UInt32
    public var l1TableOffset: UInt64
    public var extendedL2: Bool
    public var compressionType: String
    public var encrypted: Bool
    public var encryption: String?
    public var dirty: Bool
    public var lazyRefcounts: Bool
    public var externalDataFile: String?
    /// The data file's absolute path (relative names resolve against the image's directory).
    public var externalDataFileResolved: String?
    /// The data file lies outside the image's directory tree.
    public var externalDataFileEscapes: Bool?
    public var externalDataFileRaw: Bool
    public var hasBitmaps: Bool
    /// The persistent dirty bitmaps, as the scan read them (nil when the scan read none).
    public var bitmaps: [BitmapSummary]? = nil
    public var snapshots: [SnapshotSummary]
}

/// One internal snapshot as listed by `info` (the map always follows the active L1 table).
public struct SnapshotSummary: Sendable, Codable, Equatable {
    public var id: String
    public var name: String
    public var dateSeconds: UInt32
    public var vmStateSize: UInt64
    public var diskSize: UInt64?
    public var l1Size: UInt32
}

extension ImageRecord {
    /// The header metadata the scan recorded (`metadata_json`), decoded; nil when it cannot be read.
    public var metadata: ImageMetadata? {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try? decoder.decode(ImageMetadata.self, from: Data(metadataJson.utf8))
    }

    /// The names of the image's qcow2 internal snapshots, without decoding the rest of the metadata (a list
    /// of 1,000 images reads this for each): an image without snapshots is told by the text alone.
    public var snapshotNames: [String] {
        // A byte search (String.contains here is Foundation's locale-aware one, a tenth of a list's time).
        guard metadataJson.utf8.firstRange(of: "\"snapshots\":[{".utf8) != nil else { return [] }
        return metadata?.qcow2?.snapshots.map(\.name) ?? []
    }
}
