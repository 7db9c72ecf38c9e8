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

func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    encoder.dateEncodingStrategy = .iso8601
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

/// Prints rows as aligned columns under a header.
func printTable(_ header: [String], _ rows: [[String]]) {
    let widths = header.indices.map { column in ([header] + rows).map { $0[column].count }.max() ?? 0 }
    for row in [header] + rows {
        print(row.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }.joined(separator: "  "))
    }
}

struct ModelsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "models", abstract: "List, show, create, update, start, stop and delete models; read replica logs.",
        subcommands: [List.self, Get.self, Create.self, Update.self, Start.self, Stop.self, Delete.self, Logs.self, Test.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List registered models.")
        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await reportingErrors {
                let models = try await global.makeClient().models()
                switch global.output {
                case .json: try printJSON(models.map { ModelView($0) })
                case .table:
                    printTable(
                        ["MODEL ID", "MODEL NAME", "TYPE", "CONTAINER", "STATUS", "HEALTH", "SOURCE", "ENDPOINTS"],
                        models.map { model in
                            [
                                model.definition.modelId, model.definition.modelName, model.definition.modelType.rawValue,
                                model.definition.inferenceContainer.rawValue, model.status, model.health, model.source,
                                model.definition.resolvedEndpoints.map(\.url).joined(separator: ","),
                            ]
                        }
                    )
                }
            }
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one model.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The model's modelId.") var modelId: String

        func run() async throws {
            try await reportingErrors {
                let model = try await global.makeClient().model(id: modelId)
                switch global.output {
                case .json: try printJSON(ModelView(model))
                case .table:
                    printTable(
                        ["FIELD", "VALUE"],
                        [
                            ["modelId", model.definition.modelId], ["modelName", model.definition.modelName],
                            ["modelType", model.definition.modelType.rawValue],
                            ["inferenceContainer", model.definition.inferenceContainer.rawValue],
                            ["status", model.status], ["statusReason", model.statusReason ?? ""], ["health", model.health],
                            ["source", model.source],
                            ["streaming", String(model.definition.streaming)],
                            ["endpoints", model.definition.resolvedEndpoints.map(\.url).joined(separator: ", ")],
                            ["allowedGroups", model.definition.allowedGroups.joined(separator: ", ")],
                            ["loadBalancing", (model.definition.loadBalancing ?? .powerOfTwoChoices).rawValue],
                            ["fallbacks", model.definition.fallbacks.joined(separator: ", ")],
                        ]
                    )
                    if let replicas = model.replicas {
                        print()
                        printTable(
                            ["REPLICA", "STATE", "URL", "PID", "RESTARTS", "DETAIL"],
                            replicas.map { [$0.replicaId, $0.state.rawValue, $0.url ?? "", $0.handle ?? "", String($0.restarts), $0.detail ?? ""] }
                        )
                    }
                    print()
                    printTable(
                        ["ENDPOINT", "WEIGHT", "HEALTH", "CIRCUIT", "IN FLIGHT", "EWMA LATENCY"],
                        model.endpointStatus.map { status in
                            [
                                // unknown until the endpoint has answered (servers before it: healthy/unhealthy from the flag)
                                status.url, String(status.weight), status.health ?? (status.healthy ? "healthy" : "unhealthy"), status.circuit,
                                String(status.inFlight),
                                String(format: "%.1f ms", status.ewmaLatencyMilliseconds),
                            ]
                        }
                    )
                }
            }
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a model from a YAML or JSON file.")
        @OptionGroup var global: GlobalOptions
        @Option(name: .shortAndLong, help: "A file with one model definition (the fields of a configuration file's models entry).")
        var file: String
        @Flag(help: "Follow the status until the model is InService or Failed, printing each change.") var wait = false

        func run() async throws {
            try await reportingErrors {
                let definition = try ModelDefinitionFile.load(path: file)
                let client = global.makeClient()
                let model = try await client.createModel(definition)
                try await report(model, verb: "created", wait: wait, client: client, global: global)
            }
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Change a model: a JSON merge patch from a file, or --desired to scale a hosted model."
        )
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The model's modelId.") var modelId: String
        @Option(name: .shortAndLong, help: "A YAML or JSON file with the members to change (null removes one).") var file: String?
        @Option(help: "Set autoScalingConfig.desiredCapacity.") var desired: Int?
        @Flag(help: "Follow the status until the change is applied.") var wait = false

        func run() async throws {
            try await reportingErrors {
                var patch: [String: JSONValue] = [:]
                if let file {
                    guard case .object(let members) = try ModelDefinitionFile.loadJSON(path: file) else {
                        throw ConfigurationError("'\(file)' must hold an object")
                    }
                    patch = members.dictionary
                }
                if let desired {
                    var scaling: [String: JSONValue] = [:]
                    if case .object(let members) = patch["autoScalingConfig"] { scaling = members.dictionary }
                    scaling["desiredCapacity"] = .integer(Int64(desired))
                    patch["autoScalingConfig"] = .object(scaling)
                }
                guard !patch.isEmpty else { throw ConfigurationError("nothing to change: give --file or --desired") }
                let client = global.makeClient()
                let model = try await client.updateModel(id: modelId, patch: .object(patch))
                try await report(model, verb: "updated", wait: wait, client: client, global: global)
            }
        }
    }

    struct Start: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Start a stopped (or failed) model.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The model's modelId.") var modelId: String
        @Flag(help: "Follow the status until the model is InService or Failed.") var wait = false

        func run() async throws {
            try await reportingErrors {
                let client = global.makeClient()
                let model = try await client.updateModel(id: modelId, patch: ["enabled": true])
                try await report(model, verb: "starting", wait: wait, client: client, global: global)
            }
        }
    }

    struct Stop: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop a model: drain its requests, stop its replicas.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The model's modelId.") var modelId: String
        @Flag(help: "Follow the status until the model is Stopped.") var wait = false

        func run() async throws {
            try await reportingErrors {
                let client = global.makeClient()
                let model = try await client.updateModel(id: modelId, patch: ["enabled": false])
                try await report(model, verb: "stopping", wait: wait, client: client, global: global)
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a model: drain its requests, stop its replicas, forget it.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The model's modelId.") var modelId: String
        @Flag(help: "Wait until the model is gone.") var wait = false

        func run() async throws {
            try await reportingErrors {
                let client = global.makeClient()
                var gone = try await client.deleteModel(id: modelId)
                if !gone && wait {
                    var last = ""
                    while !gone {
                        do {
                            let model = try await client.model(id: modelId)
                            if model.status != last {
                                print("\(modelId): \(model.status)")
                                last = model.status
                            }
                            try await Task.sleep(for: .milliseconds(500))
                        } catch let error as LISAClientError where error.status == 404 {
                            gone = true
                        }
                    }
                }
                switch global.output {
                case .json: try printJSON(["modelId": modelId, "deleted": String(gone)])
                case .table: print(gone ? "deleted model \(modelId)" : "deleting model \(modelId)")
                }
            }
        }
    }

    struct Test: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Send a model the smallest real request (one token of chat, or one embedding) and report the latency or the error; exit 1 when it fails."
        )
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The model's modelId.") var modelId: String

        func run() async throws {
            try await reportingErrors {
                let result = try await global.makeClient().testModel(id: modelId)
                switch global.output {
                case .json: try printJSON(result)
                case .table:
                    if result.ok {
                        print("\(result.modelId): ok (\(result.request), \(String(format: "%.1f", result.latencyMilliseconds)) ms)")
                    } else {
                        print("\(result.modelId): failed after \(String(format: "%.1f", result.latencyMilliseconds)) ms: \(result.error ?? "unknown error")\(result.code.map { " [\($0)]" } ?? "")")
                    }
                }
                if !result.ok { throw ExitCode.failure }
            }
        }
    }

    struct Logs: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the last lines of each replica of a hosted model.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The model's modelId.") var modelId: String
        @Option(help: "Lines per replica.") var tail = 100

        func run() async throws {
            try await reportingErrors {
                print(try await global.makeClient().modelLogs(id: modelId, tail: tail), terminator: "")
            }
        }
    }
}

