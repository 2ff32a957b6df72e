import Foundation
import Testing

@testable import TestSupport

/// Content truth: chunk digests (`scan --digests`, `digests`), change by content (`--since-scan`), `verify`,
/// and the zeros a digest scan finds, with real images and Python's hashlib as the reference.
@Suite struct DigestsTests {
    func run(_ body: String, setup: String) throws {
        let workspace = try TemporaryDirectory(prefix: "extentdb-digests", setup: setup)
        defer { workspace.cleanup() }
        let result = try script(
            "set -euo pipefail\n" + digestHelpers + "\n" + body + "\necho ok\n", database: workspace.path("index.sqlite"), in: workspace.url
        )
        #expect(result.status == 0 && result.stdout.hasSuffix("ok\n"), "\(result.stdout)\n\(result.stderr)")
    }

    /// `hashes RAW`: the SHA-256 of each 4 MiB of a raw file, as JSON; `field JSON KEY...`: a value of scan's JSON.
    let digestHelpers = """
        hashes() { python3 -c 'import hashlib, json, sys; d = open(sys.argv[1], "rb").read(); print(json.dumps({"chunk_size": 4 << 20, "sha256": [hashlib.sha256(d[i:i + (4 << 20)]).hexdigest() for i in range(0, len(d), 4 << 20)]}))' "$1"; }
        same_digests() { python3 -c 'import json, sys; a, b = (json.load(open(p)) for p in sys.argv[1:]); assert a == b, (a, b)' "$1" "$2"; }
        digest_field() { python3 -c 'import json, sys; print(json.load(sys.stdin)["images"][0]["digests"][sys.argv[1]])' "$1"; }
        """

    @Test("digests equal hashlib's over each 4 MiB of the raw disk, for a chain; unallocated chunks are not read")
    func digestsEqualHashlib() throws {
        try run(
            """
            $X scan --digests --output json top.qcow2 > scan.json
            # Only stored data is read: 3 MiB in the base, 64 KiB in the top (one 64 KiB cluster overlaps the base).
            test "$(digest_field bytes_read < scan.json)" -le $(( (3 << 20) + (64 << 10) ))
            qemu-img convert -O raw top.qcow2 disk.raw
            hashes disk.raw > expected.json
            $X digests --output json top.qcow2 > ours.json
            same_digests expected.json ours.json
            $X verify top.qcow2 | grep -q 'all 10 chunks match'
            """,
            setup: """
                qemu-img create -q -f qcow2 base.qcow2 40M
                qemu-io -f qcow2 -c 'write -P 1 0 1M' -c 'write -P 2 17M 2M' base.qcow2 > /dev/null
                qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 top.qcow2
                qemu-io -f qcow2 -c 'write -P 3 17M 64k' top.qcow2 > /dev/null
                """)
    }

    @Test("preallocation=full: a digest scan finds the zeros; the report, the raw and the qcow2 export then skip them")
    func fullPreallocation() throws {
        try run(
            """
            $X scan --digests --output json full.qcow2 > scan.json
            test "$(digest_field zero_bytes_found < scan.json)" = $(( (64 << 20) - (2 << 20) ))
            $X report --output json | python3 -c 'import json, sys; i = json.load(sys.stdin)["images"][0]; assert i["allocated_bytes"] == 2 << 20, i'
            $X export full.qcow2 --format qcow2 -q --to ours.qcow2
            qemu-img convert -O qcow2 full.qcow2 peer.qcow2
            qemu-img compare -q ours.qcow2 full.qcow2
            test $(stat -c %s ours.qcow2) -le $(( $(stat -c %s peer.qcow2) * 11 / 10 )) || { ls -l ours.qcow2 peer.qcow2; exit 1; }
            $X export full.qcow2 --format raw -q --to ours.raw
            qemu-img compare -q -f raw ours.raw full.qcow2
            test $(( $(stat -c %b ours.raw) * $(stat -c %B ours.raw) )) -le $((3 << 20))
            """,
            setup: """
                qemu-img create -q -f qcow2 -o preallocation=full full.qcow2 64M
                qemu-io -f qcow2 -c 'write -P 7 10M 2M' full.qcow2 > /dev/null
                """)
    }

    @Test(
        "an in-place rewrite: diff sees nothing, changes --since-scan lists it, export --since-scan --into the last backup makes it equal")
    func inPlaceRewrite() throws {
        try run(
            """
            first=$($X scan --digests --output json disk.qcow2 | python3 -c 'import json, sys; print(json.load(sys.stdin)["images"][0]["scan_id"])')
            $X export disk.qcow2 --format raw -q --to backup.raw
            qemu-io -f qcow2 -c 'write -P 2 8M 8M' disk.qcow2 > /dev/null
            $X changes disk.qcow2 --since-scan $first --output json > changes.json
            test "$(cat changes.json)" = '[{"start":8388608,"length":8388608,"zero":false}]'
            # Every changed byte lies in a listed range.
            qemu-img convert -O raw disk.qcow2 now.raw
            { cmp -l backup.raw now.raw || true; } | awk '{ b = $1 - 1; if (b < 8388608 || b >= 16777216) { print "unlisted byte " b; exit 1 } }'
            $X changes disk.qcow2 --since-scan $first --output xapi-cbt > cbt.txt
            $X export disk.qcow2 --since-scan $first --format raw --into backup.raw -q > /dev/null
            cmp backup.raw now.raw
            """,
            setup: """
                qemu-img create -q -f qcow2 disk.qcow2 64M
                qemu-io -f qcow2 -c 'write -P 1 0 32M' disk.qcow2 > /dev/null
                """)
    }

