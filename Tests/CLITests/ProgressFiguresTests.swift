import Testing

@testable import extentdb

@Suite struct ProgressFiguresTests {
    @Test("the meter's figures: 100% and no time left when the count reaches the total")
    func figures() {
        let half = ProgressMeter.Figures(done: 50, total: 100, elapsed: 1)
        #expect(half.percent == 50 && half.rate == 50 && half.secondsLeft == 1)
        let done = ProgressMeter.Figures(done: 100, total: 100, elapsed: 2)
        #expect(done.percent == 100 && done.secondsLeft == 0)
        #expect(ProgressMeter.Figures(done: 0, total: 0, elapsed: 0).percent == 100)
        #expect(ProgressMeter.Figures(done: 200, total: 100, elapsed: 1).percent == 100)
    }

    @Test("a meter fed the announced total and every reported byte ends at 100%")
    func meterEndsAtTotal() {
        let meter = ProgressMeter(enabled: false)
        meter.total = 3 << 20
        for _ in 0..<3 { meter.add(1 << 20) }
        #expect(meter.done == meter.total)
        #expect(ProgressMeter.Figures(done: meter.done, total: meter.total, elapsed: 1).percent == 100)
    }
}
