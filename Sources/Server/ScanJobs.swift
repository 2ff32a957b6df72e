import AllocationIndex
import Catalog
import Foundation
import ImageIO
import Logging
import NIOConcurrencyHelpers
import NIOPosix
import Scanner

/// Background scans: queued by `POST /v1/scans` (and the watcher), run a few at a time on their own
/// threads, their state kept for `GET /v1/scans/{id}`.
///
/// Each scan is recorded in one index transaction, so a scan stopped part-way leaves the index as it was.
public final class ScanJobs: Sendable {
    /// A job as the API shows it.
    public struct Job: Codable, Sendable {
        public enum State: String, Codable, Sendable { case queued, running, succeeded, failed, cancelled }
        public var id: String
        public var path: String
        public var state: State
        /// 0 when queued; while running, the share of the chain's metadata tables read (qcow2 L1 entries
        /// and their L2 tables, VHD sector bitmaps) scaled to 0.9, the rest being the index write; 1 when it
        /// ends. A chain's backing layers add their tables when the scan reaches them, and the figure never
        /// goes backwards.
        public var progress: Double
        public var force: Bool
        /// Also make the scan's chunk digests (`"digests": true`).
        public var digests: Bool = false
        public var imageId: Int64?
        /// `scanned`, or `unchanged` when the index was already fresh.
        public var action: String?
        public var extentCount: Int64?
        public var error: String?
        public var queuedAt: Double
        public var finishedAt: Double?

        enum CodingKeys: String, CodingKey {
            case id, path, state, progress, force, digests, action, error
            case imageId = "image_id"
            case extentCount = "extent_count"
            case queuedAt = "queued_at"
            case finishedAt = "finished_at"
        }
    }

    let indexer: ImageIndexer
    let metrics: ServiceMetrics
    let logger: Logger
    /// Jobs queued or running at once; past it ``submit(path:force:completion:)`` refuses (503).
    let maximumUnfinished: Int
    private let pool: NIOThreadPool
    private let state = NIOLockedValueBox(Queue())
    /// What running scans have read, by job id.
    private let running = NIOLockedValueBox([String: ScanProgress]())
    /// Share of a job's progress given to reading the tables; recording the scan is the rest.
    static let readingShare = 0.9
    /// Finished jobs kept for `GET`; the oldest finished ones beyond it are dropped (never an unfinished one).
    static let retained = 1000

    /// A queued scan waiting for a worker.
    private struct Pending {
        var id: String
        var path: String
        var force: Bool
        var digests = false
        var completion: (@Sendable (Job) -> Void)?
    }

    /// The jobs, and the queued ones by directory: workers take directories in turn, so one directory full of
    /// slow images (or hostile ones that take the time limit each) cannot make every other wait behind it.
    private struct Queue {
        var jobs: [String: Job] = [:]
        var finished: [String] = []
        var waiting: [String: [Pending]] = [:]
        var turns: [String] = []
        var counter = 0
        var unfinished = 0

        mutating func next() -> Pending? {
            guard !turns.isEmpty else { return nil }
            let directory = turns.removeFirst()
            guard var queue = waiting[directory], !queue.isEmpty else { return next() }
            let job = queue.removeFirst()
            if queue.isEmpty {
                waiting.removeValue(forKey: directory)
            } else {
                waiting[directory] = queue
                turns.append(directory)
            }
            return job
        }
    }

    /// Runs on the worker before each scan (tests hold the workers with it to see the queue).
    let beforeEachScan: (@Sendable () -> Void)?

    init(
        indexer: ImageIndexer, concurrency: Int, maximumUnfinished: Int = 1000, metrics: ServiceMetrics, logger: Logger,
        beforeEachScan: (@Sendable () -> Void)? = nil
    ) {
        self.beforeEachScan = beforeEachScan
        self.indexer = indexer
        self.metrics = metrics
        self.logger = logger
        self.maximumUnfinished = max(1, maximumUnfinished)
        pool = NIOThreadPool(numberOfThreads: max(1, concurrency))
        pool.start()
    }

    /// Queues a scan of the canonical `path` and returns the job as queued.
    ///
    /// - Throws: ``APIError`` 503 when ``maximumUnfinished`` jobs are queued or running.
    @discardableResult
    public func submit(path: String, force: Bool = false, digests: Bool = false, completion: (@Sendable (Job) -> Void)? = nil) throws -> Job
    {
        let directory = PathResolver.directory(of: path)
        let job: Job? = state.withLockedValue { queue in
            guard queue.unfinished < maximumUnfinished else { return nil }
            queue.counter += 1
            queue.unfinished += 1
            var job = Job(
                id: "scan-\(queue.counter)", path: path, state: .queued, progress: 0, force: force, queuedAt: Date().timeIntervalSince1970)
            job.digests = digests
            queue.jobs[job.id] = job
            if queue.waiting[directory] == nil { queue.turns.append(directory) }
            queue.waiting[directory, default: []].append(
                Pending(id: job.id, path: path, force: force, digests: digests, completion: completion))
            return job
        }
        guard let job else {
            metrics.limitHit("scan_queue")
            throw APIError(.serviceUnavailable, "busy", "\(maximumUnfinished) scans are queued or running, the limit; try again later")
        }
        // One worker turn per job; each takes whichever job is next in the directories' rotation.
        pool.submit { [self] state in
            beforeEachScan?()
            guard let pending = self.state.withLockedValue({ $0.next() }) else { return }
            guard case .active = state else {
                finish(pending.id) { job in
                    job.state = .cancelled
                    job.error = "the service stopped before the scan started"
                }
                return
            }
            run(pending)
        }
        return job
    }

