import Foundation
import Synchronization
import Testing

@testable import Scanner
@testable import TestSupport

/// `ScanProgress`: what the service's scan jobs report while a scan runs.
@Suite struct ScanProgressTests {
    /// Scans `image` with a progress counter while another thread samples it; returns the samples and the end value.
    func scan(_ image: String) throws -> (samples: [Double], end: Double) {
        let progress = ScanProgress()
        let done = Atomic<Bool>(false)
        let samples = Mutex<[Double]>([])
        let sampler = Thread {
            while !done.load(ordering: .relaxed) {
                let value = progress.fraction
                samples.withLock { $0.append(value) }
                usleep(200)
            }
        }
        #expect(progress.fraction == 0)
        sampler.start()
        var options = ScanOptions()
        options.progress = progress
        defer { done.store(true, ordering: .relaxed) }
        _ = try ChainScanner.scan(path: image, options: options)
        done.store(true, ordering: .relaxed)
        usleep(2000)
        return (samples.withLock { $0 }, progress.fraction)
    }

    @Test(
        "a qcow2 chain (512-byte clusters: 4 L1 chunks of the top, then the backing file's) and a dynamic VHD end at 1, never going backwards"
    )
    func reachesOneMonotonically() throws {
        let work = try TemporaryDirectory()
        defer { work.cleanup() }
        let made = try runProcess(
            URL(fileURLWithPath: "/bin/bash"),
            [
                "-c",
                """
                set -e
                qemu-img create -q -f qcow2 base.qcow2 1G
                qemu-io -f qcow2 -c 'write -q -P 1 0 1M' base.qcow2
                qemu-img create -q -f qcow2 -o cluster_size=512 -b base.qcow2 -F qcow2 top.qcow2 8G
                for offset in 0 2G 4G 6G 7G; do qemu-io -f qcow2 -c "write -q -P 2 $offset 64k" top.qcow2; done
                qemu-img create -q -f vpc disk.vhd 1G
                qemu-io -f vpc -c 'write -q -P 3 0 8M' -c 'write -q -P 4 900M 1M' disk.vhd
                """,
            ], in: work.url)
        #expect(made.status == 0, "\(made.stderr)")
        for image in ["top.qcow2", "disk.vhd"] {
            let (samples, end) = try scan(work.path(image))
            #expect(end == 1, "\(image)")
            #expect(samples.allSatisfy { (0...1).contains($0) }, "\(image)")
            #expect(zip(samples, samples.dropFirst()).allSatisfy { $0 <= $1 }, "\(image): \(samples)")
        }
    }

    @Test("tables announced later (a backing layer) never make the reported fraction drop")
    func neverDrops() throws {
        let progress = ScanProgress()
        progress.expect(4)
        try progress.advance(4, extents: 0)
        #expect(progress.fraction == 1)
        progress.expect(4)
        #expect(progress.fraction == 1)
        try progress.advance(2, extents: 0)
        #expect(progress.fraction == 1)
        let fresh = ScanProgress()
        fresh.expect(4)
        try fresh.advance(1, extents: 0)
        #expect(fresh.fraction == 0.25)
    }
}
