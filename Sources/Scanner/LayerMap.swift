import ImageFormats
import ImageIO

/// The allocation runs of one image file on its own, before its backing chain is consulted.
///
/// Runs are ``Extent``s at depth 0 that tile `[0, virtualSize)`; `present == false` marks a range the
/// layer leaves to its backing file.
public struct LayerMap: Sendable {
    public var virtualSize: UInt64
    public var runs: [Extent]

    public init(virtualSize: UInt64, runs: [Extent]) {
        self.virtualSize = virtualSize
        self.runs = runs
    }

    /// Index of the first run that ends after `offset` (binary search).
    func firstRun(endingAfter offset: UInt64) -> Int {
        var low = 0
        var high = runs.count
        while low < high {
            let mid = (low + high) / 2
            if runs[mid].end <= offset { low = mid + 1 } else { high = mid }
        }
        return low
    }
}

extension LayerMap {
    /// Marks the parts of data runs whose host range is a hole, an unwritten extent or past the end of the
    /// data file as reading zero.
    ///
    /// - Parameters:
    ///   - segments: the data file's data segments, sorted (``FileBlockSource/dataSegments()``, FIEMAP).
    ///   - visibleToQemu: true when qemu asks the file below too (its metadata-preallocation heuristic,
    ///     ``QCOW2PreallocationProbe``): the parts get `zero`, as qemu-img map reports them. Otherwise they
    ///     get ``Extent/storedZero``, which `map` does not show.
    mutating func markHostHoles(segments: [Range<UInt64>], fileSize: UInt64, visibleToQemu: Bool = true) {
        if segments.count == 1, segments[0] == 0..<fileSize,
            !runs.contains(where: { ($0.offset ?? 0) + $0.length > fileSize && $0.data })
        {
            return
        }
        var builder = ExtentListBuilder()
        for run in runs {
            guard run.data, !run.zero, !run.compressed, let hostStart = run.offset else {
                builder.append(run)
                continue
            }
            var host = hostStart
            let hostEnd = hostStart + run.length
            var index = Self.segmentIndex(containingOrAfter: host, in: segments)
            while host < hostEnd {
                var piece = run
                piece.start = run.start + (host - hostStart)
                piece.offset = host
                let pieceEnd: UInt64
                if index < segments.count, segments[index].contains(host) {
                    pieceEnd = min(hostEnd, segments[index].upperBound)
                    index += 1
                } else {
                    let nextData = index < segments.count ? segments[index].lowerBound : UInt64.max
                    pieceEnd = min(hostEnd, nextData)
                    if visibleToQemu { piece.zero = true } else { piece.storedZero = true }
                }
                piece.length = pieceEnd - host
                builder.append(piece)
                host = pieceEnd
            }
        }
        runs = builder.extents
    }

    /// Index of the segment containing `offset`, else of the first one after it.
    static func segmentIndex(containingOrAfter offset: UInt64, in segments: [Range<UInt64>]) -> Int {
        var low = 0
        var high = segments.count
        while low < high {
            let mid = (low + high) / 2
            if segments[mid].upperBound <= offset { low = mid + 1 } else { high = mid }
        }
        return low
    }
}
