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
    ],
    dependencies: [.package(name: "extentdb", path: "..")],
    targets: [
        .target(name: "FuzzSupport", dependencies: [.product(name: "ExtentDBScanning", package: "extentdb")]),
        .target(name: "FuzzQCOW2", dependencies: ["FuzzSupport", .product(name: "ExtentDBScanning", package: "extentdb")]),
        .target(name: "FuzzVHD", dependencies: ["FuzzSupport", .product(name: "ExtentDBScanning", package: "extentdb")]),
        .target(name: "FuzzExtentRuns", dependencies: [.product(name: "ExtentDBScanning", package: "extentdb")]),
    ]
)