/// Prints a model after an action; with `wait`, follows its status until it settles
/// (InService, Stopped or Failed), printing each change, and fails if it ends Failed.
private func report(_ model: LISAClient.Model, verb: String, wait: Bool, client: LISAClient, global: GlobalOptions) async throws {
    var model = model
    let id = model.definition.modelId
    if wait {
        var last = ""
        while true {
            if model.status != last {
                if global.output == .table { print("\(id): \(model.status)") }
                last = model.status
            }
            if ["InService", "Stopped", "Failed"].contains(model.status) { break }
            try await Task.sleep(for: .milliseconds(500))
            model = try await client.model(id: id)
        }
    }
    switch global.output {
    case .json: try printJSON(ModelView(model))
    case .table: if !wait { print("\(verb) model \(id) (\(model.status))") }
    }
    if wait && model.status == "Failed" {
        throw ConfigurationError("model \(id) failed: \(model.statusReason ?? "no reason given")")
    }
}

/// A model as lisactl prints it in JSON.
struct ModelView: Encodable {
    let model: LISAClient.Model
    init(_ model: LISAClient.Model) { self.model = model }

    enum CodingKeys: String, CodingKey { case source, status, statusReason, replicas, health }

    enum StatusKey: String, CodingKey { case endpointStatus }

