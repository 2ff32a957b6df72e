import AllocationIndex
import Dispatch
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
    /// The images' canonical paths in the order they are visited (nil: a path that did not resolve).
    let paths: [String?]
    /// Batches by number, from the first visit of one on.
    let batches = Mutex<[Int: Batch]>([:])

    enum Batch {
        /// One worker is reading it; the others wait for it (left when it is read), which costs them no
        /// more than a lookup of their own would.
        case reading(DispatchGroup)
        /// The latest scans found, by the path as visited; an entry is removed when it is handed out.
        case read([String: IndexedScan])
    }

    /// - Parameter canonicalPaths: the images' canonical paths (``ImageIndexer/canonicalPath(_:)``, as the
    ///   index keys them; nil for one that did not resolve) in the order the scan visits them.
    public init(store: any IndexStoring, canonicalPaths: [String?]) {
        self.store = store
        self.paths = store.isShared ? canonicalPaths : []
    }

    /// The latest scan of the image visited at `position` (an index into the visiting order) as the catalog
    /// held it when its batch was read, or nil (none, or asked for already). The first visit of a batch reads
    /// the whole batch; visits of it meanwhile wait for that read.
    public func hint(at position: Int) -> IndexedScan? {
        guard paths.indices.contains(position), let path = paths[position] else { return nil }
        let number = position / Self.batchSize
        enum Step {
            case readBatch(DispatchGroup)
            case wait(DispatchGroup)
            case answer(IndexedScan?)
        }
        while true {
            let step = batches.withLock { batches -> Step in
                switch batches[number] {
                case nil:
                    let reading = DispatchGroup()
                    reading.enter()
                    batches[number] = .reading(reading)
                    return .readBatch(reading)
                case .reading(let reading):
                    return .wait(reading)
                case .read(var found):
                    let hint = found.removeValue(forKey: path)
                    batches[number] = .read(found)
                    return .answer(hint)
                }
            }
            switch step {
            case .readBatch(let reading):
                let found = read(number)
                batches.withLock { $0[number] = .read(found) }
                reading.leave()
            case .wait(let reading):
                reading.wait()
            case .answer(let hint):
                return hint
            }
        }
    }

    /// The latest scans of batch `number`, by canonical path.
    private func read(_ number: Int) -> [String: IndexedScan] {
        let members = paths[(number * Self.batchSize)..<min((number + 1) * Self.batchSize, paths.count)].compactMap { $0 }
        var found: [String: IndexedScan] = [:]
        // A failed read hints nothing: each visit then looks its image up and meets the error itself.
        for indexed in (try? store.latestScans(paths: members)) ?? [] { found[indexed.image.path] = indexed }
        return found
    }
}
