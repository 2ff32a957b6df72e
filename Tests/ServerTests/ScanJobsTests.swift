import AllocationIndex
import Dispatch
import Foundation
import Logging
import NIOConcurrencyHelpers
import Scanner
import Testing

@testable import Server

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
}
