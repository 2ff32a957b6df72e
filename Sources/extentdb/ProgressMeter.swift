import Foundation

/// Bytes, rate and ETA on standard error, redrawn at most a few times a second.
///
/// The total is what the writer announces before its first byte (``Export/ExportOutput/expectsTotal``):
/// the bytes the export will send for its format, so the count it is fed ends at exactly 100%.
final class ProgressMeter {
    /// Bytes the export will send; 0 until the writer announces it.
    var total: UInt64
    let enabled: Bool
    private(set) var done: UInt64 = 0
    private let started = Date()
    private var lastDraw = Date.distantPast

    init(total: UInt64 = 0, enabled: Bool) {
        self.total = total
        self.enabled = enabled
    }

    func add(_ bytes: UInt64) {
        done += bytes
        guard enabled, Date().timeIntervalSince(lastDraw) > 0.25 else { return }
        lastDraw = Date()
        draw()
    }

    func finish() {
        guard enabled else { return }
        draw()
        Console.error("")
    }

    private func draw() {
        let figures = Figures(done: done, total: total, elapsed: Date().timeIntervalSince(started))
        Console.progress(
            String(
                format: "%5.1f%%  %@ of %@  %@/s  ETA %.0fs", figures.percent, Units.bytes(done), Units.bytes(total),
                Units.bytes(UInt64(figures.rate)), figures.secondsLeft))
    }

    /// The meter's arithmetic, apart from the terminal: percent done, rate and time left.
    struct Figures: Equatable {
        var percent: Double
        /// Bytes a second so far.
        var rate: Double
        var secondsLeft: Double

        init(done: UInt64, total: UInt64, elapsed: Double) {
            let seconds = max(elapsed, 0.001)
            rate = Double(done) / seconds
            percent = total > 0 ? min(Double(done) / Double(total), 1) * 100 : 100
            secondsLeft = rate > 0 && total > done ? Double(total - done) / rate : 0
        }
    }
}
