#!/usr/bin/env bash
# Benchmark (not a test): the image list and reports of a catalog of IMAGES (default 100,000) images, from
# PostgreSQL (private cluster, scripts/pg-test-cluster.sh) and from SQLite, on the same rows.
#
# The rows are made by cloning one real scan (a 1 GiB qcow2 with two data runs) under new paths with SQL,
# not by scanning 100,000 files: each path is a hard link to the scanned file (made before its scan, so
# the recorded identity holds), so every image lists as fresh. Measured, for each store: `extentdb report
# --output json`, `extentdb list`, and `serve` as deployed (the watcher on): its first sweep of the roots,
# one client walking every page of `GET /v1/images?limit=1000` (the listing cache empty), then
# `GET /v1/images?limit=1000&after=<random path>` under 8 concurrent clients (wrk, 30 s), p50 and p99.
# Target (#21): p99 < 50 ms on both stores.
#
# Environment: SKIP_BUILD=1, EXTENTDB=path, BENCH_DIR (default /tmp/extentdb-bench/scale), IMAGES, SECONDS_PER_RUN.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
BENCH_DIR=${BENCH_DIR:-/tmp/extentdb-bench/scale}
IMAGES=${IMAGES:-100000}
DURATION=${SECONDS_PER_RUN:-30}
mkdir -p "$BENCH_DIR"
source scripts/bench-binary.sh
cd "$BENCH_DIR"
rm -rf sr template.qcow2 index.sqlite* && mkdir sr
SR=$PWD/sr
qemu-img create -q -f qcow2 sr/template.qcow2 1G
qemu-io -f qcow2 -c "write -q -P 1 1M 64k" -c "write -q -P 2 300M 192k" sr/template.qcow2
# ext4 allows 65,000 links to a file: the first half link to template.qcow2, the rest to a copy of it.
cp sr/template.qcow2 sr/template2.qcow2
HALF=$((IMAGES / 2))
python3 -c 'import os, sys
n, half = int(sys.argv[1]), int(sys.argv[2])
for k in range(1, n + 1): os.link("sr/template.qcow2" if k <= half else "sr/template2.qcow2", f"sr/disk{k}.qcow2")' "$IMAGES" "$HALF"
now_ms() { echo $(($(date +%s%N) / 1000000)); }

cluster=$(mktemp -d /tmp/extentdb-bench-pg.XXXXXX)
servers=()
trap 'kill -9 "${servers[@]}" 2>/dev/null || true; bash "$REPO/scripts/pg-test-cluster.sh" stop "$cluster"' EXIT
eval "$(bash "$REPO/scripts/pg-test-cluster.sh" start "$cluster")"
ADMIN=$EXTENTDB_TEST_POSTGRES
PG="${ADMIN%%/postgres\?*}/scale?${ADMIN#*\?}"
psql "$ADMIN" -qc "CREATE DATABASE scale"

# The template scan, then IMAGES clones of its rows under sr/diskN.qcow2.
"$BIN" scan -q --db "$PG" sr/template.qcow2 sr/template2.qcow2 > /dev/null
"$BIN" scan -q --db index.sqlite sr/template.qcow2 sr/template2.qcow2 > /dev/null
T="$SR/template.qcow2"
T2="$SR/template2.qcow2"
echo "bench-pool-scale: cloning $IMAGES rows into each store" >&2
psql "$PG" -q -v ON_ERROR_STOP=1 <<SQL
BEGIN;
INSERT INTO images (path, format, virtual_size, cluster_size, metadata_json)
    SELECT '$SR/disk' || g || '.qcow2', format, virtual_size, cluster_size, metadata_json
    FROM images, generate_series(1, $IMAGES) g WHERE path = '$T';
INSERT INTO scans (image_id, scanned_at_ns, duration_ns, tool_version, virtual_size, chain_depth, extent_count, data_bytes,
        own_data_bytes, zero_bytes, compressed_bytes, own_zero_bytes, data_extent_count, data_extent_largest, data_extent_median,
        data_extent_histogram, warnings_json, trust_json, host)
    SELECT i.id, s.scanned_at_ns, s.duration_ns, s.tool_version, s.virtual_size, s.chain_depth, s.extent_count, s.data_bytes,
        s.own_data_bytes, s.zero_bytes, s.compressed_bytes, s.own_zero_bytes, s.data_extent_count, s.data_extent_largest,
        s.data_extent_median, s.data_extent_histogram, s.warnings_json, s.trust_json, 'host' || (i.id % 4)
    FROM images i, scans s JOIN images t ON t.latest_scan_id = s.id AND t.path = '$T' WHERE i.path LIKE '$SR/disk%';
