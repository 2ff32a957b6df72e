import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Buffered standard output and unbuffered diagnostics on standard error.
enum Console {
    nonisolated(unsafe) static var output = ByteSink(descriptor: 1)

    static func error(_ message: String) {
        let line = message.hasSuffix("\n") ? message : message + "\n"
        FileHandle.standardError.write(Data(line.utf8))
    }

    static func print(_ text: String) {
        output.write(text)
        output.write("\n")
    }

    static func flushStandardOutput() {
        try? output.flush()
    }

    static var standardErrorIsTerminal: Bool { isatty(2) == 1 }
}

/// An output buffer for a file descriptor, flushed in large writes.
struct ByteSink {
    let descriptor: Int32
    var buffer: [UInt8] = []
    static let flushThreshold = 1 << 20

    init(descriptor: Int32) {
        self.descriptor = descriptor
        buffer.reserveCapacity(Self.flushThreshold + 4096)
    }

    mutating func write(_ text: String) {
        buffer.append(contentsOf: text.utf8)
        if buffer.count >= Self.flushThreshold { try? flush() }
    }

    mutating func write(bytes: some Sequence<UInt8>) {
        buffer.append(contentsOf: bytes)
    }

    @inline(__always)
    mutating func writeDecimal(_ value: UInt64) {
        if value == 0 {
            buffer.append(UInt8(ascii: "0"))
            return
        }
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var count = 0
        var remaining = value
        withUnsafeMutableBytes(of: &digits) { raw in
            while remaining > 0 {
                raw[count] = UInt8(truncatingIfNeeded: remaining % 10) + 48
                remaining /= 10
                count += 1
            }
            for index in stride(from: count - 1, through: 0, by: -1) { buffer.append(raw[index]) }
        }
    }

    /// Writes the buffer out if it has grown past the threshold.
    mutating func flushIfNeeded() throws {
        if buffer.count >= Self.flushThreshold { try flush() }
    }

    mutating func flush() throws {
        var written = 0
        while written < buffer.count {
            let result = buffer.withUnsafeBytes { raw in
                Glibc.write(descriptor, raw.baseAddress! + written, raw.count - written)
            }
            if result < 0 {
                if errno == EINTR { continue }
                let code = errno
                buffer.removeAll(keepingCapacity: true)
                throw OutputError(code: code)
            }
            written += result
        }
        buffer.removeAll(keepingCapacity: true)
    }
}

struct OutputError: Error, CustomStringConvertible {
    var code: Int32
    var description: String { "writing output failed: \(String(cString: strerror(code)))" }
}
