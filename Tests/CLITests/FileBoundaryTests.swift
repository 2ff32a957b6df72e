import Foundation
import Testing

@testable import TestSupport

/// `ulimit -v KIB` for a script, or nothing in a sanitized build (scripts/sanitize.sh sets
/// `EXTENTDB_SANITIZER`): ASan and TSan reserve terabytes of address space for their shadow memory, so a
/// sanitized binary cannot start under a virtual-memory limit. The tests still check the errors.
func addressSpaceLimit(kib: Int) -> String {
    ProcessInfo.processInfo.environment["EXTENTDB_SANITIZER"] == nil ? "ulimit -v \(kib);" : ""
}

/// A tenant's directory `vm/` beside a root-only `private/secret` (bytes 0x5A) that no image may reach.
func makeTenantWorkspace() throws -> TemporaryDirectory {
    try TemporaryDirectory(
        prefix: "extentdb-boundary",
        setup: """
            set -e
            mkdir vm private
            head -c 1048576 /dev/zero | tr '\\0' 'Z' > private/secret
            chmod 600 private/secret
            """)
}

/// The attacks of the file-boundary issue, each against the real binary: what an image's author controls
/// (its bytes, its names, its directory) must not make extentdb read, write or hang on anything else.
@Suite(.serialized) struct FileBoundaryTests {
    @Test("a backing file that is a symbolic link to a file outside the directory is refused, and nothing is exported")
    func symlinkToSecret() throws {
        let workspace = try makeTenantWorkspace()
        defer { workspace.cleanup() }
        let directory = workspace.url
        let db = directory.appendingPathComponent("index.sqlite").path
        let result = try script(
            """
            cd vm && ln -s ../private/secret base.img
            qemu-img create -q -f qcow2 -u -b base.img -F raw top.qcow2 1M
            $X export top.qcow2 --format raw --to ../out.raw
            """, database: db, in: directory)
        #expect(result.status == 1)
        #expect(result.stderr.contains("backing file 'base.img' is not a regular file beneath the image's directory or a trusted root"))
        #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("out.raw").path))
        // Trusting the secret's directory is the way to follow it on purpose.
        let trusted = try script(
            "cd vm && $X export top.qcow2 --format raw --trust-root ../private --to ../out.raw", database: db, in: directory)
        #expect(trusted.status == 0, "\(trusted.stderr)")
    }

    @Test("a backing file or data file that is a link to a device, or a FIFO, is refused without hanging")
    func specialFiles() throws {
        let workspace = try makeTenantWorkspace()
        defer { workspace.cleanup() }
        let directory = workspace.url
        let db = directory.appendingPathComponent("index.sqlite").path
        let device = try script(
            """
            cd vm && ln -s /dev/zero zero.img
            qemu-img create -q -f qcow2 -u -b zero.img -F raw top.qcow2 1M
            $X scan top.qcow2
            """, database: db, in: directory)
        #expect(device.status == 1)
        #expect(device.stderr.contains("backing file 'zero.img' is not a regular file beneath"), "\(device.stderr)")
        // A FIFO where the data file should be: the scan must fail at once, not block in open(2).
        let fifo = try script(
            """
            cd vm && qemu-img create -q -f qcow2 -o data_file=data.raw disk.qcow2 1M
            rm data.raw && mkfifo data.raw
            timeout 30 $X scan disk.qcow2; echo "status $?"
            mkfifo pipe.qcow2
            timeout 30 $X scan pipe.qcow2; echo "status $?"
            timeout 30 $X scan . --output json; echo "status $?"
            """, database: db, in: directory)
        #expect(fifo.stdout.components(separatedBy: "status 1").count == 4, "\(fifo.stdout)\n\(fifo.stderr)")
        #expect(!fifo.stdout.contains("status 124"))
        #expect(fifo.stderr.contains("a FIFO"))
        // The directory scan names the FIFO as skipped.
        #expect(fifo.stdout.contains("\"reason\" : \"a FIFO, not an image file\""), "\(fifo.stdout)")
    }

