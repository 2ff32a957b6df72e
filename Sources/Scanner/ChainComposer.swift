import ImageFormats

/// Composes the layer maps of a chain into one map, the way a reader of the top image sees the disk.
///
/// A range a layer allocates (data or zero) comes from that layer; a range it leaves unallocated is looked
/// up in the layer below, recursively. Ranges no layer allocates, and ranges past the end of a shorter
/// backing file, read as zeros and are reported `present: false` at the depth where the lookup stopped,
/// which is what `qemu-img map` reports (qcow2.txt: "If there is no backing file or the backing file is
/// smaller than the image, they shall read zeros").
public enum ChainComposer {
    /// - Parameter layers: layer 0 is the image itself; each next one is the backing file of the previous.
    /// - Returns: extents tiling `[0, layers[0].virtualSize)`, merged where qemu-img merges them.
    public static func compose(_ layers: [LayerMap]) -> [Extent] {
        guard let top = layers.first else { return [] }
        var builder = ExtentListBuilder()
        if layers.count == 1 {
            // A lone image: its runs as they are, with unallocated ranges reading as zeros.
            for run in top.runs {
                if run.present { builder.append(run) } else { appendUnallocated(run, into: &builder) }
            }
            return builder.extents
        }
        compose(layers, depth: 0, from: 0, to: top.virtualSize, into: &builder)
        return builder.extents
    }

    private static func compose(
        _ layers: [LayerMap], depth: Int, from lower: UInt64, to upper: UInt64, into builder: inout ExtentListBuilder
    ) {
        let layer = layers[depth]
        var index = layer.firstRun(endingAfter: lower)
        var covered = lower
        while index < layer.runs.count, layer.runs[index].start < upper {
            guard var run = layer.runs[index].clipped(to: lower, upper) else { break }
            run.depth = UInt32(depth)
            covered = run.end
            index += 1
            if run.present {
                builder.append(run)
                continue
            }
            guard depth + 1 < layers.count else {
                appendUnallocated(run, into: &builder)
                continue
            }
            let backingSize = layers[depth + 1].virtualSize
            if run.start < backingSize {
                compose(layers, depth: depth + 1, from: run.start, to: min(run.end, backingSize), into: &builder)
            }
            if run.end > backingSize, let beyond = run.clipped(to: backingSize, run.end) {
                appendUnallocated(beyond, into: &builder)
            }
        }
        // A layer shorter than the range asked of it (cannot happen for well-formed maps) reads as zeros.
        if covered < upper {
            builder.append(Extent(start: covered, length: upper - covered, depth: UInt32(depth), present: false, zero: true, data: false))
        }
    }

    private static func appendUnallocated(_ run: Extent, into builder: inout ExtentListBuilder) {
        var zero = run
        zero.present = false
        zero.zero = true
        zero.data = false
        builder.append(zero)
    }
}
