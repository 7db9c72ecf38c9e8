// swift-tools-version:6.1
// A script that talks to a LISA server with LISAKit's typed client.
import PackageDescription

let package = Package(
    name: "ClientScript",
    platforms: [.macOS(.v15)],
    dependencies: [.package(name: "lisa-swift", path: "../..")],
    targets: [
        .executableTarget(name: "ClientScript", dependencies: [.product(name: "LISAKit", package: "lisa-swift")])
    ]
)
