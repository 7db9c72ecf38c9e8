// swift-tools-version:6.1
// An existing Hummingbird app that mounts LISA's routes next to its own.
import PackageDescription

let package = Package(
    name: "EmbedInHummingbird",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "lisa-swift", path: "../.."),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
    ],
    targets: [
        .executableTarget(
            name: "EmbedInHummingbird",
            dependencies: [
                .product(name: "LISAKit", package: "lisa-swift"),
                .product(name: "LISAHummingbird", package: "lisa-swift"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        )
    ]
)
