import Dispatch
import Synchronization

/// A scan stopped before it finished: it ran past its time limit, or was cancelled.
public struct ScanStopped: Error, Sendable, CustomStringConvertible {
    /// Which bound stopped it.
    public enum Kind: String, Sendable {
        case cancelled, timeLimit, extentLimit
    }

    public var kind: Kind
    public var reason: String
    public var description: String { "scan stopped: \(reason)" }
}

/// How far a running scan has got, for callers that report it (the service's scan jobs): the metadata
/// tables read (qcow2 L1 entries with their L2 tables, VHD sector bitmaps) of those known so far.
///
/// A layer announces its tables when it is opened, so a chain's backing layers add theirs as the scan
/// reaches them; ``fraction`` never goes backwards. Writers are the scanning thread; any thread may read.
public final class ScanProgress: Sendable {
    private let known = Atomic<UInt64>(0)
    private let read = Atomic<UInt64>(0)
    /// The largest fraction reported, in millionths, so that a layer announcing more tables cannot make
    /// the figure drop.
    private let reported = Atomic<UInt64>(0)
    /// When the scan must stop (`DispatchTime` uptime nanoseconds), or `UInt64.max`.
    private let deadline: UInt64
    private let limitText: String
    private let cancelled = Atomic<Bool>(false)
    /// Extents one layer's map may hold; past it the scan stops (memory grows with them, not with the file).
    public let extentLimit: Int

    /// - Parameters:
    ///   - timeLimit: seconds the scan may run; reading stops with ``ScanStopped`` past it.
    ///   - extentLimit: extents a layer may map before the scan stops.
    public init(timeLimit: Double? = nil, extentLimit: Int = Int.max) {
        self.extentLimit = extentLimit
        if let timeLimit, timeLimit > 0 {
            deadline = DispatchTime.now().uptimeNanoseconds &+ UInt64(timeLimit * 1e9)
            limitText = "it ran longer than its time limit (\(timeLimit) s)"
        } else {
            deadline = UInt64.max
            limitText = ""
        }
    }

    /// Asks the scan to stop at its next table.
    public func cancel() {
        cancelled.store(true, ordering: .relaxed)
    }

    /// Throws when the scan was cancelled or is past its deadline; called between chunks of tables (and
    /// between chunks of data by a digest scan).
    public func checkpoint() throws(ScanStopped) {
        if cancelled.load(ordering: .relaxed) { throw ScanStopped(kind: .cancelled, reason: "it was cancelled") }
        if deadline != UInt64.max, DispatchTime.now().uptimeNanoseconds > deadline {
            throw ScanStopped(kind: .timeLimit, reason: limitText)
        }
    }

    /// A layer is about to read `count` tables.
    func expect(_ count: Int) {
        known.wrappingAdd(UInt64(max(count, 0)), ordering: .relaxed)
    }

    /// Throws when a layer maps more than ``extentLimit`` extents, or the scan must stop (``checkpoint()``);
    /// called after each table.
    func check(extents: Int) throws(ScanStopped) {
        if extents > extentLimit {
            throw ScanStopped(kind: .extentLimit, reason: "the image maps more than \(extentLimit) extents, the limit for one scan")
        }
        try checkpoint()
    }

    /// `count` more tables were read, and the layer maps `extents` so far; throws when the scan must stop
    /// (``checkpoint()``, or more extents than ``extentLimit``).
    func advance(_ count: Int, extents: Int) throws(ScanStopped) {
        read.wrappingAdd(UInt64(max(count, 0)), ordering: .relaxed)
        if extents > extentLimit {
            throw ScanStopped(kind: .extentLimit, reason: "the image maps more than \(extentLimit) extents, the limit for one scan")
        }
        try checkpoint()
    }

    /// Tables read of tables known, 0 to 1 (0 until a layer has announced its tables).
    public var fraction: Double {
        let total = known.load(ordering: .relaxed)
        guard total > 0 else { return 0 }
        let done = min(read.load(ordering: .relaxed), total)
        let now = done * 1_000_000 / total
        let highest = reported.max(now, ordering: .relaxed).newValue
        return Double(highest) / 1_000_000
    }
}
