import Foundation
import Logging
import Testing

@testable import LISAKit

@Suite("Models, registry and state")
struct ModelAndStoreTests {
    @Test("model definitions are validated with the field named", arguments: [
        (#"{"modelId":"","modelUrl":"http://a/v1"}"#, "modelId"),
        (#"{"modelId":"a/b","modelUrl":"http://a/v1"}"#, "modelId"),
        (#"{"modelId":"ok"}"#, "modelUrl"),
        (#"{"modelId":"ok","modelUrl":"ftp://a"}"#, "modelUrl"),
        (#"{"modelId":"ok","endpoints":[{"url":"http://a/v1","weight":0}]}"#, "endpoints[0].weight"),
        (#"{"modelId":"ok","modelUrl":"http://a/v1","modelType":"vision"}"#, "modelType"),
    ])
    func validation(json: String, param: String) throws {
        let model = try JSONDecoder().decode(ModelDefinition.self, from: Data(json.utf8))
        #expect(throws: LISAError.self) { try model.validate() }
        do {
            try model.validate()
        } catch {
            #expect(error.param == param)
            #expect(error.status == 400)
        }
    }

    @Test("unknown model fields are kept and API keys never shown")
    func keepsFieldsAndRedacts() throws {
        let json = #"{"modelId":"q","modelName":"Q","endpoints":[{"url":"http://a/v1","apiKey":"sk-secret"}],"autoScalingConfig":{"minCapacity":1}}"#
        let model = try JSONDecoder().decode(ModelDefinition.self, from: Data(json.utf8))
        try model.validate()
        #expect(model.additionalFields["autoScalingConfig"] == ["minCapacity": 1])
        let stored = String(decoding: try JSONEncoder().encode(model), as: UTF8.self)
        #expect(stored.contains("sk-secret"), "the stored form keeps the key to call the upstream")
        let shown = String(decoding: try JSONEncoder().encode(model.redacted()), as: UTF8.self)
        #expect(!shown.contains("sk-secret"))
        #expect(shown.contains("autoScalingConfig"))
    }

    @Test("the SQLite store keeps models and settings across reopen")
    func sqlitePersistence() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lisa-store-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("lisa.sqlite").path
        let logger = Logger(label: "test")

        var model = ModelDefinition(modelId: "persisted", modelName: "up", modelUrl: "http://127.0.0.1:9/v1")
        model.additionalFields["launch"] = ["command": "vllm serve {modelName} --port {port}"]
        let store = try await SQLiteStateStore.open(path: path, logger: logger)
        let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
        #expect(mode == 0o600, "the state file holds upstream keys: owner-only")
        try await store.insertModel(model)
        await #expect(throws: LISAError.self) { try await store.insertModel(model) }
        try await store.setSetting("k", to: "v1")
        try await store.setSetting("k", to: "v2")
        try await store.close()

        let reopened = try await SQLiteStateStore.open(path: path, logger: logger)
        #expect(try await reopened.models() == [model])
        #expect(try await reopened.model(id: "persisted") == model)
        #expect(try await reopened.setting("k") == "v2")
        #expect(try await reopened.deleteModel(id: "persisted"))
        #expect(try await !reopened.deleteModel(id: "persisted"))
        #expect(try await reopened.models().isEmpty)
        try await reopened.close()
    }

    @Test("a generated admin key is stored only as a hash and verifies after reload")
    func adminKeyBootstrap() async throws {
        let store = MemoryStateStore()
        let (verifier, generated) = try await AdminKey.bootstrap(configured: nil, store: store)
        let key = try #require(generated)
        #expect(key.hasPrefix("lisa-admin-") && key.count > 40)
        #expect(verifier.verify(key))
        #expect(!verifier.verify(key + "x"))
        let stored = try #require(try await store.setting("admin_key_sha256"))
        #expect(!stored.contains(key))
        let (reloaded, second) = try await AdminKey.bootstrap(configured: nil, store: store)
        #expect(second == nil, "the key is generated only once")
        #expect(reloaded.verify(key))
        let (configured, none) = try await AdminKey.bootstrap(configured: "my-own-admin-key-123", store: store)
        #expect(none == nil && configured.verify("my-own-admin-key-123") && !configured.verify(key))
    }

    @Test("a rotated admin key takes over at once; the old one works for the grace period, also after a reload")
    func adminKeyRotation() async throws {
        let store = MemoryStateStore()
        let (keyring, generated) = try await AdminKeyring.load(configured: nil, store: store)
        let old = try #require(generated)
        let rotation = try await keyring.rotate(gracePeriod: 60, store: store)
        #expect(rotation.adminKey != old && rotation.adminKey.hasPrefix("lisa-admin-"))
        #expect(keyring.verify(rotation.adminKey))
        #expect(keyring.verify(old), "within the grace period")
        #expect(!keyring.verify(old, at: Date().addingTimeInterval(61)), "not after it")
        let (reloaded, none) = try await AdminKeyring.load(configured: nil, store: store)
        #expect(none == nil)
        #expect(reloaded.verify(rotation.adminKey) && reloaded.verify(old) && !reloaded.verify(old, at: Date().addingTimeInterval(61)))
        let fixed = AdminKeyring(current: AdminKeyVerifier(key: "from-the-environment-0123"), isConfigured: true)
        await #expect(throws: LISAError.self) { _ = try await fixed.rotate(gracePeriod: 0, store: store) }
    }

    @Test("credentials are read from Authorization: Bearer or Api-Key")
    func presentedCredential() {
        #expect(PresentedCredential.extract(authorization: "Bearer abc", apiKey: nil) == "abc")
        #expect(PresentedCredential.extract(authorization: "bearer  abc ", apiKey: nil) == "abc")
        #expect(PresentedCredential.extract(authorization: nil, apiKey: "tok") == "tok")
        #expect(PresentedCredential.extract(authorization: "Basic xyz", apiKey: nil) == nil)
        #expect(PresentedCredential.extract(authorization: "Bearer ", apiKey: nil) == nil)
    }
}
