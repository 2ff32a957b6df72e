import NIOCore

#if canImport(Glibc)
    import Glibc
#endif

/// Who a connection's client is, for the access log and the per-client limits: its IP address, or, on a
/// Unix socket (where the socket's permissions are the authentication), the user the kernel says opened
/// it (`SO_PEERCRED`, socket(7)): `uid:N`. "local" when neither is known.
public enum ClientIdentity {
    /// `struct ucred` (socket(7)): the peer's pid, uid and gid when it connected.
    struct PeerCredentials: Sendable {
        var pid: Int32 = 0
        var uid: UInt32 = 0
        var gid: UInt32 = 0
    }

    /// The key of `channel`'s client. Asks the socket on the channel's event loop.
    public static func key(of channel: any Channel) async -> String {
        if let address = channel.remoteAddress?.ipAddress { return address }
        guard let provider = channel as? any SocketOptionProvider else { return "local" }
        let future: EventLoopFuture<PeerCredentials> = provider.unsafeGetSocketOption(
            level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(SO_PEERCRED))
        guard let credentials = try? await future.get() else { return "local" }
        return "uid:\(credentials.uid)"
    }
}
