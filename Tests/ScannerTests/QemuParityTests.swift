import Foundation
import ImageFormats
import Testing

@testable import Scanner
@testable import TestSupport

@Suite struct QemuParityTests {
    @Test("every qemu-made fixture maps exactly as qemu-img map --output=json does")
    func everyFixtureMatchesQemu() throws {
        let directory = try Fixtures.directory()
        let manifest = try Fixtures.manifest()
        #expect(manifest.count >= 20)
        for (name, file) in manifest {
            // qemu prints one zero-length entry for a zero-length disk; a map has no empty extents.
            let expected = try qemuExtents(Data(contentsOf: directory.appendingPathComponent("\(name).map.json"))).filter { $0.length > 0 }
            let scan = try ChainScanner.scan(path: directory.appendingPathComponent(file).path)
            // qemu 7.2 does not report "compressed"; compare it separately.
            // Stored zeros (data over host holes) are ours alone: qemu's map does not show them.
            let ours = ExtentListBuilder.displayMerged(scan.extents).map { extent -> Extent in
                var copy = extent
                copy.storedZero = false
                copy.compressed = false
                copy.compressedCluster = nil
                return copy
            }
            let qemuHasCompressed = expected.contains { $0.compressed }
            #expect(
                ours
                    == (qemuHasCompressed
                        ? expected
                        : expected.map {
                            var e = $0; e.compressed = false; return e
                        }),
                "fixture \(name)")
            #expect(scan.extents.first.map { $0.start == 0 } ?? true, "\(name) starts at 0")
            #expect((scan.extents.last?.end ?? 0) == scan.top.metadata.virtualSize, "\(name) tiles the disk")
        }
    }

    @Test("compressed fixtures flag their compressed extents, which carry no host offset")
    func compressedFlag() throws {
        let directory = try Fixtures.directory()
        for name in ["compressed-zlib", "compressed-zstd"] {
            let scan = try ChainScanner.scan(path: directory.appendingPathComponent("\(name).qcow2").path)
            let compressed = scan.extents.filter(\.compressed)
            #expect(!compressed.isEmpty, "\(name)")
            #expect(compressed.allSatisfy { $0.data && $0.offset == nil && $0.compressedCluster != nil })
        }
    }

    @Test("chain layers report their depth and the chain's files in order")
    func chainDepths() throws {
        let scan = try ChainScanner.scan(path: try Fixtures.directory().appendingPathComponent("chain-top.qcow2").path)
        #expect(scan.layers.map(\.format) == [.qcow2, .qcow2, .raw])
        #expect(Set(scan.extents.filter(\.data).map(\.depth)) == [0, 1, 2])
    }

    @Test("snapshots are listed in the metadata while the active L1 is mapped")
    func snapshots() throws {
        let layer = try ChainScanner.inspect(path: try Fixtures.directory().appendingPathComponent("snapshots.qcow2").path)
        #expect(layer.metadata.qcow2?.snapshots.map(\.name) == ["snap1", "snap2"])
    }

    @Test("encrypted images map (without host offsets) and say they are encrypted")
    func encrypted() throws {
        let scan = try ChainScanner.scan(path: try Fixtures.directory().appendingPathComponent("encrypted.qcow2").path)
        #expect(scan.top.metadata.qcow2?.encryption == "luks")
        #expect(scan.extents.contains { $0.data } && scan.extents.allSatisfy { $0.offset == nil })
    }

    @Test("external data files are recorded")
    func externalData() throws {
        let layer = try ChainScanner.inspect(path: try Fixtures.directory().appendingPathComponent("datafile-raw.qcow2").path)
        #expect(layer.metadata.qcow2?.externalDataFile != nil)
        #expect(layer.metadata.qcow2?.externalDataFileRaw == true)
    }
}
