import NIOConcurrencyHelpers

/// Opens once every listener of the service (HTTP, and each NBD socket) is bound, so that the watcher
/// starts scanning only then: a busy port ends the service before any work is done.
final class ListenGate: Sendable {
    private struct State {
        var waiting: Int
        var waiters: [CheckedContinuation<Void, Never>] = []
    }
    private let state: NIOLockedValueBox<State>

    /// A gate that opens after `listeners` calls of ``listenerBound()``.
    init(listeners: Int) {
        state = NIOLockedValueBox(State(waiting: listeners))
    }

    /// True once every listener is bound.
    var isOpen: Bool { state.withLockedValue { $0.waiting <= 0 } }

    /// One listener is bound; the last one opens the gate.
    func listenerBound() {
        let released: [CheckedContinuation<Void, Never>] = state.withLockedValue { state in
            state.waiting -= 1
            guard state.waiting <= 0 else { return [] }
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in released { waiter.resume() }
    }

    /// Returns once the gate is open, or when the task is cancelled (the service is stopping).
    func waitUntilOpen() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let open = state.withLockedValue { state in
                    if state.waiting <= 0 || Task.isCancelled { return true }
                    state.waiters.append(continuation)
                    return false
                }
                if open { continuation.resume() }
            }
        } onCancel: {
            let released = state.withLockedValue { state in
                defer { state.waiters = [] }
                return state.waiters
            }
            for waiter in released { waiter.resume() }
        }
    }
}
