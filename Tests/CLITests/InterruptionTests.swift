import Foundation
import Testing

@testable import TestSupport

/// Interrupted exports leave nothing behind; broken chains still show what is known; trust is remembered.
@Suite(.serialized) struct InterruptionTests {
    @Test("SIGTERM and SIGINT during export --to exit 143 and 130 and leave no file, named or partial")
    func signalsDuringExport() throws {
        let workspace = try makeTenantWorkspace()
        defer { workspace.cleanup() }
        let directory = workspace.url
        let db = directory.appendingPathComponent("index.sqlite").path
        // 1 GiB of written (not sparse) data: long enough to be interrupted once the output is open.
        let result = try script(
            """
            head -c 1073741824 /dev/zero > vm/big.raw
            $X scan -f raw vm/big.raw >/dev/null || exit 9
            for signal in TERM INT; do
                mkdir -p out-$signal
                $X export vm/big.raw --format raw --quiet --to out-$signal/copy.raw &
                pid=$!
                # Wait until the export holds its (unnamed) output file open, then interrupt it.
                for i in $(seq 1 500); do
                    ls -l /proc/$pid/fd 2>/dev/null | grep -q "out-$signal" && break
                    sleep 0.01
                done
                kill -$signal $pid
                wait $pid
                echo "$signal $?"
                ls -A out-$signal | wc -l
            done
            """, database: db, in: directory)
        #expect(result.stdout.contains("TERM 143\n0\n"), "\(result.stdout)\n\(result.stderr)")
        #expect(result.stdout.contains("INT 130\n0\n"), "\(result.stdout)\n\(result.stderr)")
    }

    @Test("info on a differencing VHD whose parent is missing prints the disk's own header, then the error, exit 1")
    func infoWithMissingParent() throws {
        let workspace = try makeTenantWorkspace()
        defer { workspace.cleanup() }
        let directory = workspace.url
        let db = directory.appendingPathComponent("index.sqlite").path
        var child = VHDWriter(kind: .differencing, virtualSize: 8 << 20)
        child.parentName = "gone.vhd"
        child.locators = [.init(code: "W2ru", path: ".\\gone.vhd")]
        child.write(sector: 0, count: 4, byte: 9)
        try child.write(to: directory.appendingPathComponent("vm/child.vhd").path)
        let human = try script("$X info vm/child.vhd", database: db, in: directory)
        #expect(human.status == 1)
        #expect(human.stdout.contains("differencing"), "\(human.stdout)")
        #expect(human.stdout.contains("gone.vhd"))
        #expect((human.stdout + human.stderr).contains("parent of differencing VHD not found"), "\(human.stdout)")
        let json = try script("$X info vm/child.vhd --output json", database: db, in: directory)
        #expect(json.status == 1)
        let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        let metadata = object?["metadata"] as? [String: Any]
        let vhd = metadata?["vhd"] as? [String: Any]
        #expect(vhd?["disk_type"] as? String == "differencing", "\(json.stdout)")
        #expect(vhd?["parent_name"] as? String == "gone.vhd")
    }

    @Test("trust given with scan --allow-outside-backing is kept by map and export rescans; hints name real flags")
    func trustIsRecorded() throws {
        let workspace = try makeTenantWorkspace()
        defer { workspace.cleanup() }
        let directory = workspace.url
        let db = directory.appendingPathComponent("index.sqlite").path
        let result = try script(
            """
            set -e
            mkdir bases
            qemu-img create -q -f qcow2 bases/base.qcow2 4M
            qemu-img create -q -f qcow2 -b ../bases/base.qcow2 -F qcow2 vm/top.qcow2 4M
            if $X map vm/top.qcow2 >/dev/null 2>map.err; then exit 7; fi
            grep -q -- "--trust-root" map.err
            $X map --help | grep -q -- "--allow-outside-backing"
            $X scan --allow-outside-backing vm/top.qcow2 >/dev/null
            qemu-io -f qcow2 -c 'write -P 4 0 64k' vm/top.qcow2 >/dev/null
            $X map vm/top.qcow2 --output json | head -1
            $X export vm/top.qcow2 --format raw --to top.raw
            echo ok
            """, database: db, in: directory)
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        #expect(result.stdout.contains("ok"))
    }

    @Test("an image rewritten in place during an export fails the export, and nothing is left under the name")
    func imageChangedDuringExport() throws {
        let workspace = try makeTenantWorkspace()
        defer { workspace.cleanup() }
        let directory = workspace.url
        let db = directory.appendingPathComponent("index.sqlite").path
        let result = try script(
            """
            head -c 1073741824 /dev/zero > vm/big.raw
            $X scan -f raw vm/big.raw >/dev/null || exit 9
            mkdir out
            $X export vm/big.raw --format raw --quiet --to out/copy.raw &
            pid=$!
            for i in $(seq 1 500); do
                ls -l /proc/$pid/fd 2>/dev/null | grep -q "/out/" && break
                sleep 0.01
            done
            printf 'new data' | dd of=vm/big.raw bs=1 seek=4096 conv=notrunc status=none
            wait $pid
            echo "exit $?"
            ls -A out | wc -l
            """, database: db, in: directory)
        #expect(result.stdout.contains("exit 1\n0\n"), "\(result.stdout)\n\(result.stderr)")
        #expect(result.stderr.contains("changed while it was being read"), "\(result.stderr)")
    }
}
