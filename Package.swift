// swift-tools-version: 6.1
import PackageDescription

let strictSwift: [SwiftSetting] = [.swiftLanguageMode(.v6)]

let package = Package(
    name: "extentdb",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "extentdb", targets: ["extentdb"]),
        // The parsers, file reads, index and scanner as one library, for the fuzz harnesses in Fuzz/ (a
        // separate package that `swift test` and CI do not build).
        .library(name: "ExtentDBScanning", targets: ["ImageFormats", "ImageIO", "AllocationIndex", "Scanner"]),
        // The pure NBD protocol codec, for the NBD harness in Fuzz/.
        .library(name: "ExtentDBNBD", targets: ["NBD"]),
    ],
    dependencies: [
        .package(url: "https://github.com/groue/GRDB.swift", exact: "7.10.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        // The HTTP service (`extentdb serve`). Traits off: no swift-configuration, no full Foundation.
        .package(url: "https://github.com/hummingbird-project/hummingbird", exact: "2.28.1", traits: []),
        .package(url: "https://github.com/apple/swift-nio", exact: "2.101.2"),
        // SHA-256 for content digests (BoringSSL's, which uses the CPU's SHA instructions).
        .package(url: "https://github.com/apple/swift-crypto", exact: "4.5.2"),
        // HTTPS for `serve --tls-cert/--tls-key` (hummingbird's TLS support is built on it).
        .package(url: "https://github.com/apple/swift-nio-ssl", exact: "2.37.6"),
        .package(url: "https://github.com/apple/swift-log", exact: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", exact: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", exact: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", exact: "2.13.0"),
        // The pool catalog: the index on a PostgreSQL server shared by many hosts (`--db postgres://...`).
        .package(url: "https://github.com/vapor/postgres-nio", exact: "1.33.2"),
    ],
    targets: [
        // `_GNU_SOURCE` wrappers: SEEK_DATA/SEEK_HOLE, copy_file_range (Glibc's overlay hides them).
        .target(name: "CExtentShims", linkerSettings: [.linkedLibrary("z"), .linkedLibrary("zstd")]),
        // Pure on-disk format parsers: bytes in, values out. No I/O, no SQLite.
        .target(name: "ImageFormats", swiftSettings: strictSwift),
        // Positional file reads, hole probing, file identity.
        .target(
            name: "ImageIO",
            dependencies: [
                "CExtentShims",
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: strictSwift
        ),
        // The SQLite index; schema comes from migrations/*.sql, embedded at build time.
        .target(
            name: "AllocationIndex",
            dependencies: ["ImageFormats", .product(name: "GRDB", package: "GRDB.swift")],
            swiftSettings: strictSwift,
            plugins: ["MigrationEmbedder"]
        ),
        // The index on PostgreSQL for a pool of hosts (schema from migrations/postgres/*.sql), and the one place
        // that opens an index by its location (a SQLite file or a postgres:// URL).
        .target(
            name: "PoolCatalog",
            dependencies: [
                "AllocationIndex", "ImageFormats",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSwift,
            plugins: ["MigrationEmbedder"]
        ),
        // Image -> layer maps -> composed extents -> store.
        .target(
            name: "Scanner",
            dependencies: ["ImageFormats", "ImageIO", "AllocationIndex"],
            swiftSettings: strictSwift
        ),
        // Index-planned exports: guest data read from data extents only, written as raw/qcow2/vhd/xva.
        .target(
            name: "Export",
            dependencies: ["Scanner", "AllocationIndex", "ImageFormats", "ImageIO", "CExtentShims"],
            swiftSettings: strictSwift
        ),
        // Sparse-usage reports from the index: tables, CSV, JSON, HTML with SVG pictures.
        .target(
            name: "Report",
            dependencies: ["Scanner", "AllocationIndex", "ImageFormats", "ImageIO"],
            swiftSettings: strictSwift
        ),
        // What every front end (CLI, HTTP) prints from the index: map JSON, xapi's read-headers JSON.
        .target(
            name: "Operations",
            dependencies: ["Scanner", "AllocationIndex", "ImageFormats", "ImageIO"],
            swiftSettings: strictSwift
        ),
        // What the data says: chunk digests (SHA-256), zeros found by reading, verification.
        .target(
            name: "Content",
            dependencies: ["Export", "AllocationIndex", "ImageFormats", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strictSwift
        ),
        // The front door every front end calls: lookup and rescan policy, state and summaries, confinement,
        // errors with a stable code.
        .target(
            name: "Catalog",
            dependencies: ["Scanner", "AllocationIndex", "ImageFormats", "ImageIO", "Export", "Report", "Operations", "Content"],
            swiftSettings: strictSwift
        ),
        // `extentdb serve`: Hummingbird routes, error -> HTTP mapping, watcher, metrics.
        .target(
            name: "Server",
            dependencies: [
                "Catalog", "Operations", "Export", "Report", "Scanner", "AllocationIndex", "ImageFormats", "ImageIO", "CExtentShims",
                "NBD", "NBDServer", "PoolCatalog",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSwift
        ),
        // Pure NBD protocol codec: client bytes in, messages out; replies encoded to bytes. No sockets.
        .target(name: "NBD", dependencies: [.product(name: "NIOCore", package: "swift-nio")], swiftSettings: strictSwift),
        // A read-only NBD server on SwiftNIO answering block status from the index and reads through Export.
        .target(
            name: "NBDServer",
            dependencies: [
                "NBD", "Export", "Scanner", "AllocationIndex", "ImageFormats", "ImageIO",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSwift
        ),
        .executableTarget(
            name: "extentdb",
            dependencies: [
                "Catalog", "Scanner", "AllocationIndex", "ImageFormats", "ImageIO", "Export", "Report", "CExtentShims", "NBDServer",
                "Operations", "Server", "PoolCatalog",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSwift
        ),
        .executableTarget(name: "embed-migrations", swiftSettings: strictSwift),
        .plugin(
            name: "MigrationEmbedder",
            capability: .buildTool(),
            dependencies: ["embed-migrations"]
        ),
        // Helpers shared by the test targets: processes, temporary directories, fixtures, a VHD writer.
        .target(name: "TestSupport", dependencies: ["ImageFormats"], path: "Tests/TestSupport", swiftSettings: strictSwift),
        .testTarget(name: "ImageFormatsTests", dependencies: ["ImageFormats"], swiftSettings: strictSwift),
        .testTarget(
            name: "AllocationIndexTests",
            dependencies: ["AllocationIndex", "ImageFormats", "TestSupport", .product(name: "GRDB", package: "GRDB.swift")],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "ScannerTests",
            dependencies: ["Scanner", "ImageFormats", "ImageIO", "AllocationIndex", "TestSupport"],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "ExportTests",
            dependencies: ["Export", "Scanner", "AllocationIndex", "ImageFormats", "ImageIO", "TestSupport"],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "ReportTests",
            dependencies: ["Report", "Scanner", "AllocationIndex", "ImageFormats", "ImageIO", "TestSupport"],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "CatalogTests",
            dependencies: ["Catalog", "Report", "Scanner", "AllocationIndex", "Export", "ImageFormats", "ImageIO", "TestSupport"],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "NBDTests",
            dependencies: ["NBD", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "NBDServerTests",
            dependencies: [
                "NBDServer", "NBD", "Export", "Scanner", "AllocationIndex", "TestSupport", .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "ServerTests",
            dependencies: [
                "Server", "Catalog", "Operations", "AllocationIndex", "Scanner", "Report", "TestSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "PoolCatalogTests",
            dependencies: ["PoolCatalog", "AllocationIndex", "ImageFormats", "Scanner", "TestSupport"],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "CLITests",
            dependencies: ["extentdb", "AllocationIndex", "TestSupport", .product(name: "GRDB", package: "GRDB.swift")],
            swiftSettings: strictSwift
        ),
    ]
)
