import Foundation
import ImageFormats

/// Packs a run of consecutive extents into a compact blob and back.
///
/// Extents in a chunk are contiguous, so starts are implied by the chunk start and the lengths. Each
/// extent is: LEB128 `length`, a flags byte, LEB128 `depth`, and when it has a host offset, the zigzag
/// LEB128 difference between that offset and the end of the previous extent's host range (host offsets
/// usually advance, so this is a byte or two).
///
/// ```
/// flags: bit 0 present · bit 1 zero · bit 2 data · bit 3 compressed · bit 4 has offset
///        bit 5 has compressed descriptor (then LEB128 host offset, LEB128 byte count)
///        bit 6 host zero (the host file system reads the stored range as zeros; ``Extent/storedZero``)
/// ```
/// Blobs written before bit 6 existed have it clear: their extents carry no host-zero knowledge until the
/// image is rescanned.
public enum ExtentRunCodec {
    static let present: UInt8 = 1 << 0
    static let zero: UInt8 = 1 << 1
    static let data: UInt8 = 1 << 2
    static let compressed: UInt8 = 1 << 3
    static let hasOffset: UInt8 = 1 << 4
    static let hasDescriptor: UInt8 = 1 << 5
    static let storedZero: UInt8 = 1 << 6

    /// Guest offsets are SQLite integers in the index: no extent ends past `Int64.max`.
    public static let maximumGuestEnd = UInt64(Int64.max)

    public static func encode(_ extents: ArraySlice<Extent>) -> Data {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(extents.count * 6)
        var predicted: UInt64 = 0
        for extent in extents {
            appendVarint(extent.length, to: &bytes)
            var flags: UInt8 = 0
            if extent.present { flags |= present }
            if extent.zero { flags |= zero }
            if extent.data { flags |= data }
            if extent.compressed { flags |= compressed }
            if extent.offset != nil { flags |= hasOffset }
            if extent.compressedCluster != nil { flags |= hasDescriptor }
            if extent.storedZero { flags |= storedZero }
            bytes.append(flags)
            appendVarint(UInt64(extent.depth), to: &bytes)
            if let offset = extent.offset {
                let delta = Int64(bitPattern: offset &- predicted)
                appendVarint(UInt64(bitPattern: (delta << 1) ^ (delta >> 63)), to: &bytes)
                predicted = offset &+ extent.length
            }
            if let descriptor = extent.compressedCluster {
                appendVarint(descriptor.hostOffset, to: &bytes)
                appendVarint(UInt64(descriptor.byteCount), to: &bytes)
            }
        }
        return Data(bytes)
    }

    /// Decodes `count` extents starting at guest offset `start`, calling `body` for each.
    ///
    /// Every field is checked before use: a varint longer than 64 bits, a zero length, a depth wider than 32
    /// bits, a compressed byte count wider than 32 bits, or extents that end past ``maximumGuestEnd``.
    ///
    /// - Parameters:
    ///   - skip: extents ending at or before this guest offset (before a window's start) are decoded and
    ///     checked like the others but not handed to `body`.
    ///   - stop: when given, decoding ends before the first extent starting at or past this guest offset (a
    ///     window's end: the rest of the chunk is neither decoded nor checked).
    /// - Throws: ``StoreError/corruptChunk(_:)`` naming the extent, the field and its byte position in the
    ///   blob when the blob is malformed (a damaged index, never image input).
    public static func decode(
        _ blob: some ContiguousBytes, start: UInt64, count: Int, skippingTo skip: UInt64 = 0, until stop: UInt64? = nil,
        _ body: (Extent) throws -> Void
    ) throws {
        try decode(blob, from: ResumePoint(start: start), count: count, skippingTo: skip, until: stop, body)
    }

    /// Where decoding can resume inside a blob: an extent's index, guest offset and first byte, and the host
    /// offset its delta is taken from. Only points a decode of the same blob reported are valid.
    public struct ResumePoint: Sendable, Equatable {
        public var index = 0
        public var guest: UInt64
        public var position = 0
        public var predicted: UInt64 = 0

        /// The first extent of a blob whose extents start at guest offset `start`.
        public init(start: UInt64) {
            guest = start
        }
    }

