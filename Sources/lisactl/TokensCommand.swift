import ArgumentParser
import Foundation
import LISAClient

struct TokensCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokens", abstract: "Create, list and revoke API tokens.", subcommands: [Create.self, List.self, Revoke.self]
    )

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create an API token; its secret is printed once.",
            discussion: "Without --user, a token for yourself (admins and apiGroup members). With --user (admins), one for that user."
        )
        @OptionGroup var global: GlobalOptions
        @Option(help: "A name for the token.") var name: String
        @Option(help: "Create it for this user (admin only).") var user: String?
        @Option(help: "Groups of a token made for another user (repeatable).") var group: [String] = []
        @Option(name: .customLong("expires-in-days"), help: "Lifetime in days (default 90).") var expiresInDays: Int?
        @Flag(name: .customLong("system"), help: "A system token (admin only).") var system = false
        @Option(name: .customLong("budget-tokens"), help: "A budget of the token's own: tokens per --budget-period.") var budgetTokens: Int?
        @Option(name: .customLong("budget-cost"), help: "A budget of the token's own: cost per --budget-period.") var budgetCost: Double?
        @Option(name: .customLong("budget-period"), help: "day or month (default day).") var budgetPeriod: String = "day"

        func run() async throws {
            try await reportingErrors {
                var request = APITokenCreateRequest(name: name, groups: group.isEmpty ? nil : group, expiresInDays: expiresInDays)
                request.isSystemToken = system ? true : nil
                if budgetTokens != nil || budgetCost != nil {
                    guard let period = BudgetLimit.Period(rawValue: budgetPeriod) else {
                        throw ValidationError("--budget-period must be day or month.")
                    }
                    request.budget = BudgetLimit(period: period, tokens: budgetTokens, cost: budgetCost)
                }
                let created = try await global.makeClient().createToken(request, for: user)
                switch global.output {
                case .json: try printJSON(created)
                case .table:
                    print("created token \(created.tokenInfo.id) for \(created.tokenInfo.username)")
                    print("secret (shown only now): \(created.token)")
                }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List tokens (all for admins, your own otherwise).")
        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await reportingErrors {
                let tokens = try await global.makeClient().tokens()
                switch global.output {
                case .json: try printJSON(tokens)
                case .table:
                    printTable(
                        ["ID", "NAME", "USER", "GROUPS", "EXPIRES", "CREATED BY"],
                        tokens.map { token in
                            [
                                token.id, token.name, token.username, token.groups.joined(separator: ","),
                                token.expiresAt.map { ISO8601DateFormatter().string(from: $0) } ?? "never", token.createdBy,
                            ]
                        }
                    )
                }
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a token; it stops working at once.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The token's id (tok_…).") var id: String

        func run() async throws {
            try await reportingErrors {
                try await global.makeClient().revokeToken(id: id)
                switch global.output {
                case .json: try printJSON(["id": id, "revoked": "true"])
                case .table: print("revoked token \(id)")
                }
            }
        }
    }
}