    @Test("a data file replaced after the scan makes the index stale; replaced by a link outside, it is refused")
    func swappedDataFile() throws {
        let workspace = try makeTenantWorkspace()
        defer { workspace.cleanup() }
        let directory = workspace.url
        let db = directory.appendingPathComponent("index.sqlite").path
        let first = try script(
            """
            set -e
            cd vm && qemu-img create -q -f qcow2 -o data_file=data.raw disk.qcow2 1M
            qemu-io -f qcow2 -c 'write -P 7 0 64k' disk.qcow2 >/dev/null
            $X scan disk.qcow2 >/dev/null
            $X export disk.qcow2 --format raw --no-rescan --to ../before.raw
            rm data.raw && ln -s ../private/secret data.raw
            touch -h -r disk.qcow2 data.raw
            """, database: db, in: directory)
        #expect(first.status == 0, "\(first.stderr)")
        let stale = try script("cd vm && $X export disk.qcow2 --format raw --no-rescan --to ../after.raw", database: db, in: directory)
        #expect(stale.status == 1)
        #expect(stale.stderr.contains("data file"), "\(stale.stderr)")
        #expect(stale.stderr.contains("stale"))
        let rescanned = try script("cd vm && $X export disk.qcow2 --format raw --to ../after.raw", database: db, in: directory)
        #expect(rescanned.status == 1)
        #expect(rescanned.stderr.contains("external data file 'data.raw' is not a regular file beneath"), "\(rescanned.stderr)")
        #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("after.raw").path))
        let info = try script("cd vm && $X info disk.qcow2 --no-rescan --output json", database: db, in: directory)
        // The rescan above failed after the last good scan: the image is failed, with its error, and the index
        // says why its scan is stale.
        #expect(info.stdout.contains("\"state\" : \"failed\""), "\(info.stdout)")
        #expect(info.stdout.contains("is not a regular file beneath"), "\(info.stdout)")
        #expect(info.stdout.contains("data file") && info.stdout.contains("was replaced or modified"), "\(info.stdout)")
    }

    @Test("racing swaps of a backing file with a link to a root-only file never index the secret")
    func racingSwaps() throws {
        let workspace = try makeTenantWorkspace()
        defer { workspace.cleanup() }
        let directory = workspace.url
        let db = directory.appendingPathComponent("index.sqlite").path
        let result = try script(
            """
            cd vm
            truncate -s 1M good.raw
            qemu-img create -q -f qcow2 -u -b base.raw -F raw top.qcow2 1M
            ln -s ../private/secret evil.raw
            ( for i in $(seq 1 4000); do ln -sf good.raw base.raw; ln -sf evil.raw base.raw; done ) &
            swapper=$!
            for i in $(seq 1 100); do $X scan --force --quiet top.qcow2 >/dev/null 2>&1; done
            kill $swapper 2>/dev/null; wait
            python3 -c 'import sqlite3, sys; print("\n".join(sorted({r[0] for r in sqlite3.connect(sys.argv[1]).execute("SELECT path FROM scan_layers WHERE depth = 1")})))' "$EXTENTDB_DB"
            echo done
            """, database: db, in: directory)
        #expect(result.stdout.contains("done"))
        #expect(!result.stdout.contains("secret"), "\(result.stdout)")
    }

