import Foundation
import Testing

@testable import TestSupport

/// `openapi.yaml` is checked by openapi-spec-validator (PyPI), the checker client generators trust: a
/// document it refuses is one they refuse. scripts/install-deps.sh installs it in `.build/openapi-venv`.
@Suite struct OpenAPIValidityTests {
    /// The validator: `$OPENAPI_SPEC_VALIDATOR`, the one install-deps.sh puts in the venv, else one on PATH.
    static func validator() -> URL? {
        let environment = ProcessInfo.processInfo.environment
        var candidates: [String] = []
        if let given = environment["OPENAPI_SPEC_VALIDATOR"] { candidates.append(given) }
        candidates.append(packageRoot.appendingPathComponent(".build/openapi-venv/bin/openapi-spec-validator").path)
        for directory in (environment["PATH"] ?? "").split(separator: ":") {
            candidates.append(directory + "/openapi-spec-validator")
        }
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }.map { URL(fileURLWithPath: $0) }
    }

    @Test("openapi.yaml passes openapi-spec-validator, and the validator refuses the stray key an unquoted comma makes")
    func documentIsValid() throws {
        let validator = try #require(Self.validator(), "openapi-spec-validator not found: run scripts/install-deps.sh")
        let document = packageRoot.appendingPathComponent("openapi.yaml")
        let result = try runProcess(validator, [document.path])
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        #expect(result.stdout.contains("OK"), "\(result.stdout)")

        // The control: the same document with one description's quotes taken off (the mistake that made it
        // invalid before) is refused, so a pass above means the validator read the document.
        let text = try String(contentsOf: document, encoding: .utf8)
        let quoted = try #require(
            text.range(of: #"\{description: "[^"]*, [^"]*""#, options: .regularExpression), "no quoted description with a comma left")
        let broken = text.replacingCharacters(in: quoted, with: text[quoted].replacingOccurrences(of: "\"", with: ""))
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        try broken.write(toFile: directory.path("openapi.yaml"), atomically: true, encoding: .utf8)
        let refused = try runProcess(validator, [directory.path("openapi.yaml")])
        #expect(refused.status != 0, "\(refused.stdout)")
        #expect(refused.stdout.contains("Validation Error"), "\(refused.stdout)\n\(refused.stderr)")
    }
}
