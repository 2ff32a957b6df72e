import NIOConcurrencyHelpers

/// Counts open connections in all and per client, and refuses one past either cap, so that one client (or
/// a crowd of them) cannot take every descriptor and lock everyone else out.
///
/// Shared by the HTTP service and each NBD listener (each listener has its own, so a flood on TCP leaves
/// the Unix socket's sessions to its own users).
public final class ConnectionLimiter: Sendable {
    /// Connections open at once, from all clients.
    public let total: Int
    /// Connections open at once from one client (its IP address; one key for a Unix socket).
    public let perClient: Int
    private let state = NIOLockedValueBox((open: 0, byClient: [String: Int]()))

    /// Why a connection was refused.
    public enum Refusal: Sendable, Equatable, CustomStringConvertible {
        case total(Int)
        case perClient(Int)

        /// The per-client cap refused it (not the total).
        public var isPerClient: Bool {
            if case .perClient = self { return true }
            return false
        }

        public var description: String {
            switch self {
            case .total(let limit): return "too many connections (\(limit) open, the limit); try again later"
            case .perClient(let limit): return "too many connections from this client (\(limit) open, the limit); try again later"
            }
        }
    }

    public init(total: Int, perClient: Int) {
        self.total = max(1, total)
        self.perClient = max(1, perClient)
    }

    /// Counts a new connection in, or says why not. An admitted connection must be ``release(client:)``d.
    public func admit(client: String) -> Refusal? {
        state.withLockedValue { state in
            guard state.open < total else { return .total(total) }
            let mine = state.byClient[client, default: 0]
            guard mine < perClient else { return .perClient(perClient) }
            state.open += 1
            state.byClient[client] = mine + 1
            return nil
        }
    }

    public func release(client: String) {
        state.withLockedValue { state in
            guard let mine = state.byClient[client] else { return }
            state.open -= 1
            if mine <= 1 { state.byClient.removeValue(forKey: client) } else { state.byClient[client] = mine - 1 }
        }
    }

    /// Connections open now.
    public var openCount: Int { state.withLockedValue { $0.open } }
}
