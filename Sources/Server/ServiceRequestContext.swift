import Hummingbird
import NIOCore

/// Hummingbird's basic request context plus the client's address, which the per-client export share needs.
public struct ServiceRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The peer of the connection (nil in router tests, which have no socket).
    public let remoteAddress: SocketAddress?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }

    /// The key the per-client limits count under: the client's IP address.
    var clientKey: String { remoteAddress?.ipAddress ?? "local" }
}