    func encode(to encoder: any Encoder) throws {
        try model.definition.encode(to: encoder)
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(model.source, forKey: .source)
        try c.encode(model.status, forKey: .status)
        try c.encodeIfPresent(model.statusReason, forKey: .statusReason)
        try c.encodeIfPresent(model.replicas, forKey: .replicas)
        try c.encode(model.health, forKey: .health)
        var s = encoder.container(keyedBy: StatusKey.self)
        try s.encode(model.endpointStatus, forKey: .endpointStatus)
    }
}

struct ChatCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat", abstract: "Send a prompt to a model and stream the answer (reads stdin without a prompt)."
    )
    @OptionGroup var global: GlobalOptions
    @Option(name: .shortAndLong, help: "The model's modelId.") var model: String
    @Option(name: .customLong("system"), help: "A system prompt.") var systemPrompt: String?
    @Option(name: .customLong("max-tokens"), help: "Most tokens to generate.") var maxTokens: Int?
    @Option(help: "Sampling temperature.") var temperature: Double?
    @Flag(name: .customLong("no-stream"), help: "Wait for the whole answer instead of streaming it.") var noStream = false
    @Option(help: "Ground the answer in this RAG repository and print the sources.") var rag: String?
    @Option(name: .customLong("rag-collection"), help: "The repository's collection.") var ragCollection: String?
    @Argument(help: "The prompt; read from stdin when absent.") var prompt: [String] = []

    func run() async throws {
        try await reportingErrors {
            var text = prompt.joined(separator: " ")
            if text.isEmpty {
                text = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
                    .trimmingCharacters(in: .whitespacesAndNewlines)
            }
            guard !text.isEmpty else { throw ValidationError("no prompt: pass it as an argument or on stdin") }
            var messages: [ChatMessage] = []
            if let systemPrompt { messages.append(.system(SystemMessage(content: .text(systemPrompt)))) }
            messages.append(.user(UserMessage(content: .text(text))))
            var request = ChatCompletionRequest(model: model, messages: messages, maxTokens: maxTokens, temperature: temperature)
            if let rag {
                var grounding: [String: JSONValue] = ["repositoryId": .string(rag)]
                if let ragCollection { grounding["collectionId"] = .string(ragCollection) }
                request.additionalFields["lisa"] = ["rag": .object(grounding)]
            }
            let client = global.makeClient()
            if noStream || global.output == .json {
                request.stream = false
                let completion = try await client.chatCompletion(request)
                if global.output == .json {
                    try printJSON(completion)
                } else {
                    print(completion.choices.first?.message.content?.plainText ?? "")
                    printSources(completion.additionalFields["lisa"])
                }
                return
            }
            let output = FileHandle.standardOutput
            var sources: JSONValue?
            for try await chunk in client.streamChatCompletion(request) {
                if let piece = chunk.choices.first?.delta.content, !piece.isEmpty {
                    output.write(Data(piece.utf8))
                }
                if let lisa = chunk.additionalFields["lisa"] { sources = lisa }
            }
            output.write(Data("\n".utf8))
            printSources(sources)
        }
    }
}

