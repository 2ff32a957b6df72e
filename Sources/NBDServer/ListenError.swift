import NIOCore

#if canImport(Glibc)
    import Glibc
#endif

/// A listener that could not be opened: `cannot listen on 127.0.0.1:8080: address already in use`.
public struct ListenError: Error, Sendable, CustomStringConvertible {
    /// The address as the user wrote it (`HOST:PORT`, `[V6]:PORT` or `unix:PATH`).
    public let address: String
    /// The system's error number (`EADDRINUSE`...).
    public let code: Int32

    public init(address: String, code: Int32) {
        self.address = address
        self.code = code
    }

    /// The error as a failed bind reports it, or nil when `error` is not one.
    public init?(address: String, bindError error: any Error) {
        guard let error = error as? IOError else { return nil }
        self.init(address: address, code: error.errnoCode)
    }

    public var description: String {
        let reason = String(cString: strerror(code))
        return "cannot listen on \(address): \(reason.prefix(1).lowercased() + reason.dropFirst())"
    }
}
