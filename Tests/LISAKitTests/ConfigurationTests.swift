import Foundation
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
            telemetry: {enabled: true}
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
        #expect(configuration.unknownKeys == ["telemetry"])
        #expect(configuration.access == AccessConfiguration(adminGroup: "lisa-admins", userGroup: "lisa-users", apiGroup: "lisa-api"))
        #expect(configuration.oidc?.authority == "https://idp.example.com/realms/lisa")
        #expect(configuration.oidc?.clientId == "lisa" && configuration.oidc?.groupsClaim == "realm_access.roles")

        let defaults = try LISAConfiguration.load(file: nil, environment: [:])
        #expect(defaults.host == "127.0.0.1" && defaults.port == 8080 && defaults.dataDirectory == ".lisa")
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
        #expect(file.unknownKeys.isEmpty)
        let overridden = try LISAConfiguration.load(file: path, environment: ["LISA_UI_ENABLED": "yes", "LISA_UI_DIRECTORY": "/srv/ui"])
        #expect(overridden.ui.enabled && overridden.ui.directory == "/srv/ui")
        #expect {
            try LISAConfiguration.load(file: nil, environment: ["LISA_UI_ENABLED": "maybe"])
        } throws: { error in
            "\(error)".contains("LISA_UI_ENABLED")
        }
    }
}
