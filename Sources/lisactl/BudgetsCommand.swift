import ArgumentParser
import Foundation
import LISAClient

struct BudgetsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "budgets", abstract: "Where budgets stand: yours, or (admins) a user's with --user and --group."
    )
    @OptionGroup var global: GlobalOptions
    @Option(help: "The user to look at (admin only).") var user: String?
    @Option(help: "That user's groups (repeatable).") var group: [String] = []
    @Option(help: "Include this token's own budget (admin only).") var token: String?

    func run() async throws {
        try await reportingErrors {
            let budgets = try await global.makeClient().budgets(user: user, groups: group, tokenID: token)
            switch global.output {
            case .json: try printJSON(budgets)
            case .table:
                printTable(
                    ["SCOPE", "SUBJECT", "METRIC", "PERIOD", "SPENT", "HELD", "LIMIT", "RESETS"],
                    budgets.data.map { budget in
                        let number: (Double) -> String = { budget.metric == "tokens" ? "\(Int($0))" : UsageCommand.formatCost($0) }
                        return [
                            budget.scope, budget.subject, budget.metric, budget.period.rawValue, number(budget.spent), number(budget.reserved),
                            number(budget.limit), ISO8601DateFormatter().string(from: budget.resetsAt),
                        ]
                    }
                )
            }
        }
    }
}
