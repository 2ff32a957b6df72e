import ArgumentParser

/// A size or offset on the command line, with qemu-img's suffixes: `B` (bytes), `K`, `M`, `G`, `T`, `P`, `E`
/// (powers of 1024, either case), e.g. `--offset 1M`, `--length 2G`, `--length 1.5G`. A plain number is bytes.
struct ByteCount: ExpressibleByArgument, CustomStringConvertible, Sendable, Equatable {
    var value: UInt64

    /// The number of bytes, as `--help` shows a default: `(default: 0)`.
    var description: String { String(value) }

    var defaultValueDescription: String { description }

    init(_ value: UInt64) { self.value = value }

    init?(argument: String) {
        guard let parsed = Self.parse(argument) else { return nil }
        value = parsed
    }

    static func parse(_ text: String) -> UInt64? {
        guard let last = text.last else { return nil }
        let exponents: [Character: UInt64] = ["b": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5, "e": 6]
        var number = Substring(text)
        var exponent: UInt64 = 0
        if let found = exponents[Character(last.lowercased())], !last.isNumber {
            exponent = found
            number = number.dropLast()
        }
        let multiplier = (0..<exponent).reduce(UInt64(1)) { result, _ in result << 10 }
        if let whole = UInt64(number) {
            let (product, overflow) = whole.multipliedReportingOverflow(by: multiplier)
            return overflow ? nil : product
        }
        // A decimal fraction (1.5G) is accepted with a suffix, as qemu-img does; it must come out whole.
        guard exponent > 0, let decimal = Double(number), decimal >= 0 else { return nil }
        let bytes = decimal * Double(multiplier)
        guard bytes < 1.8e19, bytes == bytes.rounded() else { return nil }
        return UInt64(bytes)
    }

    static var defaultCompletionKind: CompletionKind { .default }
}