    @Test("verify finds a flipped byte with size and mtime kept, in the image and in a copy, and passes a good copy")
    func verifyFindsCorruption() throws {
        try run(
            """
            $X scan -q --digests disk.qcow2 > /dev/null
            $X export disk.qcow2 --format raw -q --to good.raw
            $X verify disk.qcow2 --copy good.raw | grep -q 'all 16 chunks match'
            cp good.raw bad.raw
            printf '\\x55' | dd of=bad.raw bs=1 seek=$((20 << 20)) conv=notrunc status=none
            status=0; $X verify disk.qcow2 --copy bad.raw > out.txt || status=$?
            test $status = 1
            grep -q '^chunk 5 at 0x1400000-0x17fffff (4 MiB)' out.txt
            # The image itself: one byte of its data flipped, its mtime put back.
            offset=$(qemu-img map --output json disk.qcow2 | python3 -c 'import json, sys; print(next(e["offset"] for e in json.load(sys.stdin) if e["data"]))')
            mtime=$(stat -c %y disk.qcow2)
            printf '\\x55' | dd of=disk.qcow2 bs=1 seek=$((offset + 4096)) conv=notrunc status=none
            touch -d "$mtime" disk.qcow2
            status=0; $X verify --output json disk.qcow2 > out.json || status=$?
            test $status = 1
            python3 -c 'import json; r = json.load(open("out.json")); assert [m["chunk"] for m in r["mismatches"]] == [0] and not r["matches"], r'
            """,
            setup: """
                qemu-img create -q -f qcow2 disk.qcow2 64M
                qemu-io -f qcow2 -c 'write -P 1 0 64M' disk.qcow2 > /dev/null
                """)
    }

    @Test("a digest rescan after a 64 KiB write to the top of a 1 GiB chain reads under 16 MiB; refusals name what is missing")
    func incrementalRescan() throws {
        try run(
            """
            $X scan -q --digests top.qcow2 > /dev/null
            qemu-io -f qcow2 -c 'write -P 9 300M 64k' top.qcow2 > /dev/null
            $X scan --digests --output json top.qcow2 > again.json
            read_bytes=$(digest_field bytes_read < again.json)
            test "$read_bytes" -lt $((16 << 20)) || { echo "read $read_bytes"; exit 1; }
            qemu-img convert -O raw top.qcow2 disk.raw
            hashes disk.raw > expected.json
            $X digests --output json top.qcow2 > ours.json
            same_digests expected.json ours.json
            # An image scanned without digests: --no-rescan will not make them, and says how to.
            qemu-img create -q -f qcow2 other.qcow2 8M
            $X scan -q other.qcow2 > /dev/null
            status=0; $X digests --no-rescan other.qcow2 2> err.txt || status=$?
            test $status != 0
            grep -q "scan --digests" err.txt
            status=0; $X changes top.qcow2 --since-scan 999 2> err.txt || status=$?
            test $status != 0
            grep -q 'no scan #999' err.txt
            """,
            setup: """
                qemu-img create -q -f qcow2 base.qcow2 1G
                qemu-io -f qcow2 -c 'write -P 1 0 256M' -c 'write -P 2 512M 128M' base.qcow2 > /dev/null
                qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 top.qcow2
                qemu-io -f qcow2 -c 'write -P 3 100M 1M' top.qcow2 > /dev/null
                """)
    }

    @Test("a header claiming a disk past 16 TiB is refused by a digest scan, as an image and as a copy, without allocating for it")
    func hugeDisksRefused() throws {
        try run(
            """
            status=0; timeout 60 $X scan --digests huge.qcow2 > out.txt 2> err.txt || status=$?
            test $status = 1 || { echo "status $status"; cat err.txt; exit 1; }
            grep -q 'over the 4194304 a digest scan covers' err.txt
            $X scan -q --digests small.qcow2 > /dev/null
            status=0; timeout 60 $X verify small.qcow2 --copy huge.qcow2 > out.txt 2> err.txt || status=$?
            test $status = 1 || { echo "status $status"; cat err.txt; exit 1; }
            grep -q 'over the 4194304 a digest scan covers' err.txt
            """,
            setup: """
                qemu-img create -q -f qcow2 huge.qcow2 32T
                qemu-img create -q -f qcow2 small.qcow2 8M
                """)
    }
}
