import Foundation
import Logging
import Testing

@testable import LISAKit

@Suite("Configuration")
struct ConfigurationTests {
    func write(_ text: String, ext: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("lisa-config-\(UUID().uuidString).\(ext)").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test("defaults, then the file, then the environment")
    func precedence() throws {
        let path = try write(
            """
            server: {host: 0.0.0.0, port: 9000, maxRequestBodySize: 2048}
            dataDir: /var/lib/lisa
            upstream: {connectTimeoutSeconds: 2.5, requestTimeoutSeconds: 120}
            logLevel: debug
            auth: {authority: https://idp.example.com/realms/lisa, clientId: lisa, jwtGroupsProperty: realm_access.roles,
                   adminGroup: lisa-admins, userGroup: lisa-users, apiGroup: lisa-api}
            models:
              - modelId: chat-small
                modelName: Qwen/Qwen2.5-0.5B
                modelType: textgen
                inferenceContainer: vllm
                endpoints: [{url: http://10.0.0.5:8000/v1, weight: 2, apiKey: k}]
                allowedGroups: []
            """, ext: "yaml")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let configuration = try LISAConfiguration.load(file: path, environment: ["LISA_PORT": "9100", "LISA_ADMIN_KEY": "0123456789abcdef"])
        #expect(configuration.host == "0.0.0.0")
        #expect(configuration.port == 9100, "the environment wins over the file")
        #expect(configuration.maxRequestBodySize == 2048)
        #expect(configuration.dataDirectory == "/var/lib/lisa")
        #expect(configuration.upstreamTimeouts.connect == .milliseconds(2500))
        #expect(configuration.upstreamTimeouts.request == .seconds(120))
        #expect(configuration.logLevel == .debug)
        #expect(configuration.adminKey == "0123456789abcdef")
        #expect(configuration.models.first?.endpoints.first?.weight == 2)
        #expect(configuration.access == AccessConfiguration(adminGroup: "lisa-admins", userGroup: "lisa-users", apiGroup: "lisa-api"))
        #expect(configuration.oidc?.authority == "https://idp.example.com/realms/lisa")
        #expect(configuration.oidc?.clientId == "lisa" && configuration.oidc?.groupsClaim == "realm_access.roles")

        let defaults = try LISAConfiguration.load(file: nil, environment: [:])
        #expect(defaults.host == "127.0.0.1" && defaults.port == 8080 && defaults.dataDirectory == ".lisa")
    }

    @Test("a misspelled key at any depth is an error with its line, column and the key meant")
    func unknownKeys() throws {
        let path = try write(
            """
            server: {port: 8080}
            auth:
              userGrop: staff
            rateLimits:
              groups:
                team.a: {requestsPerMinute: 10, burst: 2, burts: 3}
            rag: {ingestion: {concurency: 4}}
            models:
              - modelId: m
                modelName: echo
                modelTyp: textgen
                modelUrl: http://127.0.0.1:1/v1
                launch: {command: "x {port}", kubernetes: {image: a, resources: {limits: {nvidia.com/gpu: 1}}}}
            telemetry: true
            """, ext: "yaml")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let error = try #require(throws: ConfigurationError.self) { try LISAConfiguration.load(file: path, environment: [:]) }
        let lines = error.description.split(separator: "\n").map(String.init)
        #expect(lines.contains("\(path):3:3: unknown key 'auth.userGrop' (did you mean 'userGroup'?)"), "\(lines)")
        #expect(lines.contains("\(path):11:5: unknown key 'models[0].modelTyp' (did you mean 'modelType'?)"), "\(lines)")
        #expect(lines.contains("\(path):6:47: unknown key 'rateLimits.groups.team.a.burts' (did you mean 'burst'?)"), "\(lines)")
        #expect(lines.contains("\(path):7:19: unknown key 'rag.ingestion.concurency' (did you mean 'concurrency'?)"), "\(lines)")
        #expect(lines.contains("\(path):14:1: unknown key 'telemetry'"), "\(lines)")
        #expect(lines.count == 5, "free-form members (resources) and dictionary keys (groups) are not unknown: \(lines)")

        let json = try write(#"{"auth": {"adminGroup": "a", "userGrop": "b"}}"#, ext: "json")
        defer { try? FileManager.default.removeItem(atPath: json) }
        let jsonError = try #require(throws: ConfigurationError.self) { try LISAConfiguration.load(file: json, environment: [:]) }
        #expect(jsonError.description == "\(json): unknown key 'auth.userGrop' (did you mean 'userGroup'?)")

        let broken = try write("auth:\n  userGroup: [staff\n", ext: "yaml")
        defer { try? FileManager.default.removeItem(atPath: broken) }
        let syntax = try #require(throws: ConfigurationError.self) { try LISAConfiguration.load(file: broken, environment: [:]) }
        #expect(syntax.description.contains("is not valid YAML") && syntax.description.contains("3:1"), "\(syntax)")
    }

    @Test("JSON files work too, and bad values are named")
    func jsonAndErrors() throws {
        let json = try write(#"{"server":{"port":8181},"models":[{"modelId":"e","modelType":"embedding","modelUrl":"http://h/v1"}]}"#, ext: "json")
        defer { try? FileManager.default.removeItem(atPath: json) }
        let configuration = try LISAConfiguration.load(file: json, environment: [:])
        #expect(configuration.port == 8181)
        #expect(configuration.models.first?.modelType == .embedding)

        let bad = try write("server: {port: eighty}\n", ext: "yaml")
        defer { try? FileManager.default.removeItem(atPath: bad) }
        #expect {
            try LISAConfiguration.load(file: bad, environment: [:])
        } throws: { error in
            "\(error)".contains("server.port")
        }
        #expect(throws: ConfigurationError.self) { try LISAConfiguration.load(file: nil, environment: ["LISA_PORT": "x"]) }
        #expect(throws: ConfigurationError.self) { try LISAConfiguration.load(file: "/nonexistent/lisa.yaml", environment: [:]) }
    }

    @Test("ui: on by default; the file and LISA_UI_ENABLED turn it off; a bad value is named")
    func webUI() throws {
        let defaults = try LISAConfiguration.load(file: nil, environment: [:])
        #expect(defaults.ui.enabled && defaults.ui.scopes == "openid profile email" && defaults.ui.directory == nil)
        let path = try write("ui: {enabled: false, scopes: openid groups}\n", ext: "yaml")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let file = try LISAConfiguration.load(file: path, environment: [:])
        #expect(!file.ui.enabled && file.ui.scopes == "openid groups")
        let overridden = try LISAConfiguration.load(file: path, environment: ["LISA_UI_ENABLED": "yes", "LISA_UI_DIRECTORY": "/srv/ui"])
        #expect(overridden.ui.enabled && overridden.ui.directory == "/srv/ui")
        #expect {
            try LISAConfiguration.load(file: nil, environment: ["LISA_UI_ENABLED": "maybe"])
        } throws: { error in
            "\(error)".contains("LISA_UI_ENABLED")
        }
    }
}
