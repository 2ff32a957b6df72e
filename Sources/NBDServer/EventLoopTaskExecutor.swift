import NIOCore

/// Runs a task's nonisolated code on one NIO event loop: the connection's own. A connection's request
/// loop then reads, answers from memory and writes without a thread hop per request (before, every
/// request woke a Swift concurrency thread to read and the event loop again to write: two futex wakes,
/// which made a client mapping a dirty bitmap, hundreds of small requests, twice as slow as qemu-nbd).
/// Work that blocks (file reads, SQLite) still goes to NIO's blocking-I/O pool, never to this loop.
final class EventLoopTaskExecutor: TaskExecutor, @unchecked Sendable {
    private let eventLoop: any EventLoop

    init(_ eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        eventLoop.execute { job.runSynchronously(on: executor) }
    }
}
