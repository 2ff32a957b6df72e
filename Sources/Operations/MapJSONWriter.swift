import AllocationIndex
import ImageFormats

/// Writes extents in qemu-img map's JSON list shape, formatting numbers by hand for speed.
public enum MapJSONWriter {
    /// Writes the extents of scan `scanID` that overlap `[lower, upper)` as `qemu-img map --output=json` does,
    /// then flushes `sink`.
    ///
    /// - Throws: a store error, or ``OutputError`` when the sink's descriptor cannot be written.
    /// - Parameter detectZeros: also report data over host holes (``Extent/storedZero``) as `"zero": true`;
    ///   without it the list is qemu-img map's, which shows them only for metadata-preallocated images.
    public static func write(
        store: any IndexStoring, scanID: Int64, from lower: UInt64, to upper: UInt64, detectZeros: Bool = false, sink: inout ByteSink
    ) throws {
        try write(from: lower, to: upper, detectZeros: detectZeros, sink: &sink) { body in
            try store.forEachBatch(scanID: scanID, from: lower, to: upper, body)
        }
    }

    /// Like ``write(store:scanID:from:to:sink:)``, with the extents from a scan already in memory.
    public static func write(extents: PackedScanExtents, from lower: UInt64, to upper: UInt64, sink: inout ByteSink) throws {
        try write(from: lower, to: upper, sink: &sink) { body in try extents.forEachBatch(from: lower, to: upper, body) }
    }

    /// The list of the extents `batches` hands over (those overlapping `[lower, upper)`, clipped, in order).
    static func write(
        from lower: UInt64, to upper: UInt64, detectZeros: Bool = false, sink: inout ByteSink,
        batches: (_ body: ([Extent]) throws -> Void) throws -> Void
    ) throws {
        var first = true
        // Stored compressed clusters are one extent each (with their descriptors); print them merged.
        var pending: Extent?
        sink.write("[" as StaticString)
        try batches { batch in
            for stored in batch {
                let extent = detectZeros ? stored.withStoredZerosShown : stored
                if var held = pending {
                    if held.canMergeForDisplay(with: extent) {
                        held.length += extent.length
                        pending = held
                        continue
                    }
                    if !first { sink.write(",\n" as StaticString) }
                    first = false
                    append(held, to: &sink)
                }
                pending = extent
            }
            try sink.flushIfNeeded()
        }
        if let held = pending {
            if !first { sink.write(",\n" as StaticString) }
            append(held, to: &sink)
        } else if lower == upper && lower == 0 {
            // qemu-img map prints one empty entry for a zero-length disk; so do we, to stay a drop-in.
            sink.write("{ \"start\": 0, \"length\": 0, \"depth\": 0, \"present\": false, \"zero\": false, \"data\": false}" as StaticString)
        }
        sink.write("]\n" as StaticString)
        try sink.flush()
    }

    @inline(__always)
    static func append(_ extent: Extent, to sink: inout ByteSink) {
        sink.reserve(200)
        sink.write("{ \"start\": ")
        sink.writeDecimal(extent.start)
        sink.write(", \"length\": ")
        sink.writeDecimal(extent.length)
        sink.write(", \"depth\": ")
        sink.writeDecimal(UInt64(extent.depth))
        switch (extent.present, extent.zero, extent.data) {
        case (true, true, true): sink.write(", \"present\": true, \"zero\": true, \"data\": true")
        case (true, true, false): sink.write(", \"present\": true, \"zero\": true, \"data\": false")
        case (true, false, true): sink.write(", \"present\": true, \"zero\": false, \"data\": true")
        case (true, false, false): sink.write(", \"present\": true, \"zero\": false, \"data\": false")
        case (false, true, true): sink.write(", \"present\": false, \"zero\": true, \"data\": true")
        case (false, true, false): sink.write(", \"present\": false, \"zero\": true, \"data\": false")
        case (false, false, true): sink.write(", \"present\": false, \"zero\": false, \"data\": true")
        case (false, false, false): sink.write(", \"present\": false, \"zero\": false, \"data\": false")
        }
        if extent.compressed { sink.write(", \"compressed\": true" as StaticString) }
        if let offset = extent.offset {
            sink.write(", \"offset\": " as StaticString)
            sink.writeDecimal(offset)
        }
        sink.write("}" as StaticString)
    }
}
