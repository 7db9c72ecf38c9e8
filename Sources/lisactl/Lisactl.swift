import ArgumentParser
import Foundation
import LISAClient

/// `lisactl`: control a LISA server from the shell.
@main
struct Lisactl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lisactl",
        abstract: "Control a LISA server: models, chat, embeddings.",
        discussion: "Defaults come from LISA_URL (http://127.0.0.1:8080) and LISA_API_KEY.",
        version: LISAVersion.description,
        subcommands: [
            ModelsCommand.self, ChatCommand.self, SendCommand.self, EmbedCommand.self, TokensCommand.self, AdminCommand.self, ReposCommand.self,
            DocsCommand.self, SearchCommand.self, WhoamiCommand.self, UsageCommand.self, BudgetsCommand.self,
        ]
    )

    /// Accepts the global options before the command group too
    /// (`lisactl --url U --output json models list`), as the documented synopsis shows.
    static func main() async {
        await main(hoistingGlobalOptions(Array(CommandLine.arguments.dropFirst())))
    }

    /// Moves global options that precede the first command word to the end of the arguments.
    static func hoistingGlobalOptions(_ arguments: [String]) -> [String] {
        let valued: Set<String> = ["--url", "--api-key", "--output"]
        var leading: [String] = []
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            if valued.contains(argument), index + 1 < arguments.count {
                leading += [argument, arguments[index + 1]]
                index += 2
            } else if let name = argument.split(separator: "=", maxSplits: 1).first, argument.contains("="), valued.contains(String(name)) {
                leading.append(argument)
                index += 1
            } else {
                break
            }
        }
        guard !leading.isEmpty, index < arguments.count else { return arguments }
        return Array(arguments[index...]) + leading
    }
}
