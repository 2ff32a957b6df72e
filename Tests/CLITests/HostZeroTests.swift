import Foundation
import Testing

@testable import TestSupport

/// Preallocated images: data clusters or blocks whose bytes the host holds as holes or unwritten extents
/// read as zeros. The scan records it from FIEMAP, `map` stays qemu-img's, exports skip them and reports
/// count them as zeros.
@Suite struct HostZeroTests {
    func run(_ body: String, setup: String) throws {
        let workspace = try TemporaryDirectory(prefix: "extentdb-hostzero", setup: setup)
        defer { workspace.cleanup() }
        let result = try script(
            """
            set -euo pipefail
            # sized FILE: bytes the file takes on disk
            sized() { echo $(( $(stat -c %b "$1") * $(stat -c %B "$1") )); }
            """ + "\n" + body + "\necho ok\n", database: workspace.path("index.sqlite"), in: workspace.url)
        #expect(result.status == 0 && result.stdout.hasSuffix("ok\n"), "\(result.stdout)\n\(result.stderr)")
    }

    @Test("falloc and data_file_raw qcow2: map equals qemu-img map, exports are no bigger than qemu-img convert's, the report counts zeros")
    func preallocatedQCOW2() throws {
        try run(
            """
            for image in falloc.qcow2 datafile.qcow2; do
                $X map --output json $image > ours.json
                qemu-img map --output json $image > qemu.json
                cmp ours.json qemu.json
                # --detect-zeros: the unwritten clusters read as zeros; the written 2 MiB do not.
                $X map --output json --detect-zeros $image > detected.json
                # (qemu-img also writes the data file's first 4 KiB when it creates it: data there too.)
                test "$(grep -c '"zero": false, "data": true' detected.json)" -le 2
                grep -q '"length": 2097152, "depth": 0, "present": true, "zero": false, "data": true' detected.json
                $X export $image --format qcow2 -q --to ours.qcow2
                qemu-img convert -O qcow2 $image peer.qcow2
                qemu-img compare -q ours.qcow2 $image
                test $(stat -c %s ours.qcow2) -le $(( $(stat -c %s peer.qcow2) * 11 / 10 )) || { ls -l ours.qcow2 peer.qcow2; exit 1; }
                $X export $image --format raw -q --to ours.raw
                qemu-img compare -q -f raw ours.raw $image
                test $(sized ours.raw) -le $((4 << 20)) || { echo "raw export takes $(sized ours.raw) bytes"; exit 1; }
                $X report --output json > report.json
                python3 - "$PWD/$image" report.json <<'PY'
            import json, sys
            image = next(i for i in json.load(open(sys.argv[2]))["images"] if i["path"] == sys.argv[1])
            assert (2 << 20) <= image["allocated_bytes"] <= (2 << 20) + 4096, image["allocated_bytes"]
            assert image["allocated_bytes"] + image["zero_bytes"] == 64 << 20, image
            PY
                rm -f ours.* peer.qcow2
            done
            """,
            setup: """
                qemu-img create -q -f qcow2 -o preallocation=falloc falloc.qcow2 64M
                qemu-io -f qcow2 -c 'write -P 7 10M 2M' falloc.qcow2 > /dev/null
                qemu-img create -q -f qcow2 -o data_file=datafile.raw,data_file_raw=on datafile.qcow2 64M
                qemu-io -f qcow2 -c 'write -P 9 10M 2M' datafile.qcow2 > /dev/null
                """)
    }

    @Test("a dynamic VHD block with a punched hole: the hole reads as zeros, exports equal the disk, map stays qemu-img's")
    func punchedVHD() throws {
        try run(
            """
            # qemu's vpc driver does not ask the file below: its map shows the block as plain data, and so does ours.
            $X map --output json disk.vhd | head -1 > ours.txt
            qemu-img map --output json -f vpc disk.vhd | head -1 > qemu.txt
            cmp ours.txt qemu.txt
            # The second MiB of the block was punched out of the file (the 4 KiB blocks wholly inside it): zeros now.
            $X map --output json --detect-zeros disk.vhd | grep -q '"length": 1044480, "depth": 0, "present": true, "zero": true, "data": true'
            $X export disk.vhd --format raw -q --to ours.raw
            qemu-img compare -q -f raw -F vpc ours.raw disk.vhd
            $X export disk.vhd --format vhd -q --to ours.vhd
            qemu-img compare -q -f vpc -F vpc ours.vhd disk.vhd
            $X report --output json | python3 -c 'import json, sys; i = json.load(sys.stdin)["images"][0]; assert i["allocated_bytes"] == (2 << 20) - 1044480, i'
            """,
            setup: """
                qemu-img create -q -f vpc -o subformat=dynamic disk.vhd 8M
                qemu-io -f vpc -c 'write -P 3 0 2M' disk.vhd > /dev/null
                # The block's data starts after its sector bitmap; find the first written byte and punch the
                # file's second MiB of guest data (4 KiB-aligned, so the file system frees it).
                start=$(python3 -c "d = open('disk.vhd', 'rb').read(); print(d.index(bytes([3]) * 4096))")
                fallocate -p -o $((start + (1 << 20))) -l $((1 << 20)) disk.vhd
                """)
    }

