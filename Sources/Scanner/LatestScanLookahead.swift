import AllocationIndex
import Synchronization

/// The latest scans of the images a directory scan is about to visit, read from a pool catalog a batch at a
/// time: one round trip for ``batchSize`` images instead of one each, which was half of what a host spent on
/// an image another host had already scanned.
///
/// Only a hint for ``ImageIndexer/ensureIndexed(path:force:progress:waitsForOtherHosts:hint:)``: a scan found
/// here is checked for freshness like any other (and, when stale, read again under the image's scan lock), and
/// an image without one here is looked up again when it is visited, since another host may have scanned it
/// since. On a store that is not shared (SQLite: a lookup is no round trip) it reads nothing and hints nothing.
public final class LatestScanLookahead: Sendable {
    /// Images read per round trip.
    public static let batchSize = 32

    let store: any IndexStoring
    /// The paths in the order they are visited.
    let paths: [String]
    let batches: Mutex<[Int: Batch]> = Mutex([:])

    enum Batch {
        /// One worker is reading it; the others do not wait for it.
        case reading
        /// The latest scans found, by the path as visited; an entry is removed when it is handed out.
        case read([String: IndexedScan])
    }

    /// - Parameter paths: the images in the order the scan visits them.
    public init(store: any IndexStoring, paths: [String]) {
        self.store = store
        self.paths = store.isShared ? paths : []
    }

    /// The latest scan of the image visited at `position` (an index into the visiting order) as the catalog
    /// held it when its batch was read, or nil (none, not read, or read by a worker still at it). The first
    /// visit of a batch reads the whole batch.
    public func hint(at position: Int) -> IndexedScan? {
        guard paths.indices.contains(position) else { return nil }
        let number = position / Self.batchSize
        let path = paths[position]
        let state = batches.withLock { batches -> Batch? in
            guard let batch = batches[number] else {
                batches[number] = .reading
                return nil
            }
            guard case .read(var found) = batch else { return .reading }
            let hint = found.removeValue(forKey: path)
            batches[number] = .read(found)
            return .read(hint.map { [path: $0] } ?? [:])
        }
        switch state {
        case .read(let found): return found[path]
        case .reading: return nil
        case nil: return readBatch(number, taking: path)
        }
    }

    /// Reads batch `number`, keeps it for the other visits, and hands out the scan of `path`.
    private func readBatch(_ number: Int, taking path: String) -> IndexedScan? {
        let members = paths[(number * Self.batchSize)..<min((number + 1) * Self.batchSize, paths.count)]
        // Keyed by the path as visited; the catalog keys its canonical form (a path that no longer resolves is
        // left to its visit to name).
        var visited: [String: String] = [:]
        for path in members {
            if let canonical = try? ImageIndexer.canonicalPath(path) { visited[canonical] = path }
        }
        var found: [String: IndexedScan] = [:]
        // A failed read hints nothing: each visit then looks its image up and meets the error itself.
        for indexed in (try? store.latestScans(paths: Array(visited.keys))) ?? [] {
            if let visitedAs = visited[indexed.image.path] { found[visitedAs] = indexed }
        }
        let hint = found.removeValue(forKey: path)
        batches.withLock { $0[number] = .read(found) }
        return hint
    }
}
