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
/// - Scans' packed extents (``PackedScanExtents``), by scan id, for the same reason: a window not asked
///   before is decoded from memory instead of read from the index. Scans up to ``largestPackedScan`` bytes
///   are kept, ``packedBudget`` bytes in all, the least recently used dropped first.
final class ResponseCache: Sendable {
    static let scanLifetime = 1.0
    static let largestAnswer = 256 * 1024
    static let capacity = 1024
    static let largestPackedScan = 16 << 20
    static let packedBudget = 64 << 20

    private let scans = NIOLockedValueBox([Int64: (scan: IndexedScan, at: Double)]())
    private let answers = NIOLockedValueBox([String: ByteBuffer]())
    private let packed = NIOLockedValueBox(PackedScans())

    private struct PackedScans {
        var entries: [Int64: (extents: PackedScanExtents, imageID: Int64, lastUse: UInt64)] = [:]
        var bytes = 0
        var clock: UInt64 = 0
        /// Scans being read by one request; the others read the index meanwhile rather than read it twice.
        var loading: Set<Int64> = []
        /// Scans not kept (too large, or gone): they are read from the index, without another attempt.
        var refused: Set<Int64> = []
    }

    /// The packed extents of `scan` when they are in memory, or nil. With `claim`, a miss that no other
    /// request is loading is claimed: the caller loads them, then calls ``remember(_:imageID:)`` or
    /// ``abandonLoading(scanID:refuse:)``.
    func packedExtents(of scan: ScanRecord, claim: inout Bool) -> PackedScanExtents? {
        guard let id = scan.id else {
            claim = false
            return nil
        }
        return packed.withLockedValue { state in
            if let entry = state.entries[id], entry.extents.scannedAtNanoseconds == scan.scannedAtNs {
                state.clock += 1
                state.entries[id]?.lastUse = state.clock
                claim = false
                return entry.extents
            }
            claim = claim && !state.refused.contains(id) && state.loading.insert(id).inserted
            return nil
        }
    }

    func remember(_ extents: PackedScanExtents, imageID: Int64) {
        packed.withLockedValue { state in
            state.loading.remove(extents.scanID)
            // The image's earlier scans are answered no more: their copies go.
            for (scanID, entry) in state.entries where scanID == extents.scanID || entry.imageID == imageID {
                state.bytes -= entry.extents.byteCount
                state.entries.removeValue(forKey: scanID)
            }
            while state.bytes + extents.byteCount > Self.packedBudget,
                let oldest = state.entries.min(by: { $0.value.lastUse < $1.value.lastUse })
            {
                state.bytes -= oldest.value.extents.byteCount
                state.entries.removeValue(forKey: oldest.key)
            }
            state.clock += 1
            state.entries[extents.scanID] = (extents, imageID, state.clock)
            state.bytes += extents.byteCount
        }
    }

    /// Ends a claim that loaded nothing; with `refuse`, the scan is not claimed again.
    func abandonLoading(scanID: Int64, refuse: Bool) {
        packed.withLockedValue { state in
            state.loading.remove(scanID)
            guard refuse else { return }
            if state.refused.count >= Self.capacity { state.refused.removeAll(keepingCapacity: true) }
            state.refused.insert(scanID)
        }
    }

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

    /// Drops every latest scan kept (the pool catalog's change feed missed changes: any may be old).
    func forgetScans() {
        scans.withLockedValue { $0.removeAll() }
    }

    /// Drops what is known about an image (after `DELETE` or a rescan).
    func forget(imageID: Int64) {
        scans.withLockedValue { _ = $0.removeValue(forKey: imageID) }
        packed.withLockedValue { state in
            for (scanID, entry) in state.entries where entry.imageID == imageID {
                state.bytes -= entry.extents.byteCount
                state.entries.removeValue(forKey: scanID)
            }
        }
    }
}