/// `lisactl send`: one request in another dialect, printed exactly as the server answers.
struct SendCommand: AsyncParsableCommand {
    enum DialectName: String, ExpressibleByArgument, CaseIterable {
        case messages, responses
    }

    static let configuration = CommandConfiguration(
        commandName: "send",
        abstract: "Send a prompt as an Anthropic Messages or OpenAI Responses request and print the raw answer (for debugging).",
        discussion: "Prints the JSON answer, or with --stream every server-sent event as it arrives."
    )
    @OptionGroup var global: GlobalOptions
    @Option(help: "The dialect: messages (POST /v1/messages) or responses (POST /v1/responses).") var dialect: DialectName
    @Option(name: .shortAndLong, help: "The model's modelId.") var model: String
    @Option(name: .customLong("max-tokens"), help: "Most tokens to generate (messages needs one; default 1024).") var maxTokens: Int?
    @Option(name: .customLong("system"), help: "A system prompt (instructions, for responses).") var systemPrompt: String?
    @Option(name: .customLong("previous-response-id"), help: "Continue a stored response (responses).") var previousResponseID: String?
    @Flag(help: "Stream the answer's events.") var stream = false
    @Argument(help: "The prompt.") var prompt: [String]

    func run() async throws {
        try await reportingErrors {
            let text = prompt.joined(separator: " ")
            guard !text.isEmpty else { throw ValidationError("no prompt") }
            var body: [String: JSONValue] = ["model": .string(model), "stream": .bool(stream)]
            let path: String
            switch dialect {
            case .messages:
                path = "/v1/messages"
                body["max_tokens"] = .integer(Int64(maxTokens ?? 1024))
                body["messages"] = [["role": "user", "content": .string(text)]]
                if let systemPrompt { body["system"] = .string(systemPrompt) }
            case .responses:
                path = "/v1/responses"
                body["input"] = .string(text)
                if let maxTokens { body["max_output_tokens"] = .integer(Int64(maxTokens)) }
                if let systemPrompt { body["instructions"] = .string(systemPrompt) }
                if let previousResponseID { body["previous_response_id"] = .string(previousResponseID) }
            }
            let encoded = try JSONEncoder().encode(JSONValue.object(body))
            let output = FileHandle.standardOutput
            for try await chunk in global.makeClient().postRaw(path, body: encoded) {
                output.write(chunk)
            }
            if !stream { output.write(Data("\n".utf8)) }
        }
    }
}

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

struct EmbedCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "embed", abstract: "Compute embeddings of texts.")
    @OptionGroup var global: GlobalOptions
    @Option(name: .shortAndLong, help: "The embedding model's modelId.") var model: String
    @Option(help: "Ask the model for this many dimensions.") var dimensions: Int?
    @Argument(help: "Texts to embed; stdin when absent.") var texts: [String] = []

    func run() async throws {
        try await reportingErrors {
            var inputs = texts
            if inputs.isEmpty {
                let text = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
                    .trimmingCharacters(in: .whitespacesAndNewlines)
                guard !text.isEmpty else { throw ValidationError("no text: pass it as an argument or on stdin") }
                inputs = [text]
            }
            let request = EmbeddingRequest(
                model: model, input: inputs.count == 1 ? .text(inputs[0]) : .texts(inputs), dimensions: dimensions
            )
            let response = try await global.makeClient().embeddings(request)
            switch global.output {
            case .json: try printJSON(response)
            case .table:
                printTable(
                    ["INDEX", "DIMENSIONS", "FIRST VALUES"],
                    response.data.map { item in
                        let values = item.embedding.floatValues ?? []
                        return [
                            String(item.index), String(values.count),
                            values.prefix(4).map { String(format: "%.4f", $0) }.joined(separator: " ") + (values.count > 4 ? " …" : ""),
                        ]
                    }
                )
            }
        }
    }
}

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

