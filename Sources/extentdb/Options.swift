import AllocationIndex
import ArgumentParser
import Foundation
import ImageFormats
import PoolCatalog
import ImageIO
import Scanner

/// The index location every command takes.
struct IndexOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "Index database: a SQLite file, or a pool catalog on PostgreSQL (postgres://USER@HOST:PORT/DB, postgres://USER@/DB?host=SOCKETDIR).",
            discussion:
                "Default: $EXTENTDB_DB, else $XDG_DATA_HOME/extentdb/index.sqlite (~/.local/share/extentdb/index.sqlite). A PostgreSQL password comes from PGPASSWORD or ~/.pgpass, never from the URL.",
            valueName: "path"))
    var db: String?

    var resolvedPath: String {
        if let db { return db }
        let environment = ProcessInfo.processInfo.environment
        if let path = environment["EXTENTDB_DB"], !path.isEmpty { return path }
        if let data = environment["XDG_DATA_HOME"], !data.isEmpty { return data + "/extentdb/index.sqlite" }
        let home = environment["HOME"] ?? NSHomeDirectory()
        return home + "/.local/share/extentdb/index.sqlite"
    }

    /// True when neither --db nor $EXTENTDB_DB chose the file: the default location is created private.
    var isDefaultLocation: Bool {
        db == nil && (ProcessInfo.processInfo.environment["EXTENTDB_DB"] ?? "").isEmpty
    }

    /// Where the index lives: a SQLite file, or a PostgreSQL catalog (`postgres://...`).
    func location() throws -> IndexLocation {
        do {
            return try IndexLocation(resolvedPath)
        } catch {
            throw CommandFailure("\(error)")
        }
    }

    /// Opens the index, creating it unless `existing` (commands that only read or maintain an index: a
    /// mistyped `--db` must not leave a new, empty index behind and report "0 images"). A PostgreSQL
    /// catalog is connected to and migrated.
    func openStore(existing: Bool = false) throws -> any IndexStoring {
        let location = try location()
        if existing, location.isMissing {
            throw CommandFailure("no index at \(resolvedPath): nothing was scanned into it (check --db, or run 'extentdb scan')")
        }
        do {
            return try location.open(createsPrivately: isDefaultLocation, warn: { Console.error("extentdb: warning: \($0)") })
        } catch let error as StoreError {
            throw CommandFailure("cannot open index: \(error)")
        } catch {
            throw CommandFailure("cannot open index \(location): \(IndexStore.describe(error) ?? "\(error)")")
        }
    }
}

/// `--output` of every command but `report`: text for people, or JSON. `table` is accepted for `human`, so
/// one vocabulary works everywhere (`report` takes `human` for `table`).
enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case human
    case json

    init?(argument: String) {
        self.init(rawValue: argument == "table" ? "human" : argument)
    }
}

/// A failure with a message meant for the user; exit code 1.
struct CommandFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// How the image and its chain are opened: every command that may scan takes these.
struct ChainOptions: ParsableArguments {
    @Option(
        name: [.customShort("f"), .long],
        help: ArgumentHelp(
            "Read the image as raw, qcow2 or vhd instead of probing it (as qemu-img -f).",
            discussion: "Pin the format of guest-writable raw disks: a guest can write any header into sector 0.",
            valueName: "format"))
    var imageFormat: ImageFormat?

    @Flag(help: "Follow backing files, VHD parents and qcow2 data files wherever they are (recorded with the image).")
    var allowOutsideBacking = false

    @Option(
        name: .customLong("trust-root"),
        help: ArgumentHelp(
            "A directory whose images any image may name as its backing file, parent or data file (repeatable).", valueName: "dir"))
    var trustRoots: [String] = []

    func validate() throws {
        for root in trustRoots {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: root, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw ValidationError("--trust-root \(root): not a directory")
            }
        }
    }

    /// The scan options these flags give (trusted roots made canonical).
    var scanOptions: ScanOptions {
        let roots = trustRoots.map { root in
            PathResolver.canonical(PathResolver.absolute(root, relativeTo: PathResolver.currentDirectory())) ?? root
        }
        return ScanOptions(allowsOutsideBacking: allowOutsideBacking, trustedRoots: roots, pinnedFormat: imageFormat)
    }
}

extension ImageFormat: ExpressibleByArgument {}
