/// A structural problem in an image's on-disk bytes, with the field and byte offset that show it.
///
/// Offsets are absolute byte offsets in the file the structure was read from.
public enum FormatError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The structure ends before `field` could be read: it needed `needed` bytes at `offset`.
    case truncated(field: String, offset: UInt64, needed: UInt64, available: UInt64)
    /// A magic number or cookie is not the expected one.
    case badMagic(field: String, found: UInt64, offset: UInt64)
    /// A stored checksum does not match the one computed over the structure.
    case badChecksum(field: String, offset: UInt64, expected: UInt32, computed: UInt32)
    /// A value lies outside what the format or this tool allows.
    case outOfBounds(field: String, offset: UInt64, value: UInt64, limit: UInt64)
    /// A value breaks a rule of the format (alignment, reserved bits, overlap...).
    case invalid(field: String, offset: UInt64, reason: String)
    /// The image uses something this tool does not read.
    case unsupported(field: String, offset: UInt64, feature: String)

    public var description: String {
        switch self {
        case let .truncated(field, offset, needed, available):
            return "\(field) at offset \(offset): truncated (needs \(needed) bytes, \(available) available)"
        case let .badMagic(field, found, offset):
            return "\(field) at offset \(offset): bad magic 0x\(String(found, radix: 16))"
        case let .badChecksum(field, offset, expected, computed):
            return "\(field) at offset \(offset): checksum 0x\(String(expected, radix: 16)) "
                + "does not match computed 0x\(String(computed, radix: 16))"
        case let .outOfBounds(field, offset, value, limit):
            return "\(field) at offset \(offset): value \(value) out of bounds (limit \(limit))"
        case let .invalid(field, offset, reason):
            return "\(field) at offset \(offset): \(reason)"
        case let .unsupported(field, offset, feature):
            return "\(field) at offset \(offset): unsupported \(feature)"
        }
    }
}

extension FormatError {
    /// The field the error is about.
    public var field: String {
        switch self {
        case let .truncated(field, _, _, _), let .badMagic(field, _, _), let .badChecksum(field, _, _, _),
            let .outOfBounds(field, _, _, _), let .invalid(field, _, _), let .unsupported(field, _, _):
            return field
        }
    }

    /// The absolute byte offset of the field in its file.
    public var offset: UInt64 {
        switch self {
        case let .truncated(_, offset, _, _), let .badMagic(_, _, offset), let .badChecksum(_, offset, _, _),
            let .outOfBounds(_, offset, _, _), let .invalid(_, offset, _), let .unsupported(_, offset, _):
            return offset
        }
    }
}
