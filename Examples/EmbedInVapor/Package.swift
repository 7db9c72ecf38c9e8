// swift-tools-version:6.1
// An existing Vapor app that serves LISA's OpenAI routes next to its own: LISAKit needs no
// Hummingbird.
import PackageDescription

let package = Package(
    name: "EmbedInVapor",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "lisa-swift", path: "../.."),
        .package(url: "https://github.com/vapor/vapor.git", from: "4.122.3"),
    ],
    targets: [
        .executableTarget(
            name: "EmbedInVapor",
            dependencies: [
                .product(name: "LISAKit", package: "lisa-swift"),
                .product(name: "Vapor", package: "vapor"),
            ]
        )
    ]
)
