/// What a transmission request asks the server to do, decided from the request alone (§Request types).
public enum NBDAction: Sendable, Equatable {
    /// Read `length` bytes at `offset` (bounds already checked).
    case read(offset: UInt64, length: UInt32)
    /// Describe `[offset, offset + length)` in each selected context.
    case blockStatus(offset: UInt64, length: UInt32, requestOne: Bool)
    /// Reply success with no data.
    case succeed
    /// Reply this error.
    case fail(NBDError, String)
    /// `NBD_CMD_DISC`: close after the replies already due; no reply.
    case disconnect
}

/// Classifies requests for a read-only export: reads and block status within bounds are served, writes,
/// trims and write-zeroes get `EPERM` (§NBD_CMD_WRITE: a read-only export answers EPERM), anything
/// else `EINVAL`.
public enum NBDTransmission {
    public static func action(for request: NBDRequest, export: NBDExport, hasContexts: Bool) -> NBDAction {
        switch request.type {
        case NBDCommand.read:
            if let problem = rangeProblem(request, export: export, limit: export.maximumBlockSize) { return .fail(.invalid, problem) }
            return .read(offset: request.offset, length: request.length)
        case NBDCommand.blockStatus:
            guard hasContexts else { return .fail(.invalid, "no metadata context was negotiated") }
            if let problem = rangeProblem(request, export: export, limit: UInt32.max) { return .fail(.invalid, problem) }
            return .blockStatus(
                offset: request.offset, length: request.length, requestOne: request.flags & NBDCommandFlags.requestOne != 0)
        case NBDCommand.write, NBDCommand.trim, NBDCommand.writeZeroes:
            return .fail(.perm, "the export is read-only")
        case NBDCommand.flush:
            // Nothing is ever written, so nothing needs flushing.
            return .succeed
        case NBDCommand.disconnect:
            return .disconnect
        default:
            return .fail(.invalid, "command \(request.type) is not supported")
        }
    }

    /// Why a request's range is refused: empty, longer than `limit`, or past the end of the export.
    static func rangeProblem(_ request: NBDRequest, export: NBDExport, limit: UInt32) -> String? {
        if request.length == 0 { return "zero-length request" }
        if request.length > limit { return "request of \(request.length) bytes exceeds \(limit)" }
        let (end, overflow) = request.offset.addingReportingOverflow(UInt64(request.length))
        if overflow || end > export.size { return "range \(request.offset)+\(request.length) is past the end (\(export.size))" }
        return nil
    }
}

/// Collects block status runs into descriptors for one context: adjacent runs with equal flags merge,
/// at most `limit` descriptors (one with `NBD_CMD_FLAG_REQ_ONE`), each within 32 bits
/// (§NBD_REPLY_TYPE_BLOCK_STATUS).
public struct NBDDescriptorBuilder: Sendable {
    public private(set) var descriptors: [NBDBlockDescriptor] = []
    public let limit: Int
    /// Bytes described so far.
    public private(set) var covered: UInt64 = 0

    public init(limit: Int) {
        self.limit = max(limit, 1)
    }

    /// True when no further run can be added as a new descriptor.
    public var isFull: Bool { descriptors.count >= limit }

    /// Adds a run of `length` bytes with `flags`; returns false when not all of it fits (it would need a
    /// descriptor past the limit): the descriptors then end where the room did.
    @discardableResult
    public mutating func add(length: UInt64, flags: UInt32) -> Bool {
        var remaining = length
        while remaining > 0 {
            if let last = descriptors.last, last.flags == flags, last.length < UInt32.max {
                let room = UInt64(UInt32.max - last.length)
                let taken = min(room, remaining)
                descriptors[descriptors.count - 1].length += UInt32(taken)
                remaining -= taken
                covered += taken
                continue
            }
            guard descriptors.count < limit else { return false }
            let taken = min(UInt64(UInt32.max), remaining)
            descriptors.append(NBDBlockDescriptor(length: UInt32(taken), flags: flags))
            remaining -= taken
            covered += taken
        }
        return true
    }
}