UPDATE images SET latest_scan_id = s.id FROM scans s WHERE s.image_id = images.id AND images.path LIKE '$SR/disk%';
INSERT INTO scan_layers (scan_id, depth, path, format, device, inode, file_size, mtime_ns, ctime_ns, header_checksum, cluster_size)
    SELECT i.latest_scan_id, 0, i.path, l.format, l.device, l.inode, l.file_size, l.mtime_ns, l.ctime_ns, l.header_checksum, l.cluster_size
    FROM images i, scan_layers l JOIN images t ON t.latest_scan_id = l.scan_id AND t.path = '$T' WHERE i.path LIKE '$SR/disk%';
INSERT INTO extent_chunks (scan_id, start, length, extent_count, data_bytes, own_data_bytes, zero_bytes, compressed_bytes, runs)
    SELECT i.latest_scan_id, c.start, c.length, c.extent_count, c.data_bytes, c.own_data_bytes, c.zero_bytes, c.compressed_bytes, c.runs
    FROM images i, extent_chunks c JOIN images t ON t.latest_scan_id = c.scan_id AND t.path = '$T' WHERE i.path LIKE '$SR/disk%';
UPDATE scan_layers l SET device = t.device, inode = t.inode, file_size = t.file_size, mtime_ns = t.mtime_ns, ctime_ns = t.ctime_ns
    FROM images t2 JOIN scan_layers t ON t.scan_id = t2.latest_scan_id
    WHERE t2.path = '$T2' AND l.path LIKE '$SR/disk%' AND substring(l.path from 'disk([0-9]+)')::int > $HALF;
COMMIT;
VACUUM ANALYZE;
SQL
python3 - "$IMAGES" "$SR" "$T" "$T2" "$HALF" <<'PY'
import sqlite3, sys
n, sr, t, t2, half = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
db = sqlite3.connect("index.sqlite")
c = db.cursor()
(tid, tscan) = c.execute("SELECT id, latest_scan_id FROM images WHERE path = ?", (t,)).fetchone()
image = c.execute("SELECT format, virtual_size, cluster_size, metadata_json FROM images WHERE id = ?", (tid,)).fetchone()
scan_cols = [r[1] for r in c.execute("PRAGMA table_info(scans)") if r[1] not in ("id", "image_id")]
scan = c.execute(f"SELECT {', '.join(scan_cols)} FROM scans WHERE id = ?", (tscan,)).fetchone()
layer_cols = [r[1] for r in c.execute("PRAGMA table_info(scan_layers)") if r[1] not in ("scan_id", "path")]
layer = c.execute(f"SELECT {', '.join(layer_cols)} FROM scan_layers WHERE scan_id = ?", (tscan,)).fetchone()
(t2scan,) = c.execute("SELECT latest_scan_id FROM images WHERE path = ?", (t2,)).fetchone()
layer2 = c.execute(f"SELECT {', '.join(layer_cols)} FROM scan_layers WHERE scan_id = ?", (t2scan,)).fetchone()
chunk_cols = [r[1] for r in c.execute("PRAGMA table_info(extent_chunks)") if r[1] != "scan_id"]
chunks = c.execute(f"SELECT {', '.join(chunk_cols)} FROM extent_chunks WHERE scan_id = ?", (tscan,)).fetchall()
c.execute("BEGIN")
for k in range(1, n + 1):
    path = f"{sr}/disk{k}.qcow2"
    c.execute("INSERT INTO images (id, path, format, virtual_size, cluster_size, metadata_json) VALUES "
              "((SELECT last + 1 FROM id_high_water WHERE name = 'images'), ?, ?, ?, ?, ?)", (path, *image))
    image_id = c.lastrowid
    c.execute(f"INSERT INTO scans (id, image_id, {', '.join(scan_cols)}) VALUES "
              f"((SELECT last + 1 FROM id_high_water WHERE name = 'scans'), ?, {', '.join('?' * len(scan_cols))})", (image_id, *scan))
    scan_id = c.lastrowid
    c.execute(f"INSERT INTO scan_layers (scan_id, path, {', '.join(layer_cols)}) VALUES (?, ?, {', '.join('?' * len(layer_cols))})",
              (scan_id, path, *(layer if k <= half else layer2)))
    for chunk in chunks:
        c.execute(f"INSERT INTO extent_chunks (scan_id, {', '.join(chunk_cols)}) VALUES (?, {', '.join('?' * len(chunk_cols))})", (scan_id, *chunk))
    c.execute("UPDATE images SET latest_scan_id = ? WHERE id = ?", (scan_id, image_id))