struct AdminCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "admin", abstract: "Administer LISA itself.", subcommands: [RotateKey.self, Backup.self, Restore.self, VerifyBackup.self]
    )

    struct RotateKey: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rotate-key",
            abstract: "Replace the admin key; the new key is printed once, the old one works for the grace period."
        )
        @OptionGroup var global: GlobalOptions
        @Option(name: .customLong("grace-period-seconds"), help: "How long the old key keeps working (default 3600).")
        var gracePeriodSeconds: Double?

        func run() async throws {
            try await reportingErrors {
                let rotation = try await global.makeClient().rotateAdminKey(gracePeriodSeconds: gracePeriodSeconds)
                switch global.output {
                case .json: try printJSON(rotation)
                case .table:
                    print("new admin key (shown only now): \(rotation.adminKey)")
                    print("the previous key works until \(ISO8601DateFormatter().string(from: rotation.previousKeyValidUntil))")
                }
            }
        }
    }
}

extension AdminCommand {
    struct Backup: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Download an online backup of the server's embedded state (SQLite, vectors, waiting uploads) as one tar archive.",
            discussion: "The archive is checked against its manifest after the download. A server whose state is in PostgreSQL refuses: use pg_dump."
        )
        @OptionGroup var global: GlobalOptions
        @Option(name: [.customShort("o"), .customLong("output-file")], help: "Where to write the archive (it must not exist).")
        var outputFile: String

        func run() async throws {
            try await reportingErrors {
                guard !FileManager.default.fileExists(atPath: outputFile) else {
                    throw BackupArchiveError("'\(outputFile)' exists; choose a new file")
                }
                let started = ContinuousClock.now
                var client = global.makeClient()
                client.timeout = .seconds(6 * 3600)  // a large data directory over a slow link
                let bytes = try await client.downloadBackup(to: outputFile)
                let manifest: BackupManifest
                do {
                    manifest = try BackupRestore.verify(archive: outputFile)
                } catch {
                    throw BackupArchiveError("the downloaded archive is damaged: \(error)")
                }
                switch global.output {
                case .json: try printJSON(manifest)
                case .table:
                    print(
                        "wrote \(outputFile): \(bytes) bytes, \(manifest.files.count) files, schema \(manifest.schemaVersion),"
                            + " LISA \(manifest.lisaVersion), in \(ContinuousClock.now - started)"
                    )
                }
            }
        }
    }

    struct Restore: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Unpack a backup archive into a new data directory, checking every file against the manifest.",
            discussion: "The directory must not exist or be empty. Then start LISAServe with --data-dir on it."
        )
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The archive `lisactl admin backup` wrote.") var archive: String
        @Option(name: .customLong("data-dir"), help: "The new data directory.") var dataDir: String

        func run() async throws {
            try await reportingErrors {
                let manifest = try BackupRestore.restore(archive: archive, into: dataDir)
                switch global.output {
                case .json: try printJSON(manifest)
                case .table:
                    print(
                        "restored \(manifest.files.count) files (LISA \(manifest.lisaVersion), schema \(manifest.schemaVersion),"
                            + " taken \(manifest.createdAt)) into \(dataDir)"
                    )
                }
            }
        }
    }

    struct VerifyBackup: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "verify-backup", abstract: "Check a backup archive against its manifest; writes nothing."
        )
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The archive.") var archive: String

        func run() async throws {
            try await reportingErrors {
                let manifest = try BackupRestore.verify(archive: archive)
                switch global.output {
                case .json: try printJSON(manifest)
                case .table:
                    printTable(["FILE", "BYTES", "SHA256"], manifest.files.map { [$0.path, String($0.size), $0.sha256] })
                    print("ok: LISA \(manifest.lisaVersion), schema \(manifest.schemaVersion), taken \(manifest.createdAt)")
                }
            }
        }
    }
}

/// Prints the sources of a grounded answer (`"lisa": {"sources": [...]}`).
func printSources(_ lisa: JSONValue?) {
    guard case .object(let members)? = lisa, case .array(let sources)? = members["sources"], !sources.isEmpty else { return }
    print("\nSources:")
    for (index, source) in sources.enumerated() {
        guard case .object(let fields) = source, case .string(let name)? = fields["documentName"] else { continue }
        print("  [\(index + 1)] \(name)")
    }
}

