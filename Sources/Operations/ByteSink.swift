import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// An output buffer for a file descriptor, flushed in large writes.
///
/// It writes into raw memory with a hand-rolled decimal formatter, because `map --output json` prints
/// hundreds of thousands of lines and must stay far below qemu-img map's time.
public struct ByteSink {
    public let descriptor: Int32
    @usableFromInline let storage: UnsafeMutablePointer<UInt8>
    @usableFromInline var count = 0
    public static let capacity = 1 << 21
    public static let flushThreshold = 1 << 20

    /// Where full buffers go instead of `descriptor`, for sinks that feed something other than a file.
    private let drain: ((UnsafeRawBufferPointer) throws -> Void)?

    public init(descriptor: Int32) {
        self.descriptor = descriptor
        drain = nil
        storage = .allocate(capacity: Self.capacity)
    }

    /// A sink whose flushes hand the buffered bytes to `drain` (which must copy them; the buffer is reused).
    public init(drain: @escaping (UnsafeRawBufferPointer) throws -> Void) {
        descriptor = -1
        self.drain = drain
        storage = .allocate(capacity: Self.capacity)
    }

    @inlinable
    public mutating func write(_ text: String) {
        var text = text
        text.withUTF8 { write(raw: $0) }
    }

    @inlinable
    public mutating func write(bytes: some Sequence<UInt8>) {
        for byte in bytes { write(byte: byte) }
    }

    @inlinable @inline(__always)
    public mutating func write(byte: UInt8) {
        if count == Self.capacity { try? flush() }
        storage[count] = byte
        count += 1
    }

    /// Makes room for `bytes` more bytes, so that the writes after it need no flush.
    @inlinable @inline(__always)
    public mutating func reserve(_ bytes: Int) {
        if count + bytes > Self.capacity { try? flush() }
    }

    @inlinable @inline(__always)
    public mutating func write(_ text: StaticString) {
        let length = text.utf8CodeUnitCount
        if count + length > Self.capacity { try? flush() }
        let source = text.utf8Start
        let target = storage + count
        // Short literals: a byte loop beats a call to memmove.
        for index in 0..<length { target[index] = source[index] }
        count += length
    }

    @inlinable @inline(__always)
    public mutating func write(raw: UnsafeBufferPointer<UInt8>) {
        if count + raw.count > Self.capacity { try? flush() }
        if raw.count > Self.capacity {
            for byte in raw { write(byte: byte) }
            return
        }
        guard let source = raw.baseAddress else { return }
        (storage + count).update(from: source, count: raw.count)
        count += raw.count
    }

    /// Writes `value` in decimal, two digits at a time, straight into the buffer.
    @inlinable @inline(__always)
    public mutating func writeDecimal(_ value: UInt64) {
        if count + 20 > Self.capacity { try? flush() }
        var digits = 1
        var power: UInt64 = 10
        while digits < 20 && value >= power {
            digits += 1
            power = power &* 10
        }
        let table = Self.digitPairs.utf8Start
        var position = count + digits
        var remaining = value
        while remaining >= 100 {
            let pair = Int(remaining % 100) &* 2
            remaining /= 100
            position -= 2
            storage[position] = table[pair]
            storage[position + 1] = table[pair + 1]
        }
        if remaining >= 10 {
            let pair = Int(remaining) &* 2
            storage[position - 2] = table[pair]
            storage[position - 1] = table[pair + 1]
        } else {
            storage[position - 1] = UInt8(truncatingIfNeeded: remaining) &+ 48
        }
        count += digits
    }

    /// "00" through "99", for formatting two digits per division.
    @usableFromInline static let digitPairs: StaticString =
        "00010203040506070809101112131415161718192021222324252627282930313233343536373839404142434445464748495051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899"

    /// Writes the buffer out if it has grown past the threshold.
    @inlinable @inline(__always)
    public mutating func flushIfNeeded() throws {
        if count >= Self.flushThreshold { try flush() }
    }

    /// Frees the buffer; for sinks made per request (the CLI's standard output lives as long as the process).
    /// The sink must not be used afterwards.
    public func deallocate() {
        storage.deallocate()
    }

    public mutating func flush() throws {
        if let drain {
            let bytes = UnsafeRawBufferPointer(start: storage, count: count)
            count = 0
            return try drain(bytes)
        }
        var written = 0
        while written < count {
            let result = Glibc.write(descriptor, storage + written, count - written)
            if result < 0 {
                if errno == EINTR { continue }
                let code = errno
                count = 0
                throw OutputError(code: code)
            }
            written += result
        }
        count = 0
    }
}

public struct OutputError: Error, Sendable, CustomStringConvertible {
    public var code: Int32
    public var description: String { "writing output failed: \(String(cString: strerror(code)))" }
}
