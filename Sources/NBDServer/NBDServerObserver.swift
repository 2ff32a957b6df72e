/// What a server reports as it works, for a caller that keeps figures (the service's `/metrics`). Called on
/// the connections' threads; implementations must be cheap and thread-safe.
public protocol NBDServerObserver: Sendable {
    /// A client connected (before negotiation).
    func connectionOpened()
    /// A client's connection ended, however it ended.
    func connectionClosed()
    /// A `READ` was answered with `bytes` bytes of the guest disk (data and holes alike).
    func read(bytes: Int)
    /// A `BLOCK_STATUS` request was answered from the index.
    func blockStatusAnswered()
    /// A request failed with an NBD error (`EIO` for a changed image, `EINVAL`, `EPERM` for writes...).
    func requestFailed()
    /// A limit refused or ended a connection: `sessions`, `sessions_per_client`, `idle`.
    func limitHit(_ limit: String)
}

extension NBDServerObserver {
    public func limitHit(_ limit: String) {}
}
