import ArgumentParser
import Foundation
import LISAHummingbird
import LISAKit
import Logging
import Metrics

/// `LISAServe`: read the configuration, build the server, run it.
@main
struct LISAServe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "LISAServe",
        abstract: "LISA's OpenAI-compatible LLM gateway.",
        discussion: "Every option can also be set in the configuration file or by the LISA_* environment variable named in its help.",
        version: LISAVersion.description
    )

    @Flag(name: .customLong("check-config"), help: "Validate the configuration (and every model in it) and exit: 0 when it is valid.")
    var checkConfig = false

    @Flag(
        name: .customLong("check-database"),
        help: "Check that the state database (a restored one) is complete for this build, print its tables' rows, and exit: 0 when it is."
    )
    var checkDatabase = false

    @Option(name: .long, help: "Configuration file, YAML or JSON (LISA_CONFIG).")
    var config: String?

    @Option(name: .long, help: "Address to listen on (LISA_HOST; default 127.0.0.1).")
    var host: String?

    @Option(name: .long, help: "Port to listen on (LISA_PORT; default 8080).")
    var port: Int?

    @Option(name: .customLong("data-dir"), help: "Directory for state (LISA_DATA_DIR; default ./.lisa).")
    var dataDir: String?

    @Option(name: .customLong("tls-certificate"), help: "PEM certificate chain: serve HTTPS (LISA_TLS_CERTIFICATE).")
    var tlsCertificate: String?

    @Option(name: .customLong("tls-private-key"), help: "PEM private key of the certificate (LISA_TLS_PRIVATE_KEY).")
    var tlsPrivateKey: String?

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical (LISA_LOG_LEVEL; default info).")
    var logLevel: String?

    func run() async throws {
        var configuration: LISAConfiguration
        do {
            configuration = try LISAConfiguration.load(file: config)
            if let host { configuration.host = host }
            if let port { configuration.port = port }
            if let dataDir { configuration.dataDirectory = dataDir }
            if tlsCertificate != nil || tlsPrivateKey != nil {
                var tls = configuration.serverTLS ?? ServerTLSConfiguration(certificate: "", privateKey: "")
                if let tlsCertificate { tls.certificate = tlsCertificate }
                if let tlsPrivateKey { tls.privateKey = tlsPrivateKey }
                configuration.serverTLS = tls
            }
            if let logLevel {
                guard let level = Logger.Level(rawValue: logLevel.lowercased()) else {
                    throw ConfigurationError("--log-level '\(logLevel)' is not a log level")
                }
                configuration.logLevel = level
            }
            try configuration.validate()
        } catch let error as ConfigurationError {
            throw Self.configurationFailure(error.description)
        }
        if checkConfig {
            for model in configuration.models {
                do {
                    try model.validate()
                } catch {
                    throw Self.configurationFailure("model '\(model.modelId)': \(error.message)\(error.param.map { " (\($0))" } ?? "")")
                }
            }
            print("configuration OK: \(configuration.models.count) models")
            return
        }

        if checkDatabase {
            let check: StateDatabaseCheck
            do {
                let quiet = Logger(label: "lisa.check", factory: { _ in SwiftLogNoOpLogHandler() })
                check = try await StateDatabaseCheck.run(configuration, logger: quiet)
            } catch {
                FileHandle.standardError.write(Data("LISAServe: cannot check the state database: \(error)\n".utf8))
                throw ExitCode.failure
            }
            print(check.text)
            if !check.isComplete { throw ExitCode.failure }
            return
        }

        let logLevel = configuration.logLevel
        LoggingSystem.bootstrap { label in LISALogHandler(label: label, level: logLevel) }
        let logger = Logger(label: "lisa")

        let server: LISAServer
        do {
            // The process's metrics backend: LISA's metrics (and any library's) in Prometheus
            // format at /metrics.
            let prometheus = PrometheusMetrics()
            MetricsSystem.bootstrap(prometheus)
            server = try await LISAServer(configuration: configuration, prometheus: prometheus, logger: logger)
        } catch let error as ConfigurationError {
            throw Self.configurationFailure(error.description)
        } catch let error as LISAError {
            throw Self.startFailure(error.message)
        }
        if let key = server.generatedAdminKey {
            let banner = """
                ================================================================
                LISA generated an admin key. It is shown only this once; only its
                hash is stored (\(configuration.dataDirectory)). Keep it safe:

                    \(key)

                Set LISA_ADMIN_KEY to choose your own key instead.
                ================================================================

                """
            FileHandle.standardOutput.write(Data(banner.utf8))
        }
        try await server.run()
    }

    /// The server cannot start with what it found (a state database a newer LISA wrote, say):
    /// the reason on stderr, exit 69 (EX_UNAVAILABLE), no usage banner.
    static func startFailure(_ message: String) -> ExitCode {
        FileHandle.standardError.write(Data("LISAServe: cannot start: \(message)\n".utf8))
        return ExitCode(69)
    }

    /// A configuration that cannot be used: the reason on stderr, exit 78 (EX_CONFIG), no
    /// usage banner (the command line was fine).
    static func configurationFailure(_ message: String) -> ExitCode {
        FileHandle.standardError.write(Data("LISAServe: configuration error: \(message)\n".utf8))
        return ExitCode(78)
    }
}
