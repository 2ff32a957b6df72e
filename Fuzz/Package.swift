// swift-tools-version: 6.1
import PackageDescription

// libFuzzer harnesses for extentdb. Not part of the main package: `swift test` and CI never build it.
// Each harness is a static library exporting `LLVMFuzzerTestOneInput`; scripts/fuzz.sh builds it with
// `-sanitize=fuzzer,address` and links it into a fuzzer binary (libFuzzer supplies `main`).
let package = Package(
    name: "extentdb-fuzz",
    products: [
        .library(name: "FuzzQCOW2", type: .static, targets: ["FuzzQCOW2"]),
        .library(name: "FuzzVHD", type: .static, targets: ["FuzzVHD"]),
        .library(name: "FuzzExtentRuns", type: .static, targets: ["FuzzExtentRuns"]),
        .library(name: "FuzzNBD", type: .static, targets: ["FuzzNBD"]),
    ],
    dependencies: [
        .package(name: "extentdb", path: ".."),
        // The version the main package pins: the codec's messages are NIOCore ByteBuffers.
        .package(url: "https://github.com/apple/swift-nio", exact: "2.101.2"),
    ],
    targets: [
        .target(name: "FuzzSupport", dependencies: [.product(name: "ExtentDBScanning", package: "extentdb")]),
        .target(name: "FuzzQCOW2", dependencies: ["FuzzSupport", .product(name: "ExtentDBScanning", package: "extentdb")]),
        .target(name: "FuzzVHD", dependencies: ["FuzzSupport", .product(name: "ExtentDBScanning", package: "extentdb")]),
        .target(name: "FuzzExtentRuns", dependencies: [.product(name: "ExtentDBScanning", package: "extentdb")]),
        .target(
            name: "FuzzNBD",
            dependencies: [.product(name: "ExtentDBNBD", package: "extentdb"), .product(name: "NIOCore", package: "swift-nio")]
        ),
    ]
)
