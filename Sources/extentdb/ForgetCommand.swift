import AllocationIndex
import ArgumentParser
import Foundation
import ImageIO
import Report

struct ForgetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "forget",
        abstract: "Remove images and all their scans from the index (the image files are not touched).")

    @OptionGroup var index: IndexOptions

    @Argument(help: ArgumentHelp("Images to forget, as indexed (deleted files too).", valueName: "path"))
    var paths: [String]

    @Option(help: "human or json.")
    var output: OutputFormat = .human

    func validate() throws {
        if paths.isEmpty { throw ValidationError("give at least one image") }
    }

    func run() throws {
        let store = try index.openStore(existing: true)
        guard !store.isReadOnly else { throw CommandFailure(StoreError.readOnly(index.resolvedPath).description) }
        var candidates: [String: String] = [:]  // recorded path -> as given
        for path in paths {
            let absolute = PathResolver.absolute(path, relativeTo: PathResolver.currentDirectory())
            candidates[PathResolver.canonical(absolute) ?? absolute] = path
            candidates[absolute] = candidates[absolute] ?? path
        }
        let forgotten = Set(try store.forget(paths: Array(candidates.keys)))
        let unknown = paths.filter { given in !candidates.contains { forgotten.contains($0.key) && $0.value == given } }
        try LifecycleOutput.print(
            output, ["forgotten": forgotten.sorted(), "not_indexed": unknown],
            human: {
                for path in forgotten.sorted() { Console.print("forgot \(TerminalText.name(path))") }
                for path in unknown { Console.error("extentdb: \(path): not in the index") }
                Console.print("\(Plural.count(forgotten.count, "image")) forgotten")
            })
        if !unknown.isEmpty { throw ExitCode(ExitStatus.failure) }
    }
}

struct PruneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prune",
        abstract: "Forget every indexed image whose file is gone (and failures recorded for files that are gone).")

    @OptionGroup var index: IndexOptions

    @Flag(help: "Only list what would be forgotten.")
    var dryRun = false

    @Option(help: "human or json.")
    var output: OutputFormat = .human

    func run() throws {
        let store = try index.openStore(existing: true)
        if !dryRun, store.isReadOnly { throw CommandFailure(StoreError.readOnly(index.resolvedPath).description) }
        let gone = try store.knownImagePaths().filter { !FileManager.default.fileExists(atPath: $0) }
        let forgotten = dryRun ? gone : try store.forget(paths: gone)
        try LifecycleOutput.print(
            output, [dryRun ? "would_forget" : "forgotten": forgotten],
            human: {
                for path in forgotten { Console.print("\(dryRun ? "would forget" : "forgot") \(TerminalText.name(path))") }
                Console.print("\(Plural.count(forgotten.count, "image")) \(dryRun ? "would be " : "")forgotten")
            })
    }
}

/// Output of the index-maintenance commands: a JSON object, or human lines.
enum LifecycleOutput {
    static func print(_ format: OutputFormat, _ object: [String: Any], human: () -> Void) throws {
        switch format {
        case .json:
            // An object JSON cannot hold is a bug to report, never an empty answer.
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])
            Console.print(String(decoding: data, as: UTF8.self))
        case .human:
            human()
        }
        try Console.flushStandardOutput()
    }
}