db.commit()
c.execute("ANALYZE")
PY
# A catalog in use is vacuumed by autovacuum, so its pages are marked all-visible and counting an image's scans
# is an index-only scan. The VACUUM right after the bulk load above leaves them unmarked (EXPLAIN then shows a
# heap fetch per counted row: a page's keys took 2.0 ms instead of 1.3 ms); a second one marks them.
psql "$PG" -qc "VACUUM"

measure() {  # measure NAME DB
    local name=$1 db=$2 start report list port p50 p99 rate
    start=$(now_ms); "$BIN" report --output json --db "$db" sr > report-$name.json; report=$(($(now_ms) - start))
    start=$(now_ms); "$BIN" list --db "$db" > list-$name.txt; list=$(($(now_ms) - start))
    echo "serve-token-0123456789abcdef" > token
    start=$(now_ms)
    "$BIN" serve --listen 127.0.0.1:0 --root "$SR" --token-file token --db "$db" ${SERVE_OPTIONS:-} > serve-$name.out 2> serve-$name.log &
    servers+=($!)
    for _ in $(seq 400); do grep -q 'Server started and listening on' serve-$name.log && break; sleep 0.05; done
    port=$(grep -o 'Server started and listening on 127.0.0.1:[0-9]*' serve-$name.log | cut -d: -f2)
    for _ in $(seq 1200); do grep -q 'first sweep done' serve-$name.log && break; sleep 0.1; done
    sweep=$(($(now_ms) - start))
    read -r pages walk < <(python3 - "$port" <<'PY'
import json, sys, time, urllib.parse, urllib.request
started, after, pages, fresh = time.monotonic(), None, 0, 0
while True:
    query = "limit=1000" + ("&after=" + urllib.parse.quote(after, safe="") if after else "")
    request = urllib.request.Request(f"http://127.0.0.1:{sys.argv[1]}/v1/images?{query}",
                                     headers={"Authorization": "Bearer serve-token-0123456789abcdef"})
    page = json.load(urllib.request.urlopen(request))
    pages += 1
    fresh += sum(image["state"] == "fresh" for image in page["images"])
    after = page.get("next")
    if not after: break
assert fresh > 0, "no fresh image listed"
print(pages, int((time.monotonic() - started) * 1000))
PY
)
    cat > page.lua <<LUA
math.randomseed(42)
request = function()
    local after = "$SR/disk" .. math.random(1, $IMAGES) .. ".qcow2"
    return wrk.format("GET", "/v1/images?limit=1000&after=" .. after:gsub("/", "%%2F"), {["Authorization"] = "Bearer serve-token-0123456789abcdef"})
end
LUA
    curl -sf -H "Authorization: Bearer serve-token-0123456789abcdef" "localhost:$port/v1/images?limit=1000" \
        | python3 -c 'import json,sys; d=json.load(sys.stdin); assert len(d["images"]) == 1000 and "next" in d' 
    wrk -t2 -c8 -d"${DURATION}s" --latency -s page.lua "http://127.0.0.1:$port" > wrk-$name.txt
    p50=$(awk '$1 == "50%" { print $2 }' wrk-$name.txt)
    p99=$(awk '$1 == "99%" { print $2 }' wrk-$name.txt)
    rate=$(awk '/Requests\/sec/ { print $2 }' wrk-$name.txt)
    rss=$(awk '/^VmHWM/ { printf "%d MiB", $2 / 1024 }' "/proc/${servers[-1]}/status")
    echo "$name: report --output json $report ms, list $list ms; serve: started and swept in $sweep ms, first walk of $pages pages $walk ms;" \
        "GET /v1/images?limit=1000 under 8 clients: $rate req/s, p50 $p50, p99 $p99; serve's peak RSS $rss"
}
echo "catalog of $((IMAGES + 2)) images ($(nproc) cores)"
measure postgres "$PG"
measure sqlite index.sqlite
