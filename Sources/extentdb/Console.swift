import CExtentShims
import Foundation
import Report

#if canImport(Glibc)
    import Glibc
#endif

/// Buffered standard output and unbuffered diagnostics on standard error.
enum Console {
    nonisolated(unsafe) static var output = ByteSink(descriptor: 1)

    /// Writes a diagnostic line; control characters in it (from file names and header fields) are escaped.
    static func error(_ message: String) {
        let safe = TerminalText.escaped(message)
        let line = safe.hasSuffix("\n") ? safe : safe + "\n"
        FileHandle.standardError.write(Data(line.utf8))
    }

    /// Redraws a one-line status on standard error (a terminal), without a newline.
    static func progress(_ text: String) {
        extentdb_set_progress_shown(1)
        FileHandle.standardError.write(Data(("\r\u{1B}[K" + TerminalText.escaped(text, keepingNewlines: false)).utf8))
    }

    /// Clears the status line drawn by ``progress(_:)``.
    static func endProgress() {
        extentdb_set_progress_shown(0)
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }

    /// Writes a line of human output; control characters other than newlines and tabs are escaped, so a
    /// name chosen by an image's author cannot drive the terminal.
    static func print(_ text: String) {
        output.write(TerminalText.escaped(text))
        output.write("\n")
    }

    static func flushStandardOutput() {
        try? output.flush()
    }

    static var standardErrorIsTerminal: Bool { isatty(2) == 1 }
}

/// An output buffer for a file descriptor, flushed in large writes.
///
/// It writes into raw memory with a hand-rolled decimal formatter, because `map --output json` prints
/// hundreds of thousands of lines and must stay far below qemu-img map's time.
struct ByteSink {
    let descriptor: Int32
    private let storage: UnsafeMutablePointer<UInt8>
    private var count = 0
    static let capacity = 1 << 21
    static let flushThreshold = 1 << 20

    init(descriptor: Int32) {
        self.descriptor = descriptor
        storage = .allocate(capacity: Self.capacity)
    }

    mutating func write(_ text: String) {
        var text = text
        text.withUTF8 { write(raw: $0) }
    }

    mutating func write(bytes: some Sequence<UInt8>) {
        for byte in bytes { write(byte: byte) }
    }

    @inline(__always)
    mutating func write(byte: UInt8) {
        if count == Self.capacity { try? flush() }
        storage[count] = byte
        count += 1
    }

    /// Makes room for `bytes` more bytes, so that the writes after it need no flush.
    @inline(__always)
    mutating func reserve(_ bytes: Int) {
        if count + bytes > Self.capacity { try? flush() }
    }

    @inline(__always)
    mutating func write(_ text: StaticString) {
        let length = text.utf8CodeUnitCount
        if count + length > Self.capacity { try? flush() }
        let source = text.utf8Start
        let target = storage + count
        // Short literals: a byte loop beats a call to memmove.
        for index in 0..<length { target[index] = source[index] }
        count += length
    }

    @inline(__always)
    mutating func write(raw: UnsafeBufferPointer<UInt8>) {
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
    @inline(__always)
    mutating func writeDecimal(_ value: UInt64) {
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
    private static let digitPairs: StaticString = "00010203040506070809101112131415161718192021222324252627282930313233343536373839404142434445464748495051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899"

    /// Writes the buffer out if it has grown past the threshold.
    @inline(__always)
    mutating func flushIfNeeded() throws {
        if count >= Self.flushThreshold { try flush() }
    }

    mutating func flush() throws {
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

struct OutputError: Error, CustomStringConvertible {
    var code: Int32
    var description: String { "writing output failed: \(String(cString: strerror(code)))" }
}
