import AllocationIndex
import Foundation
import ImageFormats
import PoolCatalog
import Testing

@testable import TestSupport

/// The two stores behind the storage seam; every conformance test runs against both.
enum StoreBackend: String, CaseIterable, CustomTestStringConvertible {
    case sqlite
    case postgres

    var testDescription: String { rawValue }

    /// A new, empty store of this kind (a file in `directory`, or a fresh database on the test server).
    func makeStore(in directory: URL) throws -> any IndexStoring {
        try IndexLocation(location(in: directory)).open()
    }

    /// Where a new store of this kind lives: what `--db` would be given.
    func location(in directory: URL) throws -> String {
        switch self {
        case .sqlite: return directory.appendingPathComponent("index-\(UUID().uuidString).sqlite").path
        case .postgres: return try TestPostgres.freshDatabase()
        }
    }
}

/// A one-layer (or `layers`-deep) scan of `path` with these extents.
func scanOf(_ path: String, extents: [Extent], mtime: Int64 = 1, layers: Int = 1, at: Int64 = 5) -> NewScan {
    let size = extents.last?.end ?? 0
    let chain = (0..<layers).map { depth in
        NewLayer(
            path: depth == 0 ? path : path + ".base\(depth)", format: .qcow2, virtualSize: size, clusterSize: 65536,
            backingPath: depth + 1 < layers ? path + ".base\(depth + 1)" : nil, metadataJSON: "{\"depth\":\(depth)}",
            device: 1, inode: UInt64(100 + depth), fileSize: 3, mtimeNanoseconds: mtime, ctimeNanoseconds: mtime,
            headerChecksum: "fnv1a64:\(depth)")
    }
    return NewScan(layers: chain, extents: extents, scannedAtNanoseconds: at, durationNanoseconds: 6, toolVersion: "test", warnings: ["w"])
}