    /// Like ``decode(_:start:count:skippingTo:until:_:)``, from `point` (the extents before it are neither
    /// decoded nor checked), reporting to `mark` the resume point of every extent whose index is a multiple
    /// of `interval` (when positive) before decoding it.
    public static func decode(
        _ blob: some ContiguousBytes, from point: ResumePoint, count: Int, skippingTo skip: UInt64 = 0, until stop: UInt64? = nil,
        markingEvery interval: Int = 0, mark: (ResumePoint) -> Void = { _ in }, _ body: (Extent) throws -> Void
    ) throws {
        guard count >= 0 else { throw StoreError.corruptChunk("extent count \(count) is negative") }
        guard point.index >= 0, point.index <= count, point.position >= 0 else {
            throw StoreError.corruptChunk("resume point at extent \(point.index), byte \(point.position) is outside the chunk")
        }
        try blob.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            var position = point.position
            var guest = point.guest
            var predicted = point.predicted
            for index in point.index..<count {
                if let stop, guest >= stop { break }
                if interval > 0, index % interval == 0 {
                    var here = ResumePoint(start: guest)
                    here.index = index
                    here.position = position
                    here.predicted = predicted
                    mark(here)
                }
                func damaged(_ field: String, at fieldPosition: Int, _ reason: String) -> StoreError {
                    .corruptChunk("extent \(index) \(field) at blob byte \(fieldPosition): \(reason)")
                }
                let lengthPosition = position
                let length = try readVarint(raw, &position, field: "length", extent: index)
                guard length > 0 else { throw damaged("length", at: lengthPosition, "zero") }
                let (end, overflow) = guest.addingReportingOverflow(length)
                guard !overflow, end <= maximumGuestEnd else {
                    throw damaged(
                        "length", at: lengthPosition,
                        "\(length) bytes from guest offset \(guest) end past \(maximumGuestEnd), the largest disk the index holds")
                }
                guard position < raw.count else { throw damaged("flags", at: position, "past the end of the blob (\(raw.count) bytes)") }
                let flags = raw[position]
                position += 1
                let depthPosition = position
                let depth = try readVarint(raw, &position, field: "depth", extent: index)
                guard depth <= UInt64(UInt32.max) else { throw damaged("depth", at: depthPosition, "\(depth) is wider than 32 bits") }
                var offset: UInt64?
                if flags & hasOffset != 0 {
                    let zigzag = try readVarint(raw, &position, field: "host offset", extent: index)
                    let delta = Int64(bitPattern: zigzag >> 1) ^ -Int64(bitPattern: zigzag & 1)
                    let value = predicted &+ UInt64(bitPattern: delta)
                    offset = value
                    predicted = value &+ length
                }
                var descriptor: Extent.CompressedCluster?
                if flags & hasDescriptor != 0 {
                    let host = try readVarint(raw, &position, field: "compressed host offset", extent: index)
                    let countPosition = position
                    let count = try readVarint(raw, &position, field: "compressed byte count", extent: index)
                    guard count <= UInt64(UInt32.max) else {
                        throw damaged("compressed byte count", at: countPosition, "\(count) is wider than 32 bits")
                    }
                    descriptor = .init(hostOffset: host, byteCount: UInt32(count))
                }
                if end <= skip {
                    guest = end
                    continue
                }
                try body(
                    Extent(
                        start: guest, length: length, depth: UInt32(depth), present: flags & present != 0,
                        zero: flags & zero != 0, data: flags & data != 0, compressed: flags & compressed != 0,
                        offset: offset, compressedCluster: descriptor, storedZero: flags & storedZero != 0))
                guest = end
            }
        }
    }

    @inline(__always)
    static func appendVarint(_ value: UInt64, to bytes: inout [UInt8]) {
        var value = value
        while value >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        bytes.append(UInt8(value))
    }

    @inline(__always)
    static func readVarint(_ raw: UnsafeRawBufferPointer, _ position: inout Int, field: String, extent: Int) throws -> UInt64 {
        let start = position
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard position < raw.count else {
                throw StoreError.corruptChunk("extent \(extent) \(field) at blob byte \(start): varint runs past the end of the blob")
            }
            guard shift < 64 else {
                throw StoreError.corruptChunk("extent \(extent) \(field) at blob byte \(start): varint longer than 64 bits")
            }
            let byte = raw[position]
            position += 1
            value |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return value }
            shift += 7
        }
    }
}
