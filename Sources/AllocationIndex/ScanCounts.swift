import ImageFormats

/// The checks and counts that make a scan's figures add up: its extents tile the disk, and its extent
/// count is the number of rows `map` prints.
///
/// Stored extents keep compressed qcow2 clusters apart (each carries the descriptor an export needs to
/// read it), while `map` prints them merged as `qemu-img map` does (``Extent/canMergeForDisplay(with:)``).
/// The stored list cannot be merged without losing those descriptors, so the count a scan reports is the
/// count of the merged rows: the number a user can check against `map` and `qemu-img map`.
public enum ScanCounts {
    /// Throws unless `extents` are sorted, non-empty, contiguous, and cover exactly `[0, virtualSize)`, so
    /// data + zero + unallocated bytes add up to the virtual size.
    ///
    /// - Throws: ``StoreError/invalidScan(_:)`` naming the first extent that breaks the tiling.
    public static func checkTiling(_ extents: [Extent], virtualSize: UInt64) throws {
        var position: UInt64 = 0
        for (index, extent) in extents.enumerated() {
            guard extent.length > 0 else {
                throw StoreError.invalidScan("extent \(index) at \(extent.start) has length 0")
            }
            guard extent.start == position else {
                throw StoreError.invalidScan(
                    "extent \(index) starts at \(extent.start), but the previous one ends at \(position) (overlap or gap)")
            }
            let end = extent.start.addingReportingOverflow(extent.length)
            guard !end.overflow, end.partialValue <= virtualSize else {
                throw StoreError.invalidScan("extent \(index) at \(extent.start) runs past the virtual size \(virtualSize)")
            }
            position = end.partialValue
        }
        guard position == virtualSize else {
            throw StoreError.invalidScan("extents end at \(position), not at the virtual size \(virtualSize)")
        }
    }

    /// The number of rows `map --output json` prints for these extents: neighbours that
    /// ``Extent/canMergeForDisplay(with:)`` are one row.
    public static func displayRows(_ extents: [Extent]) -> Int {
        var rows = 0
        var previous: Extent?
        for extent in extents {
            if let last = previous, last.canMergeForDisplay(with: extent) {
                previous?.length += extent.length
            } else {
                rows += 1
                previous = extent
            }
        }
        return rows
    }
}
