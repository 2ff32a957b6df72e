import AllocationIndex
import Dispatch
import Foundation
import Logging
import NIOConcurrencyHelpers
import Scanner
import Testing

@testable import Server
@testable import TestSupport

/// The scan queue: bounded, fair between directories, and never forgetting a job before it ends.
@Suite(.serialized) struct ScanJobsTests {
    func makeJobs(maximumUnfinished: Int, gate: DispatchSemaphore) throws -> ScanJobs {
        // The scans fail (no such files); their warnings would only fill the test log.
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        return ScanJobs(
            indexer: ImageIndexer(store: try IndexStore()), concurrency: 1, maximumUnfinished: maximumUnfinished, metrics: .shared,
            logger: logger, beforeEachScan: { gate.wait() })
    }

    func waitUntil(_ condition: () -> Bool) {
        for _ in 0..<2000 where !condition() { usleep(5000) }
    }

    @Test("past the queue limit a scan is refused with 503 until the queue drains")
    func queueLimit() throws {
        let gate = DispatchSemaphore(value: 0)
        let jobs = try makeJobs(maximumUnfinished: 3, gate: gate)
        for index in 0..<3 { try jobs.submit(path: "/nonexistent/a/\(index).qcow2") }
        do {
            try jobs.submit(path: "/nonexistent/a/3.qcow2")
            Issue.record("a fourth scan was queued past the limit of 3")
        } catch let error as APIError {
            #expect(error.status.code == 503)
        }
        for _ in 0..<3 { gate.signal() }
        waitUntil { jobs.activeCount == 0 }
        #expect(jobs.activeCount == 0)
        gate.signal()
        #expect(try jobs.submit(path: "/nonexistent/a/4.qcow2").state == .queued)
    }

    @Test("an unfinished job is never dropped, however many come after it; finished ones are, oldest first")
    func retention() throws {
        let gate = DispatchSemaphore(value: 0)
        let jobs = try makeJobs(maximumUnfinished: 5000, gate: gate)
        let first = try jobs.submit(path: "/nonexistent/held.qcow2")
        var last = first
        for index in 0..<(ScanJobs.retained + 100) { last = try jobs.submit(path: "/nonexistent/many/\(index).qcow2") }
        // Nothing has run: every job, the first included, is still there.
        #expect(jobs.job(id: first.id)?.state == .queued)
        for _ in 0..<(ScanJobs.retained + 101) { gate.signal() }
        waitUntil { jobs.activeCount == 0 }
        #expect(jobs.job(id: last.id)?.state == .failed)
        #expect(jobs.job(id: first.id) == nil, "the oldest finished job is the one dropped")
    }

    @Test("workers take directories in turn: one directory's backlog does not delay another's scan")
    func fairness() throws {
        let gate = DispatchSemaphore(value: 0)
        let jobs = try makeJobs(maximumUnfinished: 100, gate: gate)
        let order = NIOLockedValueBox([String]())
        let done: @Sendable (ScanJobs.Job) -> Void = { job in order.withLockedValue { $0.append(job.path) } }
        for index in 0..<10 { try jobs.submit(path: "/nonexistent/busy/\(index).qcow2", completion: done) }
        try jobs.submit(path: "/nonexistent/quiet/0.qcow2", completion: done)
        for _ in 0..<11 { gate.signal() }
        waitUntil { order.withLockedValue { $0.count } == 11 }
        let ran = order.withLockedValue { $0 }
        #expect(ran.firstIndex(of: "/nonexistent/quiet/0.qcow2") == 1, "\(ran)")
    }

    @Test("a queued scan cancelled by a client ends cancelled and never runs")
    func cancelQueued() throws {
        let gate = DispatchSemaphore(value: 0)
        let jobs = try makeJobs(maximumUnfinished: 10, gate: gate)
        let ran = NIOLockedValueBox([String]())
        let first = try jobs.submit(path: "/nonexistent/c/0.qcow2") { job in ran.withLockedValue { $0.append(job.path) } }
        let second = try jobs.submit(path: "/nonexistent/c/1.qcow2") { job in ran.withLockedValue { $0.append(job.path) } }
        #expect(jobs.cancel(id: second.id)?.state == .cancelled)
        #expect(jobs.cancel(id: "scan-none") == nil)
        gate.signal()
        gate.signal()
        waitUntil { jobs.activeCount == 0 && ran.withLockedValue { $0.count } == 1 }
        #expect(ran.withLockedValue { $0 } == [first.path])
        #expect(jobs.job(id: second.id)?.error?.contains("cancelled") == true)
    }

    /// Keeps every log message, for tests that check what the service says.
    struct RecordingLogHandler: LogHandler {
        let messages: NIOLockedValueBox<[(Logger.Message, Logger.Metadata?)]>
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .info
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            messages.withLockedValue { $0.append((event.message, event.metadata)) }
        }
    }

    @Test("a scan still running when the shutdown's time runs out is named in the log, stopped, and leaves the index as it was")
    func cutByShutdown() throws {
        let directory = try TemporaryDirectory(prefix: "extentdb-cut")
        defer { directory.cleanup() }
        // 16 GiB of 4 KiB clusters with every table preallocated: thousands of L2 tables, so the scan runs
        // long enough (seconds in a debug build) to be cut.
        let image = directory.path("big.qcow2")
        _ = try runProcess(
            URL(fileURLWithPath: "/usr/bin/qemu-img"),
            ["create", "-q", "-f", "qcow2", "-o", "cluster_size=4096,preallocation=metadata", image, "16G"])
        let messages = NIOLockedValueBox<[(Logger.Message, Logger.Metadata?)]>([])
        let logger = Logger(label: "test") { _ in RecordingLogHandler(messages: messages) }
        let store = try IndexStore()
        let jobs = ScanJobs(indexer: ImageIndexer(store: store), concurrency: 1, metrics: .shared, logger: logger)
        let job = try jobs.submit(path: image)
        waitUntil { jobs.job(id: job.id)?.state == .running }
        try #require(jobs.job(id: job.id)?.state == .running)
        jobs.cutRunning()
        waitUntil { jobs.activeCount == 0 }
        let ended = try #require(jobs.job(id: job.id))
        #expect(ended.state == .cancelled, "\(ended)")
        let cut = messages.withLockedValue { $0 }.filter { $0.0.description == "scan cut by shutdown" }
        #expect(cut.count == 1)
        #expect(cut.first?.1?["path"]?.description == image)
        #expect(cut.first?.1?["result"]?.description == "cut")
        #expect(try store.latestScan(path: image) == nil, "the cut scan rolled back")
    }
}
