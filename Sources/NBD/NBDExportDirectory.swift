/// The exports a server offers, as the negotiation asks for them by name (§NBD_OPT_LIST, §NBD_OPT_INFO
/// and NBD_OPT_GO, §NBD_OPT_EXPORT_NAME).
///
/// The negotiation stays pure: it only calls these two methods. A server with one export answers from a
/// value (``NBDSingleExport``); one serving a directory tree may look names up in its index, so callers
/// run the negotiation off the event loop.
public protocol NBDExportDirectory: Sendable {
    /// The names `NBD_OPT_LIST` announces, in order.
    func exportNames() -> [String]
    /// What to tell a client about the export `name`, or why there is none (sent as `NBD_REP_ERR_UNKNOWN`).
    func export(named name: String) -> Result<NBDExport, NBDExportUnavailable>
}

/// Why a named export cannot be served: a message for the client's user.
public struct NBDExportUnavailable: Error, Sendable, Equatable {
    public var message: String

    public init(_ message: String) {
        self.message = message
    }
}

/// A server's one export, named as it is (`""` by default, as qemu-nbd).
public struct NBDSingleExport: NBDExportDirectory {
    public let export: NBDExport

    public init(_ export: NBDExport) {
        self.export = export
    }

    public func exportNames() -> [String] { [export.name] }

    public func export(named name: String) -> Result<NBDExport, NBDExportUnavailable> {
        name == export.name ? .success(export) : .failure(NBDExportUnavailable("no export named '\(name)'"))
    }
}
