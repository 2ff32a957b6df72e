import Foundation
import Testing

@testable import TestSupport

/// Makes a test CA and a server certificate for 127.0.0.1 and localhost signed by it (ca.pem, server.pem,
/// server.key), and a second key that belongs to no certificate (other.key).
let makeTestCertificates = """
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj '/CN=extentdb test CA' -keyout ca.key -out ca.pem 2> /dev/null
    openssl req -newkey rsa:2048 -nodes -subj '/CN=localhost' -keyout server.key -out server.csr 2> /dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > san.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile san.ext -out server.pem 2> /dev/null
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out other.key 2> /dev/null
    chmod 600 server.key other.key
    """

/// `serve --tls-cert/--tls-key`: HTTPS that curl accepts against a test CA, and refusals that name the file.
@Suite(.serialized) struct TLSTests {
    static let startTLSServer =
        makeTestCertificates + "\n"
        + startServer.replacingOccurrences(
            of: "--token-file token", with: "--token-file token --tls-cert server.pem --tls-key server.key"
        ).replacingOccurrences(of: "C=\"curl -s --max-time 20\"", with: "C=\"curl -s --max-time 20 --cacert ca.pem\"")

    @Test(
        "HTTPS with a test CA: curl verifies the certificate, the token still guards /v1, an export equals the image; plain HTTP is refused"
    )
    func servesHTTPS() throws {
        try expectServeScript(
            """
            U="https://localhost:$P"
            grep -q 'serving HTTPS with the certificate in' serve.log
            test "$($C -o /dev/null -w '%{http_code}' $U/healthz)" = 200
            test "$($C -o /dev/null -w '%{http_code}' $U/v1/images)" = 401
            id=$($C -H "$T" -X POST -d "{\\"path\\": \\"$PWD/root/top.qcow2\\"}" $U/v1/scans | sed 's/.*"id":"\\([^"]*\\)".*/\\1/')
            for _ in $(seq 200); do
                job=$($C -H "$T" $U/v1/scans/$id)
                case "$job" in *'"state":"succeeded"'*) break;; *'"state":"failed"'*) echo "$job"; exit 1;; esac
                sleep 0.05
            done
            image=$(echo "$job" | sed 's/.*"image_id":\\([0-9]*\\).*/\\1/')
            $C -H "$T" "$U/v1/images/$image/export?format=raw" -o export.raw
            qemu-img compare -q -f raw -F qcow2 export.raw root/top.qcow2
            # Without the CA, curl does not trust the certificate (exit 60); TLS 1.1 is not offered (35).
            status=0; curl -s --max-time 10 -o /dev/null $U/healthz || status=$?
            test $status = 60 || { echo "untrusted: $status"; exit 1; }
            status=0; curl -s --max-time 10 --cacert ca.pem --tls-max 1.1 -o /dev/null $U/healthz || status=$?
            test $status != 0 || { echo "TLS 1.1 was accepted"; exit 1; }
            # A plain-HTTP request to the HTTPS port gets no HTTP answer.
            code=$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' http://localhost:$P/healthz || true)
            test "$code" = 000 || { echo "plain HTTP answered $code"; exit 1; }
            echo ok
            """, prologue: Self.startTLSServer)
    }

    @Test(
        "a missing file, a non-PEM file, a key of another certificate, one flag alone and TLS on a Unix socket are refused, naming what is wrong"
    )
    func refusals() throws {
        let workspace = try makeServeWorkspace()
        defer { workspace.cleanup() }
        let result = try script(
            makeTestCertificates + "\n"
                + """
                echo "serve-token-0123456789abcdef" > token
                try() { local status=0; timeout 20 $X serve --listen 127.0.0.1:0 --root root --token-file token --db index.sqlite "$@" > /dev/null 2> err.txt || status=$?; echo "$status $(head -n 1 err.txt | head -c 300)"; }
                try --tls-cert missing.pem --tls-key server.key
                try --tls-cert token --tls-key server.key
                try --tls-cert server.pem --tls-key other.key
                try --tls-cert server.pem
                try --tls-cert server.pem --tls-key server.key --listen unix:$PWD/http.sock
                """, database: workspace.path("index.sqlite"), in: workspace.url)
        let lines = result.stdout.split(separator: "\n").map(String.init)
        #expect(lines.count == 5, "\(result.stdout)\n\(result.stderr)")
        guard lines.count == 5 else { return }
        #expect(
            lines[0].hasPrefix("1 ") && lines[0].contains("--tls-cert") && lines[0].contains("missing.pem: cannot read it"), "\(lines[0])")
        #expect(
            lines[1].hasPrefix("1 ") && lines[1].contains("/token: no certificate in it")
                || lines[1].contains("token: not a PEM certificate"), "\(lines[1])")
        #expect(lines[2].hasPrefix("1 ") && lines[2].contains("other.key does not match the certificate"), "\(lines[2])")
        #expect(lines[3].hasPrefix("2 ") && lines[3].contains("--tls-cert and --tls-key go together"), "\(lines[3])")
        #expect(lines[4].hasPrefix("1 ") && lines[4].contains("a Unix socket"), "\(lines[4])")
    }
}
