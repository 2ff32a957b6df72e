import Foundation

/// The first error any of several worker threads hit; the others check `isSet` to stop early.
public final class FirstError: @unchecked Sendable {
    private let lock = NSLock()
    private var first: (any Error)?

    public init() {}

    public var isSet: Bool { lock.withLock { first != nil } }
    public var error: (any Error)? { lock.withLock { first } }

    public func record(_ error: any Error) {
        lock.withLock { if first == nil { first = error } }
    }
}
