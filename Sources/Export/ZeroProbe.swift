import Foundation
import ImageFormats

/// Finds the 4 KiB blocks of an export's stored data that hold only zeros, reading the data once before a
/// stream that lays out its tables first (qcow2, VHD, XVA) is written: what `qemu-img convert` finds as it
/// reads. The blocks become zeros in the plan (``ExportPlan/foundZeros``), so a wholly zero cluster or
/// block is not sent as data.
enum ZeroProbe {
    /// Zero runs recorded at most: past it the rest of the data is sent as it is (memory stays bounded).
    static let maximumRanges = 4 << 20
    static let block: UInt64 = 4096

    /// The plan with the zero blocks of its data added to its found zeros.
    static func probed(_ plan: ExportPlan, reader: GuestReader) throws -> ExportPlan {
        var found = ZeroRanges()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Limits.Export.readRequestBytes, alignment: 4096)
        defer { buffer.deallocate() }
        let cursor = plan.cursor()
        reading: while let extent = try cursor.next() {
            guard plan.role(of: extent) == .data else { continue }
            var position = extent.start
            while position < extent.end {
                let count = Int(min(UInt64(buffer.count), extent.end - position))
                let slice = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<count])
                try reader.read(extent, guestStart: position, into: slice)
                ExportOutput.forEachRun(of: UnsafeRawBufferPointer(slice), at: position) { run, zero in
                    if zero { found.append((position + UInt64(run.lowerBound))..<(position + UInt64(run.upperBound))) }
                }
                if found.ranges.count >= maximumRanges { break reading }
                position += UInt64(count)
            }
        }
        guard !found.ranges.isEmpty else { return plan }
        var probed = plan
        probed.foundZeros = RangeSet(merged(plan.foundZeros.ranges, found.ranges))
        return probed
    }

    /// Two sorted lists of disjoint ranges as one, touching neighbours joined.
    static func merged(_ first: [Range<UInt64>], _ second: [Range<UInt64>]) -> [Range<UInt64>] {
        var result: [Range<UInt64>] = []
        result.reserveCapacity(first.count + second.count)
        var (i, j) = (0, 0)
        while i < first.count || j < second.count {
            let next: Range<UInt64>
            if j >= second.count || (i < first.count && first[i].lowerBound <= second[j].lowerBound) {
                next = first[i]
                i += 1
            } else {
                next = second[j]
                j += 1
            }
            if let last = result.last, last.upperBound >= next.lowerBound {
                result[result.count - 1] = last.lowerBound..<max(last.upperBound, next.upperBound)
            } else {
                result.append(next)
            }
        }
        return result
    }
}
