/// A cursor over untrusted bytes that reads fixed-width integers, big-endian by default.
///
/// Every read is bounds-checked and throws ``FormatError/truncated(field:offset:needed:available:)``
/// naming the field and the absolute file offset, so a short buffer never traps.
public struct ByteReader: Sendable {
    public let bytes: ArraySlice<UInt8>
    /// Absolute file offset of `bytes.first`, used only to report errors.
    public let baseOffset: UInt64
    /// Position relative to the start of `bytes`.
    public private(set) var position: Int = 0

    public init(_ bytes: ArraySlice<UInt8>, baseOffset: UInt64 = 0) {
        self.bytes = bytes
        self.baseOffset = baseOffset
    }

    public init(_ bytes: [UInt8], baseOffset: UInt64 = 0) {
        self.init(bytes[...], baseOffset: baseOffset)
    }

    /// Absolute file offset of the next byte to read.
    public var offset: UInt64 { baseOffset + UInt64(position) }
    public var remaining: Int { bytes.count - position }

    /// Reads a fixed-width integer and advances.
    public mutating func read<T: FixedWidthInteger>(
        _: T.Type, field: String, littleEndian: Bool = false
    ) throws(FormatError) -> T {
        let size = MemoryLayout<T>.size
        try require(size, field: field)
        var value: T = 0
        let start = bytes.startIndex + position
        if littleEndian {
            for index in (0..<size).reversed() { value = value << 8 | T(bytes[start + index]) }
        } else {
            for index in 0..<size { value = value << 8 | T(bytes[start + index]) }
        }
        position += size
        return value
    }

    /// Reads `count` raw bytes and advances.
    public mutating func readBytes(_ count: Int, field: String) throws(FormatError) -> ArraySlice<UInt8> {
        try require(count, field: field)
        let start = bytes.startIndex + position
        position += count
        return bytes[start..<(start + count)]
    }

    /// Moves to `position` (relative to the start of the buffer).
    public mutating func seek(to newPosition: Int, field: String) throws(FormatError) {
        guard newPosition >= 0, newPosition <= bytes.count else {
            throw .truncated(
                field: field, offset: baseOffset + UInt64(max(newPosition, 0)),
                needed: UInt64(max(newPosition, 0)), available: UInt64(bytes.count))
        }
        position = newPosition
    }

    public mutating func skip(_ count: Int, field: String) throws(FormatError) {
        try require(count, field: field)
        position += count
    }

    private func require(_ count: Int, field: String) throws(FormatError) {
        guard count >= 0, count <= remaining else {
            throw .truncated(
                field: field, offset: offset, needed: UInt64(max(count, 0)), available: UInt64(max(remaining, 0)))
        }
    }
}

extension FixedWidthInteger {
    /// Reads a big-endian value at `index` of `bytes`, which the caller has bounds-checked.
    @inline(__always)
    public static func loadBigEndian(from bytes: UnsafeRawBufferPointer, at index: Int) -> Self {
        Self(bigEndian: bytes.loadUnaligned(fromByteOffset: index, as: Self.self))
    }
}
