import AllocationIndex
import NIOConcurrencyHelpers
import NIOCore

/// Small caches on the hot path of `GET /v1/images/{id}/extents`.
///
/// - Latest scans by image id, for at most ``scanLifetime`` seconds: every request still compares the
///   layers with the disk (`stat`), so a changed file is seen at once; only a change made to the index by
///   someone else (another process's rescan or `forget`) can take that long to show.
/// - Extents answers by scan id and window: a scan's extents never change (a rescan is a new scan), so an
///   answer stays true as long as its scan is the latest. Only answers up to ``largestAnswer`` bytes are
///   kept, at most ``capacity`` of them.
final class ResponseCache: Sendable {
    static let scanLifetime = 1.0
    static let largestAnswer = 256 * 1024
    static let capacity = 1024

    private let scans = NIOLockedValueBox([Int64: (scan: IndexedScan, at: Double)]())
    private let answers = NIOLockedValueBox([String: ByteBuffer]())

    func scan(imageID: Int64, now: Double) -> IndexedScan? {
        scans.withLockedValue { entries in
            guard let entry = entries[imageID], now - entry.at < Self.scanLifetime else { return nil }
            return entry.scan
        }
    }

    func remember(_ scan: IndexedScan, imageID: Int64, now: Double) {
        scans.withLockedValue { entries in
            if entries.count >= Self.capacity { entries.removeAll(keepingCapacity: true) }
            entries[imageID] = (scan, now)
        }
    }

    func answer(_ key: String) -> ByteBuffer? {
        answers.withLockedValue { $0[key] }
    }

    func remember(answer: ByteBuffer, for key: String) {
        guard answer.readableBytes <= Self.largestAnswer else { return }
        answers.withLockedValue { entries in
            if entries.count >= Self.capacity { entries.removeAll(keepingCapacity: true) }
            entries[key] = answer
        }
    }

    /// Drops what is known about an image (after `DELETE` or a rescan).
    func forget(imageID: Int64) {
        scans.withLockedValue { _ = $0.removeValue(forKey: imageID) }
    }
}
