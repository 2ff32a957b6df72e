import Foundation
import Testing

@testable import TestSupport

/// `serve --nbd-socket/--nbd-listen` with real clients (nbdinfo, nbdcopy, qemu-img, qemu-nbd as the peer).
/// The watcher is off (`--watch-interval 0`), so a changed image is rescanned by the client's connection.
@Suite(.serialized) struct ServeNBDTests {
    /// `startServer` with NBD on a Unix socket and on a free loopback port (`$NP`), and no watcher.
    static let startServerWithNBD =
        startServer.replacingOccurrences(
            of: "--watch-interval 1 --debounce 0.3",
            with: "--watch-interval 0 --nbd-socket \"$PWD/nbd.sock\" --nbd-listen 127.0.0.1:0")
            + """

            for _ in $(seq 100); do grep -q 'NBD listening on 127' serve.log && test -S nbd.sock && break; sleep 0.05; done
            NP=$(grep -o 'NBD listening on 127.0.0.1:[0-9]*' serve.log | cut -d: -f2)
            U="?socket=$PWD/nbd.sock"
            # merged MAP-OUTPUT: nbdinfo --map rows with neighbours of one value joined (servers split differently).
            merged() { awk '{ if (n && $3 == v && o + l == $1) { l += $2 } else { if (n) print o, l, v; o = $1; l = $2; v = $3; n = 1 } } END { if (n) print o, l, v }' "$1"; }
            """

    @Test(
        "every indexed image under the root by relative name: list, map equal to qemu-nbd's, copies equal to the image, over Unix and TCP")
    func servesTheRoot() throws {
        try expectServeScript(
            """
            mkdir root/vm1
            qemu-img create -q -f vpc root/vm1/disk.vhd 32M
            qemu-io -f vpc -c 'write -P 4 1M 3M' root/vm1/disk.vhd > /dev/null
            for image in top.qcow2 base.raw vm1/disk.vhd; do scan "$PWD/root/$image" | grep -q '"state":"succeeded"'; done
            test "$(stat -c %a nbd.sock)" = 600
            nbdinfo --list "nbd+unix://$U" | grep '^export=' > list.txt
            printf 'export="base.raw":\\nexport="top.qcow2":\\nexport="vm1/disk.vhd":\\n' | diff - list.txt
            qemu-nbd -r -f qcow2 -k "$PWD/qemu.sock" root/top.qcow2 &
            for _ in $(seq 100); do test -S qemu.sock && break; sleep 0.05; done
            nbdinfo --map "nbd+unix:///top.qcow2$U" > ours.map
            nbdinfo --map "nbd+unix:///?socket=$PWD/qemu.sock" > qemu.map
            diff <(merged ours.map) <(merged qemu.map)
            grep -q data ours.map
            for image in top.qcow2 base.raw vm1/disk.vhd; do
                rm -f copy.raw tcp.raw
                nbdcopy "nbd+unix:///$image$U" copy.raw
                qemu-img compare -q -f raw copy.raw "root/$image"
                qemu-img convert -f raw -O raw "nbd://127.0.0.1:$NP/$image" tcp.raw
                qemu-img compare -q -f raw tcp.raw "root/$image"
            done
            nbdinfo --map=qemu:allocation-depth "nbd+unix:///top.qcow2$U" | grep -q 'backing depth 2'
            # /metrics counts what the NBD server did. The clients read data extents only (block status
            # tells them the rest is holes): two copies of the VHD's 3 MiB at least.
            $C localhost:$P/metrics > metrics.txt
            awk '$1 == "extentdb_nbd_read_bytes_total" { exit !($2 >= 2 * 3 * 1048576) }' metrics.txt
            grep -q '^extentdb_nbd_request_errors_total 0$' metrics.txt
            awk '$1 == "extentdb_nbd_connections_total" { exit !($2 >= 10) }' metrics.txt
            grep -q '^extentdb_nbd_requests_total{command="block_status"} [1-9]' metrics.txt
            grep -q '^extentdb_nbd_connections_active ' metrics.txt
            echo ok
            """, prologue: Self.startServerWithNBD)
    }

    @Test(
        "names that leave the root, chains that leave it, unindexed images and other files are refused; a changed image is rescanned at connect; SIGTERM removes the socket"
    )
    func boundaryAndFreshness() throws {
        try expectServeScript(
            """
            scan "$PWD/root/top.qcow2" | grep -q '"state":"succeeded"'
            truncate -s 1M root/new.raw
            # nbdinfo shows the server's message for a refused name only in its debug output.
            refused() {  # refused NAME MESSAGE
                if LIBNBD_DEBUG=1 nbdinfo "nbd+unix:///$1$U" > out.txt 2> err.txt; then echo "served $1"; exit 1; fi
                grep -q "server error message: $2" err.txt || { echo "$1:"; grep -i error err.txt; exit 1; }
            }
            for name in escape.raw ../outside/secret /etc/passwd "$PWD/root/top.qcow2" missing.raw; do
                refused "$name" "no export named '$name'"
            done
            refused new.raw "'new.raw' is not indexed yet: scan it first"
            # A chain leaving the roots, indexed by another user of the index: neither announced nor served.
            qemu-img create -q -f qcow2 -b ../outside/secret -F raw root/leaky.qcow2 4096
            $X scan -q --allow-outside-backing root/leaky.qcow2
            refused leaky.qcow2 "no export named 'leaky.qcow2'"
            nbdinfo --list "nbd+unix://$U" | grep -q 'export="leaky.qcow2"' && exit 1
            nbdinfo --list "nbd+unix://$U" | grep -q 'export="escape.raw"' && exit 1
            # An open connection sees the old image fail with EIO once it changes; a new one, the new image.
            # (nbdsh as a module: the Debian python3-libnbd binding is for /usr/bin/python3 only.)
            /usr/bin/python3 -m nbd -u "nbd+unix:///top.qcow2$U" -c '
            import subprocess
            assert h.pread(65536, 2 << 20) == b"\\x02" * 65536
            subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -q -P 7 30M 1M", "root/top.qcow2"], check=True)
            try:
                h.pread(4096, 30 << 20)
                raise SystemExit("read after the change did not fail")
            except nbd.Error as error:
                assert error.errno == "EIO", error  # the errno name
            ' 2> nbdsh.err || { cat nbdsh.err; exit 1; }
            nbdcopy "nbd+unix:///top.qcow2$U" after.raw
            qemu-img compare -q -f raw after.raw root/top.qcow2
            nbdinfo --map "nbd+unix:///top.qcow2$U" | grep -q '^  *31457280  *1048576  *0  *data'
            # A file that is not a socket is never replaced by a second server.
            echo precious > notsock
            $X serve --listen 127.0.0.1:0 --insecure-no-auth --root "$PWD/root" --db index.sqlite --watch-interval 0 --nbd-socket "$PWD/notsock" 2> second.log && exit 1
            grep -q "not a socket" second.log
            test "$(cat notsock)" = precious
            $X serve --insecure-no-auth --root "$PWD/root" --db index.sqlite --nbd-listen 0.0.0.0:10809 2> remote.log && exit 1
            grep -q "NBD has no authentication" remote.log
            kill -TERM $PID
            status=0; wait $PID || status=$?
            test "$status" = 0
            test ! -e nbd.sock
            echo ok
            """, prologue: Self.startServerWithNBD)
    }
}
