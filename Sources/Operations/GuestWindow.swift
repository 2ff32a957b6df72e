/// A guest byte range asked for as an offset and an optional length, clipped to the disk: what `map`,
/// `export --offset/--length` and the HTTP `?offset=&length=` parameters mean.
public struct GuestWindow: Sendable, Equatable {
    public var lower: UInt64
    public var upper: UInt64

    /// - Parameters:
    ///   - offset: first byte; past the end it becomes the end (an empty window).
    ///   - length: bytes from `offset`; nil, or a length that overflows or passes the end, means to the end.
    ///   - virtualSize: the guest disk's size.
    public init(offset: UInt64, length: UInt64?, virtualSize: UInt64) {
        lower = min(offset, virtualSize)
        if let length {
            let (end, overflow) = lower.addingReportingOverflow(length)
            upper = overflow ? virtualSize : min(end, virtualSize)
        } else {
            upper = virtualSize
        }
    }

    public var range: Range<UInt64> { lower..<upper }
}