    @Test("preallocation=full without a digest scan: exports leave out the zero blocks they read, as qemu-img convert does")
    func zerosFoundWhileExporting() throws {
        try run(
            """
            $X export full.qcow2 --format raw -q --to ours.raw
            qemu-img compare -q -f raw ours.raw full.qcow2
            test $(sized ours.raw) -le $((3 << 20)) || { echo "raw export takes $(sized ours.raw) bytes"; exit 1; }
            # qcow2 and VHD read the data once first: wholly zero clusters and blocks are not sent as data.
            $X export full.qcow2 --format qcow2 -q --to ours.qcow2
            qemu-img convert -O qcow2 full.qcow2 peer.qcow2
            qemu-img compare -q ours.qcow2 full.qcow2
            test $(stat -c %s ours.qcow2) -le $(( $(stat -c %s peer.qcow2) * 11 / 10 )) || { ls -l ours.qcow2 peer.qcow2; exit 1; }
            $X export full.qcow2 --format vhd -q --to ours.vhd
            qemu-img compare -q -f vpc -F qcow2 ours.vhd full.qcow2
            test $(stat -c %s ours.vhd) -le $((8 << 20)) || { ls -l ours.vhd; exit 1; }
            $X export full.qcow2 --format qcow2 -q --to whole.qcow2 --no-detect-zeros
            test $(stat -c %s whole.qcow2) -ge $((64 << 20))
            $X export full.qcow2 --format raw -q --to again.raw --no-detect-zeros
            test $(sized again.raw) -ge $((60 << 20))
            qemu-img compare -q -f raw again.raw full.qcow2
            # Applied over the previous backup, data rewritten to zeros is zeroed there, not left as it was.
            first=$($X scan --digests --output json full.qcow2 | python3 -c 'import json, sys; print(json.load(sys.stdin)["images"][0]["scan_id"])')
            qemu-io -f qcow2 -c 'write -P 0 10M 2M' full.qcow2 > /dev/null
            $X export full.qcow2 --since-scan $first --format raw --into ours.raw -q > /dev/null
            qemu-img compare -q -f raw ours.raw full.qcow2
            """,
            setup: """
                qemu-img create -q -f qcow2 -o preallocation=full full.qcow2 64M
                qemu-io -f qcow2 -c 'write -P 7 10M 2M' -c 'write -P 0 20M 1M' full.qcow2 > /dev/null
                """)
    }

    @Test("thick raw and thick fixed VHD: exports and report figures against qemu-img convert")
    func thickImages() throws {
        try run(
            """
            for image in thick.raw thick.vhd; do
                format=raw; [ $image = thick.vhd ] && format=vpc
                $X export $image --format raw -q --to ours.raw
                qemu-img convert -f $format -O raw $image peer.raw
                cmp ours.raw peer.raw
                test $(sized ours.raw) -le $(( $(sized peer.raw) * 11 / 10 + 65536 )) || { echo "$image: $(sized ours.raw) vs $(sized peer.raw)"; exit 1; }
                $X export $image --format qcow2 -q --to ours.qcow2
                qemu-img convert -f $format -O qcow2 $image peer.qcow2
                qemu-img compare -q -f qcow2 -F $format ours.qcow2 $image
                test $(stat -c %s ours.qcow2) -le $(( $(stat -c %s peer.qcow2) * 11 / 10 )) || { ls -l ours.qcow2 peer.qcow2; exit 1; }
                rm -f ours.* peer.*
            done
            # Unwritten (fallocated) space is zero, not allocated: only the 2 MiB written count (give or take the
            # file system's conversion of a neighbouring block).
            $X report --output json | python3 -c 'import json, sys; d = {i["path"].split("/")[-1]: i["allocated_bytes"] for i in json.load(sys.stdin)["images"]}; assert sorted(d) == ["thick.raw", "thick.vhd"] and all(2 << 20 <= v <= (2 << 20) + 65536 for v in d.values()), d'
            """,
            setup: """
                fallocate -l 64M thick.raw
                qemu-io -f raw -c 'write -P 5 8M 2M' thick.raw > /dev/null
                qemu-img create -q -f vpc -o subformat=fixed thick.vhd 64M
                qemu-io -f vpc -c 'write -P 6 8M 2M' thick.vhd > /dev/null
                fallocate -l $(stat -c %s thick.vhd) thick.vhd
                """)
    }
}
