import ArgumentParser
import Foundation
import LISAClient

/// Options every command takes.
struct GlobalOptions: ParsableArguments {
    enum Output: String, ExpressibleByArgument, CaseIterable {
        case table, json
    }

    @Option(help: "Server URL (LISA_URL; default http://127.0.0.1:8080).")
    var url: String?

    @Option(name: .customLong("api-key"), help: "Admin key or API token (LISA_API_KEY).")
    var apiKey: String?

    @Option(help: "Output format: table or json.")
    var output: Output = .table

    func makeClient() -> LISAClient {
        let environment = ProcessInfo.processInfo.environment
        return LISAClient(
            baseURL: url ?? environment["LISA_URL"] ?? "http://127.0.0.1:8080",
            apiKey: apiKey ?? environment["LISA_API_KEY"]
        )
    }
}

/// Runs a command body and turns any failure into one line on stderr and exit code 1.
func reportingErrors(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let error as ExitCode {
        throw error
    } catch let error as ValidationError {
        throw error
    } catch {
        FileHandle.standardError.write(Data("lisactl: error: \(error)\n".utf8))
        throw ExitCode.failure
    }
}
