// swift-tools-version:6.1
import Foundation
import PackageDescription

/// Every target keeps its imports internal unless its API shows them, and sees only
/// members of modules it imports.
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "lisa-swift",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "LISAOpenAI", targets: ["LISAOpenAI"]),
        .library(name: "LISAAPI", targets: ["LISAAPI"]),
        .library(name: "LISAClient", targets: ["LISAClient"]),
        .library(name: "LISAKit", targets: ["LISAKit"]),
        .library(name: "LISAHummingbird", targets: ["LISAHummingbird"]),
        .library(name: "LISAKitTesting", targets: ["LISAKitTesting"]),
        .library(name: "LISAHummingbirdTesting", targets: ["LISAHummingbirdTesting"]),
        .library(name: "LISAWebUI", targets: ["LISAWebUI"]),
        .executable(name: "LISAServe", targets: ["LISAServe"]),
        .executable(name: "lisactl", targets: ["lisactl"]),
        .executable(name: "lisa-fake-upstream", targets: ["lisa-fake-upstream"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/vapor/sqlite-nio.git", from: "1.13.2"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-async-algorithms.git", from: "1.1.4"),
        .package(url: "https://github.com/apple/swift-atomics.git", from: "1.3.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/vapor/jwt-kit.git", from: "5.8.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/weichsel/ZIPFoundation.git", from: "0.9.20"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.3"),
    ],
    targets: [
        // Light modules, for clients that need no server (lisactl, scripts):
        // the OpenAI dialect's schemas and SSE codec (NIOCore only) …
        .target(
            name: "LISAOpenAI",
            dependencies: [.product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: swiftSettings
        ),
        // … the vocabulary of LISA's own API (model definitions, repositories, tokens,
        // principals, LISAError) …
        .target(
            name: "LISAAPI",
            dependencies: ["LISAOpenAI"],
            swiftSettings: swiftSettings
        ),
        // … and the typed HTTP client of a LISA server.
        .target(
            name: "LISAClient",
            dependencies: [
                "LISAOpenAI", "LISAAPI",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // The library: providers, routing, storage, auth, configuration, RAG, the runtime.
        // It never imports Hummingbird, so it can be embedded in any Swift service; it
        // re-exports LISAOpenAI and LISAAPI.
        .target(
            name: "LISAKit",
            dependencies: [
                "LISAOpenAI", "LISAAPI",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SQLiteNIO", package: "sqlite-nio"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Atomics", package: "swift-atomics"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                "CLISAZlib",
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "Instrumentation", package: "swift-distributed-tracing"),
            ],
            swiftSettings: swiftSettings
        ),
        // zlib, through which LISAKit inflates the one entry it reads from a DOCX upload
        // (with its own bounds: ZIPFoundation's inflate loops forever on a truncated stream).
        .systemLibrary(name: "CLISAZlib", path: "Sources/CLISAZlib", providers: [.apt(["zlib1g-dev"])]),
        // LISA Chat: HTML, CSS and JavaScript modules compiled into the binary by the
        // EmbedWebAssets plugin (no Node toolchain, no files to ship, no CDN).
        .target(
            name: "LISAWebUI",
            exclude: ["Assets"],
            swiftSettings: swiftSettings,
            plugins: ["EmbedWebAssets"]
        ),
        .plugin(name: "EmbedWebAssets", capability: .buildTool(), dependencies: ["lisa-embed-assets"]),
        .executableTarget(name: "lisa-embed-assets", swiftSettings: swiftSettings),
        // The Hummingbird binding: a routes builder an existing Hummingbird app can mount.
        .target(
            name: "LISAHummingbird",
            dependencies: [
                "LISAKit",
                "LISAWebUI",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdHTTP2", package: "hummingbird"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // Test doubles without a server: an upstream in process (InMemoryProvider) and a clock
        // a test moves (ManualClock).
        .target(
            name: "LISAKitTesting",
            dependencies: ["LISAKit"],
            swiftSettings: swiftSettings
        ),
        // Fakes served over HTTP by Hummingbird, for tests and benchmarks: an OpenAI-compatible
        // upstream that speaks the real wire format, and Kubernetes and OpenSearch emulators.
        .target(
            name: "LISAHummingbirdTesting",
            dependencies: [
                "LISAKit",
                "LISAHummingbird",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "LISAServe",
            dependencies: [
                "LISAKit",
                "LISAHummingbird",
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "lisactl",
            dependencies: [
                "LISAClient", "LISAAPI", "LISAOpenAI",
                .product(name: "Yams", package: "Yams"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "lisa-fake-upstream",
            dependencies: [
                "LISAHummingbirdTesting",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        // The examples under Examples/ are standalone packages for users to copy; the root
        // package compiles their sources too, so the test command builds them without
        // building the dependencies twice.
        .executableTarget(
            name: "EmbedInHummingbird",
            dependencies: [
                "LISAKit",
                "LISAHummingbird",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            path: "Examples/EmbedInHummingbird/Sources/EmbedInHummingbird",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "ClientScript",
            dependencies: ["LISAClient"],
            path: "Examples/ClientScript/Sources/ClientScript",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "InProcess",
            dependencies: ["LISAKit"],
            path: "Examples/InProcess/Sources/InProcess",
            swiftSettings: swiftSettings
        ),
        // The RAG vector-store benchmark (Benchmarks/RAG): embedded and pgvector side by side.
        .executableTarget(
            name: "lisa-bench-rag",
            dependencies: ["LISAKit", .product(name: "Logging", package: "swift-log")],
            path: "Benchmarks/RAG",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "LISAKitTests",
            dependencies: [
                "LISAKit",
                "LISAKitTesting",
                "LISAHummingbirdTesting",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ZIPFoundation", package: "ZIPFoundation"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            resources: [.copy("Fixtures")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "LISAHummingbirdTests",
            dependencies: [
                "LISAKit",
                "LISAHummingbird",
                "LISAKitTesting",
                "LISAHummingbirdTesting",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)

// Examples/EmbedInVapor: LISA in a Vapor app (LISAKit without Hummingbird). Compiled when
// LISA_VAPOR_EXAMPLE is set (the test command sets it), so users of the library never
// resolve Vapor; the example's own Package.swift is the one to copy.
if ProcessInfo.processInfo.environment["LISA_VAPOR_EXAMPLE"] != nil {
    package.dependencies.append(.package(url: "https://github.com/vapor/vapor.git", from: "4.122.3"))
    package.targets.append(
        .executableTarget(
            name: "EmbedInVapor",
            dependencies: ["LISAKit", .product(name: "Vapor", package: "vapor")],
            path: "Examples/EmbedInVapor/Sources/EmbedInVapor",
            swiftSettings: swiftSettings
        )
    )
}