    /// Cancels a job: a queued one at once, a running one at its next table. Nil for an unknown id.
    public func cancel(id: String) -> Job? {
        let wasQueued = state.withLockedValue { queue -> Bool in
            guard queue.jobs[id]?.state == .queued else { return false }
            for (directory, waiting) in queue.waiting {
                queue.waiting[directory] = waiting.filter { $0.id != id }
            }
            return true
        }
        if wasQueued {
            finish(id) { job in
                job.state = .cancelled
                job.error = "cancelled by a client before it started"
            }
        } else {
            running.withLockedValue { $0[id] }?.cancel()
        }
        return job(id: id)
    }

    private func run(_ pending: Pending) {
        update(pending.id) { $0.state = .running }
        let options = indexer.options
        let progress = ScanProgress(timeLimit: options.timeLimit, extentLimit: options.maximumExtents ?? Int.max)
        running.withLockedValue { $0[pending.id] = progress }
        defer { running.withLockedValue { _ = $0.removeValue(forKey: pending.id) } }
        let started = DispatchTime.now().uptimeNanoseconds
        do {
            let outcome = try indexer.ensureIndexed(path: pending.path, force: pending.force, progress: progress)
            if pending.digests {
                _ = try ImageCatalog(indexer: indexer).digests(of: outcome.indexed, make: true, stop: progress)
            }
            metrics.scanFinished(seconds: Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9, succeeded: true)
            finish(pending.id) {
                $0.state = .succeeded
                $0.imageId = outcome.indexed.image.id
                $0.action = outcome.action.rawValue
                $0.extentCount = outcome.indexed.scan.extentCount
            }
        } catch {
            metrics.scanFinished(seconds: Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9, succeeded: false)
            let stopped = (error as? ScanStopped)?.kind
            if stopped == .timeLimit { metrics.limitHit("scan_time") }
            if stopped == .extentLimit { metrics.limitHit("scan_extents") }
            logger.warning("scan failed", metadata: ["path": "\(pending.path)", "error": "\(error)"])
            finish(pending.id) {
                $0.state = stopped == .cancelled ? .cancelled : .failed
                $0.error = "\(error)"
            }
        }
        if let completion = pending.completion, let done = job(id: pending.id) { completion(done) }
    }

    public func job(id: String) -> Job? {
        guard var job = state.withLockedValue({ $0.jobs[id] }) else { return nil }
        if job.state == .running, let progress = running.withLockedValue({ $0[id] }) {
            job.progress = (progress.fraction * Self.readingShare * 1000).rounded(.down) / 1000
        }
        return job
    }

    /// Jobs queued or running now.
    public var activeCount: Int {
        state.withLockedValue { $0.unfinished }
    }

    private func update(_ id: String, _ change: (inout Job) -> Void) {
        state.withLockedValue { queue in
            if var job = queue.jobs[id] {
                change(&job)
                queue.jobs[id] = job
            }
        }
    }

    /// Ends a job, and drops the oldest finished jobs beyond ``retained``.
    private func finish(_ id: String, _ change: (inout Job) -> Void) {
        state.withLockedValue { queue in
            guard var job = queue.jobs[id] else { return }
            change(&job)
            job.progress = 1
            job.finishedAt = Date().timeIntervalSince1970
            queue.jobs[id] = job
            queue.unfinished -= 1
            queue.finished.append(id)
            if queue.finished.count > Self.retained {
                let dropped = queue.finished.removeFirst()
                queue.jobs.removeValue(forKey: dropped)
            }
        }
    }

    /// Lets running scans finish (each commits or rolls back as one transaction); queued ones are cancelled.
    func shutdown() async {
        try? await pool.shutdownGracefully()
    }

    /// Stops the scans still running when the shutdown's time ran out, naming each in the log: each one
    /// rolls back (the index keeps the image's previous scan) and its job ends `cancelled`.
    func cutRunning() {
        let cut = running.withLockedValue { $0 }
        let paths = state.withLockedValue { queue in cut.keys.compactMap { id in queue.jobs[id].map { (id, $0.path) } } }
        for (id, path) in paths.sorted(by: { $0.1 < $1.1 }) {
            logger.warning("scan cut by shutdown", metadata: ["job": "\(id)", "path": "\(path)", "result": "cut"])
            cut[id]?.cancel()
        }
    }
}
