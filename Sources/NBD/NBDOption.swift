import NIOCore

/// Option codes a client sends during option haggling (§Option types).
public enum NBDOptionCode {
    public static let exportName: UInt32 = 1
    public static let abort: UInt32 = 2
    public static let list: UInt32 = 3
    public static let startTLS: UInt32 = 5
    public static let info: UInt32 = 6
    public static let go: UInt32 = 7
    public static let structuredReply: UInt32 = 8
    public static let listMetaContext: UInt32 = 9
    public static let setMetaContext: UInt32 = 10
    public static let extendedHeaders: UInt32 = 11
}

/// Information types a client may request with `NBD_OPT_INFO`/`NBD_OPT_GO` (§Option reply types, NBD_REP_INFO).
public enum NBDInfoType {
    public static let export: UInt16 = 0
    public static let name: UInt16 = 1
    public static let description: UInt16 = 2
    public static let blockSize: UInt16 = 3
}

/// One option as the client sent it:
///
/// ```
///  0      8       12      16
///  +------+-------+-------+--------------+
///  | IHAVEOPT     | code  | length| data (length bytes)
///  +------+-------+-------+--------------+
/// ```
public struct NBDOption: Sendable, Equatable {
    public var code: UInt32
    public var data: ByteBuffer

    public init(code: UInt32, data: ByteBuffer) {
        self.code = code
        self.data = data
    }

    /// Writes the option as a client would (tests and tools use it).
    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeInteger(NBDMagic.option)
        buffer.writeInteger(code)
        buffer.writeInteger(UInt32(data.readableBytes))
        buffer.writeImmutableBuffer(data)
    }
}

/// Why an option's data cannot be understood: answered `NBD_REP_ERR_INVALID` (§Option haggling).
public struct NBDInvalidOption: Error, Sendable, Equatable {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
}

/// The data of `NBD_OPT_INFO` and `NBD_OPT_GO`: an export name and the information types wanted.
///
/// ```
/// 32-bit name length | name | 16-bit request count | count x 16-bit info type
/// ```
public struct NBDExportQuery: Sendable, Equatable {
    public var name: String
    public var requests: [UInt16]

    public init(name: String, requests: [UInt16]) {
        self.name = name
        self.requests = requests
    }

    /// Parses the option data; every length is checked against what is left.
    public init(parsing data: ByteBuffer) throws(NBDInvalidOption) {
        var data = data
        name = try data.readNBDString(field: "export name")
        guard let count = data.readInteger(as: UInt16.self) else { throw NBDInvalidOption("missing information request count") }
        guard data.readableBytes == Int(count) * 2 else {
            throw NBDInvalidOption("\(count) information requests need \(Int(count) * 2) bytes, \(data.readableBytes) sent")
        }
        var requests: [UInt16] = []
        requests.reserveCapacity(Int(count))
        while let request = data.readInteger(as: UInt16.self) { requests.append(request) }
        self.requests = requests
    }

    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeNBDString(name)
        buffer.writeInteger(UInt16(requests.count))
        for request in requests { buffer.writeInteger(request) }
    }
}

/// The data of `NBD_OPT_LIST_META_CONTEXT` and `NBD_OPT_SET_META_CONTEXT` (§Metadata querying).
///
/// ```
/// 32-bit name length | export name | 32-bit query count | count x (32-bit length | query)
/// ```
public struct NBDMetaContextQuery: Sendable, Equatable {
    public var exportName: String
    public var queries: [String]

    public init(exportName: String, queries: [String]) {
        self.exportName = exportName
        self.queries = queries
    }

    public init(parsing data: ByteBuffer) throws(NBDInvalidOption) {
        var data = data
        exportName = try data.readNBDString(field: "export name")
        guard let count = data.readInteger(as: UInt32.self) else { throw NBDInvalidOption("missing query count") }
        // Each query takes at least its 4-byte length: a count larger than that bound is a lie.
        guard UInt64(count) * 4 <= UInt64(data.readableBytes) else {
            throw NBDInvalidOption("\(count) queries cannot fit in \(data.readableBytes) bytes")
        }
        var queries: [String] = []
        for _ in 0..<count { queries.append(try data.readNBDString(field: "query")) }
        guard data.readableBytes == 0 else { throw NBDInvalidOption("\(data.readableBytes) bytes after the last query") }
        self.queries = queries
    }

    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeNBDString(exportName)
        buffer.writeInteger(UInt32(queries.count))
        for query in queries { buffer.writeNBDString(query) }
    }
}

extension ByteBuffer {
    /// Reads a 32-bit length and that many bytes of UTF-8, bounded by `NBDLimits.maximumStringLength`.
    mutating func readNBDString(field: String) throws(NBDInvalidOption) -> String {
        guard let length = readInteger(as: UInt32.self) else { throw NBDInvalidOption("missing \(field) length") }
        guard length <= NBDLimits.maximumStringLength else { throw NBDInvalidOption("\(field) of \(length) bytes is too long") }
        guard let bytes = readBytes(length: Int(length)) else {
            throw NBDInvalidOption("\(field) of \(length) bytes, \(readableBytes) sent")
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    mutating func writeNBDString(_ string: String) {
        writeInteger(UInt32(string.utf8.count))
        writeString(string)
    }
}
