import Synchronization

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

    public init() {}

    /// A layer is about to read `count` tables.
    func expect(_ count: Int) {
        known.wrappingAdd(UInt64(max(count, 0)), ordering: .relaxed)
    }

    /// `count` more tables were read.
    func advance(_ count: Int) {
        read.wrappingAdd(UInt64(max(count, 0)), ordering: .relaxed)
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
