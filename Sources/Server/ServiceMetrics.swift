import CoreMetrics
import Foundation
import Metrics
import NBDServer
import NIOConcurrencyHelpers
import Prometheus

/// The service's figures, exported as Prometheus text on `GET /metrics`: scans and their durations, bytes
/// exported, the index size, and (through Hummingbird's `MetricsMiddleware`) request latencies by route.
///
/// swift-metrics has one factory per process, so the registry is process-wide and bootstrapped once; every
/// application built in the process (tests build many) reports into it.
public final class ServiceMetrics: Sendable {
    public static let shared = ServiceMetrics()

    public let registry: PrometheusCollectorRegistry
    private let scansSucceeded: CoreMetrics.Counter
    private let scansFailed: CoreMetrics.Counter
    private let scanDuration: Metrics.Timer
    private let exportedBytes: CoreMetrics.Counter
    private let indexSize: CoreMetrics.Gauge
    private let nbdConnections: CoreMetrics.Counter
    private let nbdActive: CoreMetrics.Gauge
    private let nbdActiveCount = NIOLockedValueBox(0)
    private let nbdReadBytes: CoreMetrics.Counter
    private let nbdReads: CoreMetrics.Counter
    private let nbdBlockStatus: CoreMetrics.Counter
    private let nbdErrors: CoreMetrics.Counter

    private init() {
        registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5),
            .milliseconds(10), .milliseconds(20), .milliseconds(50), .milliseconds(100), .milliseconds(500), .seconds(1), .seconds(5),
            .seconds(30), .seconds(120),
        ]
        MetricsSystem.bootstrap(factory)
        scansSucceeded = CoreMetrics.Counter(label: "extentdb_scans_total", dimensions: [("result", "succeeded")])
        scansFailed = CoreMetrics.Counter(label: "extentdb_scans_total", dimensions: [("result", "failed")])
        scanDuration = Metrics.Timer(label: "extentdb_scan_duration_seconds")
        exportedBytes = CoreMetrics.Counter(label: "extentdb_exported_bytes_total")
        indexSize = CoreMetrics.Gauge(label: "extentdb_index_size_bytes")
        nbdConnections = CoreMetrics.Counter(label: "extentdb_nbd_connections_total")
        nbdActive = CoreMetrics.Gauge(label: "extentdb_nbd_connections_active")
        nbdReadBytes = CoreMetrics.Counter(label: "extentdb_nbd_read_bytes_total")
        nbdReads = CoreMetrics.Counter(label: "extentdb_nbd_requests_total", dimensions: [("command", "read")])
        nbdBlockStatus = CoreMetrics.Counter(label: "extentdb_nbd_requests_total", dimensions: [("command", "block_status")])
        nbdErrors = CoreMetrics.Counter(label: "extentdb_nbd_request_errors_total")
    }

    func scanFinished(seconds: Double, succeeded: Bool) {
        (succeeded ? scansSucceeded : scansFailed).increment()
        scanDuration.recordSeconds(seconds)
    }

    /// A limit refused or ended something: `extentdb_limit_hits_total{limit=...}` (connections, timeouts,
    /// the scan queue, scan time and size).
    func limitHit(_ limit: String) {
        CoreMetrics.Counter(label: "extentdb_limit_hits_total", dimensions: [("limit", limit)]).increment()
    }

    func exported(bytes: UInt64) {
        exportedBytes.increment(by: Int64(clamping: bytes))
    }

    /// The NBD server's figures (`serve --nbd-socket/--nbd-listen`).
    var nbd: any NBDServerObserver { NBDFigures(metrics: self) }

    fileprivate struct NBDFigures: NBDServerObserver {
        let metrics: ServiceMetrics
        func connectionOpened() {
            metrics.nbdConnections.increment()
            metrics.nbdActive.record(
                Double(
                    metrics.nbdActiveCount.withLockedValue {
                        $0 += 1; return $0
                    }))
        }
        func connectionClosed() {
            metrics.nbdActive.record(
                Double(
                    metrics.nbdActiveCount.withLockedValue {
                        $0 -= 1; return $0
                    }))
        }
        func read(bytes: Int) {
            metrics.nbdReads.increment()
            metrics.nbdReadBytes.increment(by: Int64(bytes))
        }
        func blockStatusAnswered() { metrics.nbdBlockStatus.increment() }
        func requestFailed() { metrics.nbdErrors.increment() }
        func limitHit(_ limit: String) { metrics.limitHit("nbd_" + limit) }
    }

    /// The exposition text, after setting the gauges that are read on demand.
    func render(indexSizeBytes: UInt64) -> [UInt8] {
        indexSize.record(Double(indexSizeBytes))
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        return buffer
    }
}
