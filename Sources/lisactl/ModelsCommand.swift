import ArgumentParser
import Foundation
import LISAClient

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
            abstract:
                "Send a model the smallest real request (one token of chat, or one embedding) and report the latency or the error; exit 1 when it fails."
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
                        print(
                            "\(result.modelId): failed after \(String(format: "%.1f", result.latencyMilliseconds)) ms: \(result.error ?? "unknown error")\(result.code.map { " [\($0)]" } ?? "")"
                        )
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
