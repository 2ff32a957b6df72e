import Foundation
import ImageFormats

/// Writes the guest disk as a raw image.
///
/// To a regular file the result is sparse: zero and unallocated ranges become holes, the length is set
/// with `ftruncate`, and plain host data is copied in the kernel with `copy_file_range`. To a pipe every
/// byte is written, zeros included. With a base, only the changed ranges are written (into a sparse file)
/// and the changed extents are returned.
public struct RawExporter {
    public let plan: ExportPlan
    public let reader: GuestReader
    /// Force `copy_file_range` on or off for file outputs (tests); nil chooses by file system.
    var kernelCopy: Bool?
    /// Into a regular file, leave each 4 KiB block of zeros in the data as a hole (`qemu-img convert -S 4k`;
    /// the copy then goes through user space); false lets the kernel copy where it offloads, zeros and all.
    public var detectsZeros = true
    /// Largest piece read into memory at once.
    public static let bufferSize = Limits.Export.readRequestBytes

    public init(plan: ExportPlan, reader: GuestReader) {
        self.plan = plan
        self.reader = reader
    }

    /// - Returns: the extents that were sent as changed (for `--base`), in guest order and merged.
    @discardableResult
    public func export(to output: ExportOutput) throws -> [Extent] {
        if plan.baseDepth != nil && !output.isRegularFile {
            throw ExportError.output("an incremental raw export needs a file, to leave unchanged ranges as holes", remedy: .outputFile)
        }
        if output.wantsTotal { output.announce(total: try bytesSent(toRegularFile: output.isRegularFile)) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.bufferSize, alignment: 4096)
        defer { buffer.deallocate() }
        let cursor = plan.cursor()
        var changed = ExtentListBuilder()
        let origin = plan.range.lowerBound
        // Plain data into a file is copied by the kernel, two ranges at a time; progress follows completion.
        // Zero blocks are left out only of a new file: over a copy of the base (`--into`) they must be written.
        let copier =
            output.isRegularFile && !reader.logsReads
            ? KernelCopier(
                target: output.descriptor, name: output.name, kernelCopy: kernelCopy, skipsZeroBlocks: detectsZeros && !output.holdsBase)
            : nil
        while let extent = try cursor.next() {
            let role = plan.role(of: extent)
            if role != .unchanged, plan.baseDepth != nil {
                var reported = extent
                reported.offset = nil
                reported.compressedCluster = nil
                changed.append(reported)
            }
            guard role == .data else {
                // Applied over a copy of the base, a zero range must be zeroed; otherwise it is a hole.
                if role == .zero { try output.zero(extent.length) } else { try output.skip(extent.length) }
                continue
            }
            if let copier, extent.compressedCluster == nil, let host = extent.offset {
                let source = try reader.source(depth: Int(extent.depth))
                let targetOffset = output.position
                try output.skip(extent.length)
                let copied = try copier.enqueue(
                    source: source.descriptor.rawValue, sourcePath: source.path, sourceOffset: host, targetOffset: targetOffset,
                    count: extent.length)
                output.report(copied)
                continue
            }
            var position = extent.start
            while position < extent.end {
                let count = Int(min(UInt64(Self.bufferSize), extent.end - position))
                let slice = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<count])
                try reader.read(extent, guestStart: position, into: slice)
                if detectsZeros {
                    try output.writeDetectingZeros(UnsafeRawBufferPointer(slice))
                } else {
                    try output.write(UnsafeRawBufferPointer(slice))
                }
                position += UInt64(count)
            }
        }
        if let copier { output.report(try copier.flush()) }
        try output.finish(length: plan.range.upperBound - origin)
        return changed.extents
    }

    /// The bytes an export sends: into a regular file only the data (zero, unallocated and unchanged
    /// ranges are holes); into a stream every byte of the range, zeros included.
    public func bytesSent(toRegularFile: Bool) throws -> UInt64 {
        guard toRegularFile else { return plan.range.upperBound - plan.range.lowerBound }
        var total: UInt64 = 0
        let cursor = plan.cursor()
        while let extent = try cursor.next() {
            if plan.role(of: extent) == .data { total += extent.length }
        }
        return total
    }
}
