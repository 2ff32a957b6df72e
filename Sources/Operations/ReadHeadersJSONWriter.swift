import AllocationIndex
import ImageFormats

/// The two shapes of xapi's `vhd-tool read_headers` output.
public enum ReadHeadersStyle: String, Sendable, CaseIterable {
    /// `{"virtual_size":N,"cluster_bits":B,"data_clusters":[i,j,...]}` (`read_headers`).
    case legacy
    /// `{"virtual_size":N,"cluster_bits":B,"data_clusters":[[first,last],...]}` (`read_headers_interval`;
    /// inclusive ranges).
    case interval
}

/// Writes the data-cluster JSON xapi's stream_vdi reads, from an image's indexed extents.
public enum ReadHeadersJSONWriter {
    /// The cluster size as a power of two: `override` if given, else the image's cluster (qcow2) or block
    /// (VHD) size, else 16 (64 KiB) for images without clusters.
    public static func clusterBits(of indexed: IndexedScan, override: Int?) -> UInt64 {
        if let override { return UInt64(override) }
        if let size = indexed.image.clusterSize, size > 0 { return UInt64(Int64(size).trailingZeroBitCount) }
        return 16
    }

    /// Writes the JSON object and a newline, then flushes `sink`.
    ///
    /// - Throws: a store error, or ``OutputError`` when the sink's descriptor cannot be written.
    public static func write(
        store: any IndexStoring, indexed: IndexedScan, style: ReadHeadersStyle, clusterBits bits: UInt64, sink: inout ByteSink
    ) throws {
        // A scan read from the store always has its row id; without one there is nothing to list.
        let scanID = indexed.scan.id ?? -1
        var ranges = DataClusterRanges(clusterBits: bits)
        try store.forEachExtent(scanID: scanID) { ranges.add($0) }
        sink.write("{\"virtual_size\":\(indexed.scan.virtualSize),\"cluster_bits\":\(bits),\"data_clusters\":[")
        var first = true
        for range in ranges.ranges {
            switch style {
            case .interval:
                if !first { sink.write("," as StaticString) }
                sink.write("[" as StaticString)
                sink.writeDecimal(range.lowerBound)
                sink.write("," as StaticString)
                sink.writeDecimal(range.upperBound)
                sink.write("]" as StaticString)
                first = false
            case .legacy:
                for cluster in range {
                    if !first { sink.write("," as StaticString) }
                    sink.writeDecimal(cluster)
                    first = false
                    try sink.flushIfNeeded()
                }
            }
            try sink.flushIfNeeded()
        }
        sink.write("]}\n")
        try sink.flush()
    }
}
