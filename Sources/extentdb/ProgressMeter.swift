import Foundation

/// Bytes, rate and ETA on standard error, redrawn at most a few times a second.
final class ProgressMeter {
    let total: UInt64
    let enabled: Bool
    private var done: UInt64 = 0
    private let started = Date()
    private var lastDraw = Date.distantPast

    init(total: UInt64, enabled: Bool) {
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
        let elapsed = max(Date().timeIntervalSince(started), 0.001)
        let rate = Double(done) / elapsed
        let fraction = total > 0 ? min(Double(done) / Double(total), 1) : 1
        let eta = rate > 0 && total > done ? Double(total - done) / rate : 0
        Console.progress(
            String(format: "%5.1f%%  %@ of %@  %@/s  ETA %.0fs", fraction * 100, Units.bytes(done), Units.bytes(total), Units.bytes(UInt64(rate)), eta))
    }
}
