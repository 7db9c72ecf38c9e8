// swift-tools-version:6.1
// A Swift program that calls a model through LISA's routing, with no HTTP server.
import PackageDescription

let package = Package(
    name: "InProcess",
    platforms: [.macOS(.v15)],
    dependencies: [.package(name: "lisa-swift", path: "../..")],
    targets: [
        .executableTarget(name: "InProcess", dependencies: [.product(name: "LISAKit", package: "lisa-swift")])
    ]
)