struct UsageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "usage", abstract: "Requests, tokens and cost (everyone's for admins, your own otherwise).",
        discussion: """
            Examples: lisactl usage --group-by user,model; lisactl usage --from 2026-12-01 --bucket none --group-by group; \
            lisactl usage --user alice --bucket hour --from 1796256000.
            """
    )
    @OptionGroup var global: GlobalOptions
    @Option(help: "Start: an ISO 8601 date or time, or Unix seconds (default 24 hours before --to).") var from: String?
    @Option(help: "End (default now).") var to: String?
    @Option(help: "hour, day, month or none (default day).") var bucket: String?
    @Option(name: .customLong("group-by"), help: "Comma-separated: user, model, group, token.") var groupBy: String?
    @Option(help: "Only this user's calls.") var user: String?
    @Option(help: "Only calls to this model.") var model: String?

    func run() async throws {
        try await reportingErrors {
            var parameters: [String: String] = [:]
            for (name, value) in [("from", from), ("to", to), ("bucket", bucket), ("groupBy", groupBy), ("user", user), ("model", model)] {
                if let value { parameters[name] = value }
            }
            let report = try await global.makeClient().usage(parameters)
            switch global.output {
            case .json: try printJSON(report)
            case .table:
                let dimensions = report.groupBy
                let header =
                    (report.bucket == .none ? [] : ["START"]) + dimensions.map { $0.rawValue.uppercased() } + [
                        "REQUESTS", "ERRORS", "INPUT", "OUTPUT", "COST",
                    ]
                let timed = report.bucket != .none
                var rows = report.data.map { row -> [String] in
                    let keys = dimensions.map { dimension -> String in
                        switch dimension {
                        case .user: row.user ?? ""
                        case .model: row.model ?? ""
                        case .group: row.group ?? ""
                        case .token: row.tokenId ?? "-"
                        }
                    }
                    return (timed ? [row.start.map { Self.format($0, report.bucket) } ?? ""] : []) + keys + Self.figures(row)
                }
                var total = (timed ? ["total"] : []) + dimensions.map { _ in "" } + Self.figures(report.totals)
                if !timed && !dimensions.isEmpty { total[0] = "total" }
                if timed || !dimensions.isEmpty || rows.isEmpty { rows.append(total) }
                printTable(header, rows)
                if !report.latency.isEmpty {
                    print("")
                    printTable(
                        ["MODEL", "REQUESTS", "P50 MS", "P99 MS", "TTFT P50 MS"],
                        report.latency.map { latency in
                            [
                                latency.model, "\(latency.requests)", String(format: "%.1f", latency.p50Ms), String(format: "%.1f", latency.p99Ms),
                                latency.timeToFirstTokenP50Ms.map { String(format: "%.1f", $0) } ?? "-",
                            ]
                        }
                    )
                }
            }
        }
    }

    static func figures(_ row: UsageReport.Row) -> [String] {
        let estimated = row.estimatedRequests > 0 ? " (~\(row.estimatedRequests) est.)" : ""
        return ["\(row.requests)", "\(row.errors)", "\(row.inputTokens)\(estimated)", "\(row.outputTokens)", formatCost(row.cost)]
    }

    /// A cost with its significant digits: `0.000012`, not `0.0000`; two decimals from 1 up.
    static func formatCost(_ value: Double) -> String {
        guard value.isFinite, value != 0 else { return "0" }
        let magnitude = abs(value)
        if magnitude >= 1 { return String(format: "%.2f", value) }
        // Three significant digits below 1, trailing zeros dropped.
        let decimals = min(12, Int(-log10(magnitude).rounded(.down)) + 3)
        var text = String(format: "%.\(decimals)f", value)
        while text.hasSuffix("0") { text.removeLast() }
        if text.hasSuffix(".") { text.removeLast() }
        return text
    }

    static func format(_ date: Date, _ bucket: UsageQuery.Bucket) -> String {
        let text = ISO8601DateFormatter().string(from: date)
        switch bucket {
        case .hour: return String(text.prefix(16)) + "Z"
        case .day: return String(text.prefix(10))
        case .month: return String(text.prefix(7))
        case .none: return ""
        }
    }
}

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
