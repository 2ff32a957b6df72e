import Foundation
import Testing

@testable import TestSupport

/// `GET /v1/images?limit=` answers from summaries kept between requests: these tests hold it to the index and
/// the disk as a client sees them.
@Suite(.serialized) struct ListingServeTests {
    /// Helpers for the scripts: `page` fetches the first page, `field NAME KEY` prints one image's value.
    static let pageHelpers = """
        page() { $C -H "$T" "localhost:$P/v1/images?limit=10" > page.json; }
        field() {
            python3 -c 'import json, sys
        images = [i for i in json.load(open("page.json"))["images"] if i["path"].endswith("/" + sys.argv[1])]
        print(images[0].get(sys.argv[2]) if images else "absent")' "$1" "$2"
        }
        """

    @Test("a page equals the full list; another process's rescan shows at once; a write shows stale before the rescan")
    func keptTrue() throws {
        // A long debounce: the rescan waits 5 s, so what the page says meanwhile is the watcher's mark.
        try expectServeScript(
            Self.pageHelpers + "\n" + """
                job=$(scan "$PWD/root/top.qcow2")
                echo "$job" | grep -q '"state":"succeeded"'
                scan "$PWD/root/base.raw" | grep -q '"state":"succeeded"'
                page
                test "$(field top.qcow2 state)" = fresh
                $C -H "$T" "localhost:$P/v1/images" > all.json
                python3 -c 'import json
                strip = lambda images: [{k: v for k, v in i.items() if k != "last_checked"} for i in images]
                paged, full = json.load(open("page.json")), json.load(open("all.json"))
                assert strip(paged["images"]) == strip(full["images"]) and "next" not in paged, (paged, full)'
                page
                first=$(field top.qcow2 scan_id)
                $X scan --force -q --db index.sqlite root/top.qcow2 > /dev/null
                page
                second=$(field top.qcow2 scan_id)
                test "$second" != "$first" || { echo "the page kept scan $first after another process's rescan"; exit 1; }
                test "$(field top.qcow2 scans_kept)" = 2
                qemu-io -f qcow2 -c 'write -P 7 30M 64k' root/top.qcow2 > /dev/null
                for n in $(seq 40); do page; test "$(field top.qcow2 state)" = stale && break; sleep 0.05; done
                test "$(field top.qcow2 state)" = stale || { echo "not stale after a write: $(cat page.json)"; exit 1; }
                test "$(field top.qcow2 scan_id)" = "$second"
                for n in $(seq 200); do page; test "$(field top.qcow2 scan_id)" != "$second" && break; sleep 0.05; done
                test "$(field top.qcow2 state)" = fresh
                id=$(field top.qcow2 id)
                $C -H "$T" -X DELETE localhost:$P/v1/images/$id > /dev/null
                page
                test "$(field top.qcow2 state)" = absent
                rm root/base.raw
                for n in $(seq 60); do page; test "$(field base.raw state)" = missing && break; sleep 0.05; done
                test "$(field base.raw state)" = missing
                echo ok
                """,
            prologue: startServer.replacingOccurrences(of: "--debounce 0.3", with: "--debounce 5"))
    }
}
