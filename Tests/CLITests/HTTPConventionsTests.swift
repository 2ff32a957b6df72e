import Foundation
import Testing

@testable import TestSupport

/// HTTP as clients expect it, against a real `extentdb serve` with curl: a wrong method is 405 with
/// `Allow`, an export is offered under the image's own name, and JSON bodies are compact.
@Suite(.serialized) struct HTTPConventionsTests {
    @Test("a method a known path does not serve answers 405 with Allow and the JSON error; an unknown path stays 404")
    func methodNotAllowed() throws {
        try expectServeScript(
            """
            job=$(scan "$PWD/root/top.qcow2")
            id=$(echo "$job" | sed 's/.*"image_id":\\([0-9]*\\).*/\\1/')
            check() {  # check METHOD PATH ALLOW: 405, Allow: ALLOW, body {"error":"method_not_allowed",...}
                $C -X "$1" -H "$T" -D headers.txt -o body.json -w '%{http_code}' "localhost:$P$2" > code.txt
                test "$(cat code.txt)" = 405 || { echo "$1 $2: $(cat code.txt)"; exit 1; }
                allow=$(grep -i '^allow:' headers.txt | cut -d: -f2- | tr -d ' \\r')
                test "$allow" = "$3" || { echo "$1 $2: Allow $allow"; exit 1; }
                python3 -c 'import json, sys; b = json.load(open("body.json")); assert b["error"] == "method_not_allowed" and b["detail"], b'
                grep -qi '^content-type: application/json' headers.txt
            }
            check PUT /v1/images GET
            check POST /v1/images/$id DELETE,GET
            check PATCH /v1/images/$id/extents GET
            check POST /v1/images/$id/export GET
            check GET /v1/scans POST
            check PUT /v1/scans/some-job DELETE,GET
            check DELETE /v1/report GET
            check POST /healthz GET
            check DELETE /metrics GET
            # Without a token too: the route's methods are public in openapi.yaml.
            test "$($C -X PUT -o /dev/null -w '%{http_code}' localhost:$P/v1/images)" = 405
            # A path no route has is still 404; a method the path serves still answers.
            test "$($C -X PUT -H "$T" -o /dev/null -w '%{http_code}' localhost:$P/v1/nothing)" = 404
            test "$($C -X GET -H "$T" -o /dev/null -w '%{http_code}' localhost:$P/v1/nothing)" = 404
            test "$($C -H "$T" -o /dev/null -w '%{http_code}' localhost:$P/v1/images/$id)" = 200
            echo ok
            """)
    }

    @Test("an export is offered as top.qcow2, not top.qcow2.qcow2; another format replaces the extension")
    func exportFileName() throws {
        try expectServeScript(
            """
            top=$(scan "$PWD/root/top.qcow2" | sed 's/.*"image_id":\\([0-9]*\\).*/\\1/')
            base=$(scan "$PWD/root/base.raw" | sed 's/.*"image_id":\\([0-9]*\\).*/\\1/')
            name() {  # name ID FORMAT: the file name of Content-Disposition
                $C -H "$T" -D - -o /dev/null "localhost:$P/v1/images/$1/export?format=$2" \\
                    | grep -i '^content-disposition:' | sed 's/.*filename="\\([^"]*\\)".*/\\1/' | tr -d '\\r'
            }
            test "$(name $top qcow2)" = top.qcow2 || { echo "qcow2: $(name $top qcow2)"; exit 1; }
            test "$(name $top raw)" = top.raw || { echo "raw: $(name $top raw)"; exit 1; }
            test "$(name $top vhd)" = top.vhd || { echo "vhd: $(name $top vhd)"; exit 1; }
            test "$(name $base raw)" = base.raw || { echo "base raw: $(name $base raw)"; exit 1; }
            test "$(name $base qcow2)" = base.qcow2 || { echo "base qcow2: $(name $base qcow2)"; exit 1; }
            # curl -J saves under that name, and it is the image.
            mkdir saved && (cd saved && $C -H "$T" -O -J "localhost:$P/v1/images/$top/export?format=qcow2")
            qemu-img compare -q -f qcow2 -F qcow2 saved/top.qcow2 root/top.qcow2
            echo ok
            """)
    }

    @Test("every JSON body is compact: no whitespace between tokens (the report included)")
    func compactJSON() throws {
        try expectServeScript(
            """
            job=$(scan "$PWD/root/top.qcow2")
            id=$(echo "$job" | sed 's/.*"image_id":\\([0-9]*\\).*/\\1/')
            jobid=$(echo "$job" | sed 's/.*"id":"\\([^"]*\\)".*/\\1/')
            n=0
            for uri in /healthz /v1/images "/v1/images?path=$PWD/root/top.qcow2" /v1/images/$id \\
                "/v1/images/$id/extents?format=interval" "/v1/images/$id/extents?format=legacy" \\
                /v1/report "/v1/report?path=$PWD/root" /v1/scans/$jobid /v1/images/4242 /v1/scans/none /v1/nothing; do
                $C -H "$T" -o body.json "localhost:$P$uri"
                python3 - "$uri" <<'PY'
            import json, sys
            text = open("body.json", encoding="utf-8").read()
            json.loads(text)  # it is JSON
            body = text[:-1] if text.endswith("\\n") else text
            inside = escaped = False
            for position, char in enumerate(body):
                if inside:
                    if escaped: escaped = False
                    elif char == "\\\\": escaped = True
                    elif char == '"': inside = False
                elif char == '"': inside = True
                elif char in " \\t\\r\\n":
                    sys.exit(f"{sys.argv[1]}: whitespace at byte {position}: {body[max(0, position - 40):position + 40]!r}")
            PY
                n=$((n + 1))
            done
            test $n = 12
            # The report over HTTP holds what `extentdb report --output json` prints, compacted.
            $C -H "$T" "localhost:$P/v1/report?path=$PWD/root/top.qcow2" > served-report.json
            $X report --output json root/top.qcow2 > cli-report.json
            python3 -c 'import json, sys; a, b = (json.load(open(f)) for f in sys.argv[1:]); assert a == b, (a, b)' served-report.json cli-report.json
            echo ok
            """)
    }
}
