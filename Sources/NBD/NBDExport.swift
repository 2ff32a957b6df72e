/// What the server tells clients about its one export (§NBD_INFO_EXPORT, §NBD_INFO_BLOCK_SIZE).
public struct NBDExport: Sendable, Equatable {
    public var name: String
    public var size: UInt64
    /// Transmission flags; `hasFlags` is always set when they are sent.
    public var flags: UInt16
    public var minimumBlockSize: UInt32
    public var preferredBlockSize: UInt32
    public var maximumBlockSize: UInt32
    /// Metadata context names the server can answer, in id order (ids start at 1).
    public var metaContexts: [String]

    /// A read-only export as `qemu-nbd -r` offers it: `READ_ONLY` and `CAN_MULTI_CONN`, any byte
    /// alignment, 4 KiB preferred, at most 32 MiB a request.
    public init(name: String, size: UInt64, metaContexts: [String]) {
        self.name = name
        self.size = size
        flags = NBDTransmissionFlags.hasFlags | NBDTransmissionFlags.readOnly | NBDTransmissionFlags.canMultiConn
        minimumBlockSize = 1
        preferredBlockSize = 4096
        maximumBlockSize = NBDLimits.maximumPayload
        self.metaContexts = metaContexts
    }

    /// The id of a context name (1-based), or nil if the server does not offer it.
    public func contextID(named name: String) -> UInt32? {
        metaContexts.firstIndex(of: name).map { UInt32($0 + 1) }
    }

    /// The context name of an id.
    public func contextName(id: UInt32) -> String? {
        guard id >= 1, id <= UInt32(metaContexts.count) else { return nil }
        return metaContexts[Int(id - 1)]
    }

    /// Contexts a `NBD_OPT_LIST_META_CONTEXT` query names: all of them for no query, all of a namespace
    /// for `"ns:"`, and exact names otherwise (§Metadata querying).
    public func contexts(listing queries: [String]) -> [String] {
        guard !queries.isEmpty else { return metaContexts }
        var found: [String] = []
        for query in queries {
            let matches = query.hasSuffix(":") ? metaContexts.filter { $0.hasPrefix(query) } : metaContexts.filter { $0 == query }
            for name in matches where !found.contains(name) { found.append(name) }
        }
        return found
    }
}
