import AllocationIndex
import Foundation
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
        public var imageId: Int64?
        /// `scanned`, or `unchanged` when the index was already fresh.
        public var action: String?
        public var extentCount: Int64?
        public var error: String?
        public var queuedAt: Double
        public var finishedAt: Double?

        enum CodingKeys: String, CodingKey {
            case id, path, state, progress, force, action, error
            case imageId = "image_id"
            case extentCount = "extent_count"
            case queuedAt = "queued_at"
            case finishedAt = "finished_at"
        }
    }

    let indexer: ImageIndexer
    let metrics: ServiceMetrics
    let logger: Logger
    private let pool: NIOThreadPool
    private let jobs = NIOLockedValueBox([String: Job]())
    private let order = NIOLockedValueBox([String]())
    private let counter = NIOLockedValueBox(0)
    /// What running scans have read, by job id.
    private let running = NIOLockedValueBox([String: ScanProgress]())
    /// Share of a job's progress given to reading the tables; recording the scan is the rest.
    static let readingShare = 0.9
    /// Jobs kept for `GET`; the oldest finished ones beyond it are dropped.
    static let retained = 1000

    init(indexer: ImageIndexer, concurrency: Int, metrics: ServiceMetrics, logger: Logger) {
        self.indexer = indexer
        self.metrics = metrics
        self.logger = logger
        pool = NIOThreadPool(numberOfThreads: max(1, concurrency))
        pool.start()
    }

    /// Queues a scan of the canonical `path` and returns the job as queued.
    @discardableResult
    public func submit(path: String, force: Bool = false, completion: (@Sendable (Job) -> Void)? = nil) -> Job {
        let number = counter.withLockedValue { value -> Int in
            value += 1
            return value
        }
        let job = Job(
            id: "scan-\(number)", path: path, state: .queued, progress: 0, force: force, queuedAt: Date().timeIntervalSince1970)
        jobs.withLockedValue { $0[job.id] = job }
        order.withLockedValue { ids in
            ids.append(job.id)
            if ids.count > Self.retained {
                let dropped = ids.removeFirst()
                jobs.withLockedValue { _ = $0.removeValue(forKey: dropped) }
            }
        }
        pool.submit { [self] state in
            guard case .active = state else {
                finish(job.id) { $0.state = .cancelled; $0.error = "the service stopped before the scan started" }
                return
            }
            update(job.id) { $0.state = .running }
            let progress = ScanProgress()
            running.withLockedValue { $0[job.id] = progress }
            defer { running.withLockedValue { _ = $0.removeValue(forKey: job.id) } }
            let started = DispatchTime.now().uptimeNanoseconds
            do {
                let outcome = try indexer.ensureIndexed(path: path, force: force, progress: progress)
                metrics.scanFinished(seconds: Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9, succeeded: true)
                finish(job.id) {
                    $0.state = .succeeded
                    $0.imageId = outcome.indexed.image.id
                    $0.action = outcome.action.rawValue
                    $0.extentCount = outcome.indexed.scan.extentCount
                }
            } catch {
                metrics.scanFinished(seconds: Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9, succeeded: false)
                logger.warning("scan failed", metadata: ["path": "\(path)", "error": "\(error)"])
                finish(job.id) {
                    $0.state = .failed
                    $0.error = "\(error)"
                }
            }
            if let completion, let done = self.job(id: job.id) { completion(done) }
        }
        return job
    }

    public func job(id: String) -> Job? {
        guard var job = jobs.withLockedValue({ $0[id] }) else { return nil }
        if job.state == .running, let progress = running.withLockedValue({ $0[id] }) {
            job.progress = (progress.fraction * Self.readingShare * 1000).rounded(.down) / 1000
        }
        return job
    }

    /// Jobs queued or running now.
    public var activeCount: Int {
        jobs.withLockedValue { $0.values.filter { $0.state == .queued || $0.state == .running }.count }
    }

    private func update(_ id: String, _ change: (inout Job) -> Void) {
        jobs.withLockedValue { jobs in
            if var job = jobs[id] {
                change(&job)
                jobs[id] = job
            }
        }
    }

    private func finish(_ id: String, _ change: (inout Job) -> Void) {
        update(id) { job in
            change(&job)
            job.progress = 1
            job.finishedAt = Date().timeIntervalSince1970
        }
    }

    /// Lets running scans finish (each commits or rolls back as one transaction); queued ones are cancelled.
    func shutdown() async {
        try? await pool.shutdownGracefully()
    }
}
