import ArgumentParser
import Foundation
import Hummingbird
import LISAHummingbirdTesting
import Logging
import ServiceLifecycle
import UnixSignals

/// `lisa-fake-upstream`: the fake OpenAI-compatible server of `LISAHummingbirdTesting`, standalone.
@main
struct FakeUpstreamCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lisa-fake-upstream",
        abstract: "A fake OpenAI-compatible upstream for tests and benchmarks (echoes the last user message)."
    )

    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port to listen on (0: any free port, printed on start).") var port = 18000
    @Option(name: .customLong("chunk-delay-ms"), help: "Pause between streamed chunks.") var chunkDelayMilliseconds = 20
    @Option(name: .customLong("api-key"), help: "Require this bearer key.") var apiKey: String?
    @Flag(name: .customLong("opensearch"), help: "Serve the OpenSearch k-NN emulator instead of a model.") var openSearch = false
    @Option(name: .customLong("opensearch-user"), help: "With --opensearch: require basic auth as this user.") var openSearchUser: String?
    @Option(name: .customLong("opensearch-password"), help: "With --opensearch: the password.") var openSearchPassword: String?
    @Option(name: .customLong("slow-delay-ms"), help: "How long the model named `slow` takes to answer.") var slowDelayMilliseconds = 5000
    @Flag(name: .customLong("kubernetes"), help: "Serve the Kubernetes API emulator (pods run their command as local processes).")
    var kubernetes = false
    @Option(name: .customLong("kubernetes-token"), help: "With --kubernetes: require this bearer token.") var kubernetesToken: String?
    @Option(name: .customLong("kubernetes-gpus"), help: "With --kubernetes: the node's nvidia.com/gpu count.") var kubernetesGPUs = 0

    func run() async throws {
        if kubernetes {
            let emulator = KubernetesEmulator(token: kubernetesToken, gpus: kubernetesGPUs)
            return try await serve("kubernetes emulator") { emulator.makeApplication(host: host, port: port, onRunning: $0) }
        }
        if openSearch {
            let emulator = OpenSearchEmulator(username: openSearchUser, password: openSearchPassword)
            return try await serve("opensearch emulator") { emulator.makeApplication(host: host, port: port, onRunning: $0) }
        }
        var configuration = FakeUpstream.Configuration()
        configuration.chunkDelay = .milliseconds(chunkDelayMilliseconds)
        configuration.apiKey = apiKey
        configuration.slowDelay = .milliseconds(slowDelayMilliseconds)
        let fake = FakeUpstream(configuration: configuration)
        try await serve("lisa-fake-upstream") { fake.makeApplication(host: host, port: port, onRunning: $0) }
    }

    /// Runs one server until SIGTERM or SIGINT, printing "`name` listening on PORT" once it
    /// listens (unbuffered, so a log file shows it at once).
    private func serve<S: Service>(_ name: String, _ make: (@escaping @Sendable (Int) -> Void) -> S) async throws {
        let app = make { port in FileHandle.standardOutput.write(Data("\(name) listening on \(port)\n".utf8)) }
        let group = ServiceGroup(configuration: .init(services: [app], gracefulShutdownSignals: [.sigterm, .sigint], logger: Logger(label: "fake")))
        try await group.run()
    }
}
