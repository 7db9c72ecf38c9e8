import ArgumentParser
import Foundation
import LISAClient

struct WhoamiCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "whoami", abstract: "Show who the credential signs in as and what it may do.")
    @OptionGroup var global: GlobalOptions

    func run() async throws {
        try await reportingErrors {
            let identity = try await global.makeClient().whoami()
            switch global.output {
            case .json: try printJSON(identity)
            case .table:
                var roles: [String] = []
                if identity.isAdmin { roles.append("admin") }
                if identity.isRagAdmin { roles.append("rag-admin") }
                if identity.mayCallInference { roles.append("inference") }
                if identity.mayCreateTokens { roles.append("api-tokens") }
                printTable(
                    ["USER", "SIGNED IN WITH", "GROUPS", "MAY"],
                    [[identity.username, identity.method.rawValue, identity.groups.joined(separator: ","), roles.joined(separator: ",")]]
                )
            }
        }
    }
}
