import AllocationIndex
import Export
import ImageFormats

/// Walks a plan's extents over successive ranges, reusing one index cursor while the ranges move
/// forward (the usual pattern of a copying client) and starting a new one when a range goes back.
final class ExtentWindow {
    let plan: ExportPlan
    private var cursor: PlanCursor?
    private var current: Extent?
    /// Lowest offset the cursor can still serve.
    private var floor: UInt64 = 0

    init(plan: ExportPlan) {
        self.plan = plan
    }

    /// Calls `body` for consecutive pieces covering `range` in order: the extent supplying each piece, or
    /// nil where the index has no extent (read as zeros). `body` returns false to stop early.
    func visit(_ range: Range<UInt64>, _ body: (Extent?, Range<UInt64>) throws -> Bool) throws {
        if cursor == nil || range.lowerBound < floor {
            cursor = plan.cursor(from: range.lowerBound, to: plan.virtualSize)
            current = nil
            floor = range.lowerBound
        }
        guard let cursor else { return }
        var position = range.lowerBound
        defer { floor = min(position, current?.start ?? position) }
        while position < range.upperBound {
            while current.map({ $0.end <= position }) ?? true {
                current = try cursor.next()
                if current == nil { break }
            }
            guard let extent = current, extent.start <= position else {
                let stop = current.map { min($0.start, range.upperBound) } ?? range.upperBound
                let keepGoing = try body(nil, position..<stop)
                position = stop
                if !keepGoing { return }
                continue
            }
            let stop = min(extent.end, range.upperBound)
            let keepGoing = try body(extent, position..<stop)
            position = stop
            if !keepGoing { return }
        }
    }
}