    @Test("a qcow2 whose L1 entries share one L2 table (33 million extents) is refused in bounded memory")
    func sharedL2Tables() throws {
        let workspace = try makeTenantWorkspace()
        defer { workspace.cleanup() }
        let directory = workspace.url
        let db = directory.appendingPathComponent("index.sqlite").path
        let made = try script(
            """
            set -e
            qemu-img create -q -f qcow2 -o cluster_size=65536 vm/shared.qcow2 2T
            qemu-io -f qcow2 -c 'write -P 1 0 64k' vm/shared.qcow2 >/dev/null
            python3 - vm/shared.qcow2 <<'EOF'
            import struct, sys
            with open(sys.argv[1], 'r+b') as f:
                header = f.read(48)
                l1_size, l1_offset = struct.unpack('>IQ', header[36:48])
                f.seek(l1_offset); first = f.read(8)
                f.seek(l1_offset); f.write(first * l1_size)
                l2 = struct.unpack('>Q', first)[0] & 0x00FFFFFFFFFFFE00
                f.seek(l2); entry = f.read(8)
                f.seek(l2); f.write(entry * 8192)
            EOF
            """, database: db, in: directory)
        #expect(made.status == 0, "\(made.stderr)")
        let result = try script("\(addressSpaceLimit(kib: 4_000_000)) $X scan vm/shared.qcow2", database: db, in: directory)
        #expect(result.status == 1, "\(result.stderr)")
        #expect(
            result.stderr.contains("host clusters are shared") || result.stderr.contains("is already used by L1 entry"), "\(result.stderr)")
    }

    @Test("a VHD whose current size is 2^64-1 fails alone: the good images of its directory are still indexed")
    func overflowingVHDInDirectory() throws {
        let workspace = try makeTenantWorkspace()
        defer { workspace.cleanup() }
        let directory = workspace.url
        let db = directory.appendingPathComponent("index.sqlite").path
        var good = VHDWriter(kind: .dynamic, virtualSize: 8 << 20)
        good.write(sector: 0, count: 8, byte: 1)
        try good.write(to: directory.appendingPathComponent("vm/a.vhd").path)
        try good.write(to: directory.appendingPathComponent("vm/c.vhd").path)
        // b.vhd: both footers say current_size = 0xFFFF_FFFF_FFFF_FFFF, with valid checksums.
        var bytes = good.bytes()
        for footer in [0, bytes.count - 512] {
            for index in 0..<8 { bytes[footer + 48 + index] = 0xFF }
            for index in 0..<4 { bytes[footer + 64 + index] = 0 }
            let sum = VHDWriter.checksum(Array(bytes[footer..<(footer + 512)]))
            for index in 0..<4 { bytes[footer + 64 + index] = UInt8(truncatingIfNeeded: sum >> (24 - 8 * UInt32(index))) }
        }
        try Data(bytes).write(to: directory.appendingPathComponent("vm/b.vhd"))
        let result = try script("$X scan vm", database: db, in: directory)
        #expect(result.status == 1)
        #expect(result.stdout.contains("3 images: 2 scanned, 0 unchanged, 1 failed"), "\(result.stdout)\n\(result.stderr)")
        #expect(result.stderr.contains("b.vhd"))
        #expect(result.stderr.contains("max table entries"), "\(result.stderr)")
    }

    @Test("a qcow2 export of a 128 PiB disk picks clusters whose L1 fits qemu's limit, or refuses the size asked for")
    func hugeL1Export() throws {
        let workspace = try makeTenantWorkspace()
        defer { workspace.cleanup() }
        let directory = workspace.url
        let db = directory.appendingPathComponent("index.sqlite").path
        let result = try script(
            """
            set -e
            qemu-img create -q -f qcow2 -o cluster_size=2M vm/big.qcow2 128P
            qemu-io -f qcow2 -c 'write -P 3 0 4k' vm/big.qcow2 >/dev/null
            \(addressSpaceLimit(kib: 4_000_000))
            $X export vm/big.qcow2 --format qcow2 --to out.qcow2
            qemu-img info --output=json out.qcow2 | grep '"virtual-size"'
            qemu-img info --output=json out.qcow2 | grep '"cluster-size"'
            qemu-io -f qcow2 -c 'read -P 3 0 4k' out.qcow2 | grep -c 'read 4096'
            """, database: db, in: directory)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("\"virtual-size\": 144115188075855872"), "\(result.stdout)")
        #expect(result.stdout.contains("\"cluster-size\": 524288"))
        #expect(result.stderr.contains("using 524288-byte clusters"))
        let refused = try script("$X export vm/big.qcow2 --format qcow2 --cluster-size 65536 --to small.qcow2", database: db, in: directory)
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("over qemu's limit of 33554432 bytes"), "\(refused.stderr)")
        #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("small.qcow2").path))
    }

    @Test("--to refuses a FIFO, a device and a symbolic link; standard output opened for append or at an offset is refused")
    func unsafeTargets() throws {
        let workspace = try makeTenantWorkspace()
        defer { workspace.cleanup() }
        let directory = workspace.url
        let db = directory.appendingPathComponent("index.sqlite").path
        let result = try script(
            """
            truncate -s 1M vm/disk.raw
            mkfifo fifo; ln -s private/secret link
            $X export vm/disk.raw --format raw --to fifo; echo "fifo $?"
            $X export vm/disk.raw --format raw --to link; echo "link $?"
            $X export vm/disk.raw --format raw --to /dev/null; echo "null $?"
            echo keep > appended; $X export vm/disk.raw --format raw >> appended; echo "append $?"
            { printf abc; $X export vm/disk.raw --format raw; } > offset; echo "offset $?"
            test -p fifo && test -L link && echo intact
            """, database: db, in: directory)
        for line in ["fifo 1", "link 1", "null 1", "append 1", "offset 1", "intact"] {
            #expect(result.stdout.contains(line), "\(line): \(result.stdout)\n\(result.stderr)")
        }
        #expect(result.stderr.contains("fifo exists and is a FIFO, not a regular file; refusing to replace it"))
        #expect(result.stderr.contains("link exists and is a symbolic link"))
        #expect(result.stderr.contains("/dev/null exists and is a character device"))
        #expect(result.stderr.contains("opened for appending"))
        #expect(result.stderr.contains("positioned at byte 3"))
        #expect(try String(contentsOf: directory.appendingPathComponent("appended"), encoding: .utf8) == "keep\n")
        #expect(try Data(contentsOf: URL(fileURLWithPath: directory.appendingPathComponent("private/secret").path)).count == 1 << 20)
    }

    @Test("escape sequences in a backing name reach the terminal escaped, in info and in errors")
    func escapesInNames() throws {
        let workspace = try makeTenantWorkspace()
        defer { workspace.cleanup() }
        let directory = workspace.url
        let db = directory.appendingPathComponent("index.sqlite").path
        let result = try script(
            """
            cd vm
            qemu-img create -q -f qcow2 -u -b "$(printf 'x\\033]52;c;aGk=\\007\\033[2K\\rfine.raw')" -F raw top.qcow2 1M
            $X info top.qcow2
            """, database: db, in: directory)
        #expect(result.status == 1)
        for output in [result.stdout, result.stderr] {
            #expect(!output.unicodeScalars.contains { $0.value == 0x1B || $0.value == 0x07 || $0.value == 0x0D }, "\(output)")
        }
        #expect(result.stdout.contains("x\\x1B]52;c;aGk=\\x07\\x1B[2K\\x0Dfine.raw"), "\(result.stdout)")
        let json = try script("cd vm && $X info top.qcow2 --output json", database: db, in: directory)
        #expect(json.stdout.contains("\\u001b]52"), "\(json.stdout)")
    }

    @Test("the default index is created 0700/0600; an explicit --db follows the umask")
    func privateDefaultIndex() throws {
        let workspace = try makeTenantWorkspace()
        defer { workspace.cleanup() }
        let directory = workspace.url
        let result = try script(
            """
            set -e
            truncate -s 1M vm/disk.raw
            umask 022
            env -u EXTENTDB_DB XDG_DATA_HOME="$PWD/xdg" $X scan vm/disk.raw >/dev/null
            stat -c '%a %n' xdg/extentdb xdg/extentdb/index.sqlite*
            $X --version >/dev/null
            $X scan vm/disk.raw --db explicit.sqlite >/dev/null
            stat -c '%a %n' explicit.sqlite
            """, database: directory.appendingPathComponent("unused.sqlite").path, in: directory)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("700 xdg/extentdb\n"), "\(result.stdout)")
        #expect(result.stdout.contains("600 xdg/extentdb/index.sqlite\n"))
        #expect(!result.stdout.contains("644 xdg/extentdb/index.sqlite"))
        #expect(result.stdout.contains("644 explicit.sqlite"))
    }
}
