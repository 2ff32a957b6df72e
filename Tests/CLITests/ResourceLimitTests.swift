import Foundation
import ImageFormats
import Testing

@testable import TestSupport

/// Hostile headers against the real binary under `ulimit -v`: each declares structures of gigabytes in a file
/// of kilobytes, and each must fail with an error naming the field and the limit, inside a virtual-memory
/// budget of 256 MiB, about 150 MiB above what the binary needs to start (Swift runtime, Foundation,
/// SQLite, threads).
@Suite(.serialized) struct ResourceLimitTests {
    /// Virtual memory allowed to each scan, in KiB.
    static let budget = 262_144

    /// (file, text the error must contain) for each hostile image the generator below writes.
    static let hostile: [(file: String, error: String)] = [
        ("l1-size.qcow2", "l1_size at offset 36: value 4294967295 out of bounds (limit \(Limits.QCOW2.maxL1TableBytes / 8))"),
        ("l1-table.qcow2", "l1_table_offset at offset 40"),
        ("snapshots.qcow2", "snapshots_offset at offset 64"),
        (
            "snapshot-extra.qcow2",
            "snapshot extra_data_size at offset 196644: value 4294967295 out of bounds (limit \(Limits.QCOW2.maxSnapshotExtraData))"
        ),
        (
            "backing-name.qcow2",
            "backing_file_size at offset 16: value 4294967295 out of bounds (limit \(Limits.QCOW2.maxBackingNameLength))"
        ),
        ("extension.qcow2", "header extension 0x12345678 data at offset 120: truncated (needs 4294967280 bytes"),
        ("refcount-table.qcow2", "refcount_table_clusters at offset 56: value 4294967295 out of bounds"),
        ("bat.vhd", "VHD dynamic header max table entries at offset 540"),
        (
            "locator.vhd",
            "VHD parent locator platform data length at offset 1096: value 4294967295 out of bounds (limit \(Limits.VHD.maxLocatorBytes))"
        ),
        ("block-size.vhd", "VHD dynamic header block size at offset 544"),
        ("c000.qcow2", "backing chain is longer than \(Limits.chainLength) layers"),
    ]

    @Test("hostile table sizes, counts, name lengths and chain depth fail clearly in 256 MiB of address space")
    func hostileHeadersStayInBudget() throws {
        let workspace = try makeTenantWorkspace()
        defer { workspace.cleanup() }
        let directory = workspace.url
        let db = directory.appendingPathComponent("index.sqlite").path
        let made = try script(
            """
            set -e
            cd vm
            python3 - <<'EOF'
            import struct, subprocess

            def qcow2(name, patches):
                subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=65536", name, "1G"], check=True)
                data = bytearray(open(name, "rb").read())
                for offset, fmt, value in patches:
                    struct.pack_into(fmt, data, offset, value)
                open(name, "wb").write(data)

            qcow2("ok.qcow2", [])
            qcow2("l1-size.qcow2", [(36, ">I", 0xFFFFFFFF)])                        # 32 GiB of L1 entries
            qcow2("l1-table.qcow2", [(24, ">Q", 1 << 51), (36, ">I", 4 << 20)])     # a 32 MiB L1 table, file is 192 KiB
            qcow2("snapshots.qcow2", [(60, ">I", 65536), (64, ">Q", 65536)])        # 65536 snapshots in 128 KiB
            qcow2("backing-name.qcow2", [(8, ">Q", 512), (16, ">I", 0xFFFFFFFF)])   # a 4 GiB backing name
            qcow2("extension.qcow2", [(112, ">I", 0x12345678), (116, ">I", 0xFFFFFFF0)])  # a 4 GiB extension
            qcow2("refcount-table.qcow2", [(56, ">I", 0xFFFFFFFF)])                 # 256 TiB of refcount table
            qcow2("snapshot-extra.qcow2", [(60, ">I", 1), (64, ">Q", 3 * 65536)])
            data = bytearray(open("snapshot-extra.qcow2", "rb").read()) + bytearray(4096)
            struct.pack_into(">I", data, 3 * 65536 + 36, 0xFFFFFFFF)               # 4 GiB of snapshot extra data
            open("snapshot-extra.qcow2", "wb").write(data)

            subprocess.run(["qemu-img", "create", "-q", "-f", "vpc", "ok.vhd", "64M"], check=True)
            def checksum(data, at):
                return ~sum(b for i, b in enumerate(data) if not at <= i < at + 4) & 0xFFFFFFFF
            def vhd(name, footer, header):
                data = bytearray(open("ok.vhd", "rb").read())
                for start, size, at, patches in ((len(data) - 512, 512, 64, footer), (0, 512, 64, footer), (512, 1024, 36, header)):
                    for offset, fmt, value in patches:
                        struct.pack_into(fmt, data, start + offset, value)
                    struct.pack_into(">I", data, start + at, checksum(data[start:start + size], at))
                open(name, "wb").write(data)
            vhd("bat.vhd", [(48, ">Q", 1 << 41)], [(28, ">I", 0xFFFFFFFF), (32, ">I", 512)])  # a 16 GiB BAT
            vhd("locator.vhd", [(60, ">I", 4)], [(576, ">4s", b"W2ru"), (584, ">I", 0xFFFFFFFF), (592, ">Q", 1536)])
            vhd("block-size.vhd", [], [(32, ">I", 0x80000000)])                      # 2 GiB blocks

            # 300 version-2 headers, each naming the next as its backing file right after the header (byte 72).
            for i in range(300):
                backing = b"" if i == 299 else b"c%03d.qcow2" % (i + 1)
                header = bytearray(512)
                struct.pack_into(">IIQII", header, 0, 0x514649FB, 2, 72 if backing else 0, len(backing), 16)
                header[72:72 + len(backing)] = backing
                open("c%03d.qcow2" % i, "wb").write(header)
            EOF
            """, database: db, in: directory)
        #expect(made.status == 0, "\(made.stderr)")
        // The budget is enough for real work: valid images, and a two-layer chain whose backing name starts
        // right after the header (no room for extensions, as qemu reads it).
        for file in ["ok.qcow2", "ok.vhd", "c298.qcow2"] {
            let result = try script("\(addressSpaceLimit(kib: Self.budget)) $X scan -q vm/\(file)", database: db, in: directory)
            #expect(result.status == 0, "\(file): \(result.stderr)")
        }
        for (file, error) in Self.hostile {
            let result = try script("\(addressSpaceLimit(kib: Self.budget)) $X scan -q vm/\(file)", database: db, in: directory)
            #expect(result.status == 1, "\(file): status \(result.status), \(result.stderr)")
            #expect(result.stderr.contains(error), "\(file): \(result.stderr)")
        }
    }
}
