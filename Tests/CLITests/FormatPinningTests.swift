import Foundation
import Testing

@testable import TestSupport

/// A guest controls every byte of its raw disk; what it writes must not change how the disk is read.
@Suite(.serialized) struct FormatPinningTests {
    @Test("a raw disk given a qcow2 header naming a neighbour stays raw: never the neighbour's bytes")
    func rawStaysRaw() throws {
        let workspace = try makeTenantWorkspace()
        defer { workspace.cleanup() }
        let directory = workspace.url
        let db = directory.appendingPathComponent("index.sqlite").path
        let result = try script(
            """
            set -e
            cd vm
            truncate -s 4M guest.raw
            qemu-img create -q -f qcow2 secret.qcow2 4M
            qemu-io -f qcow2 -c 'write -P 0x5a 0 4M' secret.qcow2 >/dev/null
            $X scan guest.raw | tail -1
            # The guest writes a qcow2 header whose backing file is its neighbour into sector 0.
            qemu-img create -q -f qcow2 -b secret.qcow2 -F qcow2 header.qcow2 4M
            dd if=header.qcow2 of=guest.raw bs=64k count=1 conv=notrunc status=none
            $X export guest.raw --format raw --to ../out.raw
            $X info guest.raw --output json | grep '"format"' | head -1
            """, database: db, in: directory)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("\"format\" : \"raw\""), "\(result.stdout)")
        let exported = try Data(contentsOf: directory.appendingPathComponent("out.raw"))
        let disk = try Data(contentsOf: directory.appendingPathComponent("vm/guest.raw"))
        #expect(exported == disk)
        #expect(!exported.contains(0x5A))
    }

    @Test("first contact: a .raw file that probes as qcow2 is refused unless pinned; -f pins it")
    func rawNameRefusedUnlessPinned() throws {
        let workspace = try makeTenantWorkspace()
        defer { workspace.cleanup() }
        let directory = workspace.url
        let db = directory.appendingPathComponent("index.sqlite").path
        let refused = try script(
            """
            cd vm
            qemu-img create -q -f qcow2 disk.raw 4M
            $X map disk.raw
            """, database: db, in: directory)
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("named .raw but its content reads as qcow2"), "\(refused.stderr)")
        let pinned = try script("cd vm && $X map -f raw disk.raw --output json", database: db, in: directory)
        #expect(pinned.status == 0, "\(pinned.stderr)")
        #expect(pinned.stdout.contains("\"depth\": 0"))
        let info = try script("cd vm && $X info disk.raw --output json | grep '\"format\"' | head -1", database: db, in: directory)
        #expect(info.stdout.contains("\"raw\""), "\(info.stdout)")
    }

    @Test("an image indexed as qcow2 that now reads as raw is refused, naming both formats")
    func formatChangeRefused() throws {
        let workspace = try makeTenantWorkspace()
        defer { workspace.cleanup() }
        let directory = workspace.url
        let db = directory.appendingPathComponent("index.sqlite").path
        let result = try script(
            """
            cd vm
            qemu-img create -q -f qcow2 disk.img 4M
            $X scan disk.img >/dev/null
            truncate -s 0 disk.img && truncate -s 4M disk.img
            $X map disk.img
            """, database: db, in: directory)
        #expect(result.status == 1)
        #expect(result.stderr.contains("indexed as qcow2, now reads as raw; pass --image-format qcow2 or raw"), "\(result.stderr)")
    }

    @Test("VHDX, VMDK, VDI, QED, Parallels, LUKS and qcow v1 are named and refused; a directory scan lists them skipped")
    func foreignContainers() throws {
        let workspace = try makeTenantWorkspace()
        defer { workspace.cleanup() }
        let directory = workspace.url
        let db = directory.appendingPathComponent("index.sqlite").path
        let result = try script(
            """
            cd vm
            qemu-img create -q -f vhdx disk.vhdx 16M
            qemu-img create -q -f vmdk disk.vmdk 16M
            qemu-img create -q -f vdi disk.vdi 16M
            qemu-img create -q -f qed disk.qed 16M
            qemu-img create -q -f parallels disk.hdd 16M
            qemu-img create -q -f qcow disk.qcow1 16M
            # A LUKS header's magic and version (qemu-img's LUKS key derivation is too slow for a test).
            { printf 'LUKS\\272\\276\\000\\001'; head -c 1048568 /dev/zero; } > disk.luks
            qemu-img create -q -f qcow2 good.qcow2 16M
            for f in disk.*; do $X scan $f >/dev/null; echo "$f $?"; done
            $X scan . --output json > ../scan.json; echo "dir $?"
            $X scan -f raw disk.vhdx >/dev/null; echo "pinned $?"
            """, database: db, in: directory)
        for line in [
            "disk.vhdx 1", "disk.vmdk 1", "disk.vdi 1", "disk.qed 1", "disk.hdd 1", "disk.qcow1 1", "disk.luks 1", "dir 0", "pinned 0",
        ] {
            #expect(result.stdout.contains(line), "\(line): \(result.stdout)\n\(result.stderr)")
        }
        for name in ["VHDX", "VMDK", "VDI", "QED", "Parallels", "qcow (version 1)", "LUKS"] {
            #expect(result.stderr.contains("\(name) is not supported"), "\(name): \(result.stderr)")
        }
        let json = try String(contentsOf: directory.appendingPathComponent("scan.json"), encoding: .utf8)
        #expect(json.contains("\"reason\" : \"VHDX is not supported\""), "\(json)")
        #expect(json.contains("\"skipped\" : 7"))
        #expect(json.contains("\"scanned\" : 1"))
    }
}
