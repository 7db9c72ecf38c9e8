import Foundation
import Logging
import Testing

@testable import LISAKit

@Suite("Models, registry and state")
struct ModelAndStoreTests {
    @Test(
        "model definitions are validated with the field named",
        arguments: [
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
            #expect(error.code == .invalidRequest)
        }
    }

    @Test("unknown model fields are kept and API keys never shown")
    func keepsFieldsAndRedacts() throws {
        let json =
            #"{"modelId":"q","modelName":"Q","endpoints":[{"url":"http://a/v1","apiKey":"sk-secret"}],"instanceType":"g5.xlarge","autoScalingConfig":{"minCapacity":1,"blockDeviceVolumeSize":30}}"#
        let model = try JSONDecoder().decode(ModelDefinition.self, from: Data(json.utf8))
        try model.validate()
        #expect(model.additionalFields["instanceType"] == "g5.xlarge")
        #expect(model.autoScalingConfig?.additionalFields["blockDeviceVolumeSize"] == 30, "LISA's members we do not act on are kept too")
        let stored = String(decoding: try JSONEncoder().encode(model), as: UTF8.self)
        #expect(stored.contains("sk-secret"), "the stored form keeps the key to call the upstream")
        let shown = String(decoding: try JSONEncoder().encode(model.redacted()), as: UTF8.self)
        #expect(!shown.contains("sk-secret"))
        #expect(shown.contains("autoScalingConfig") && shown.contains("blockDeviceVolumeSize") && shown.contains("instanceType"))
    }

    @Test("a generated admin key is stored only as a hash and verifies after reload")
    func adminKeyBootstrap() async throws {
        let store = try await SQLStateStore.inMemory()
        let (verifier, generated) = try await AdminKey.bootstrap(configured: nil, settings: store.settings)
        let key = try #require(generated)
        #expect(key.hasPrefix("lisa-admin-") && key.count > 40)
        #expect(verifier.verify(key))
        #expect(!verifier.verify(key + "x"))
        let stored = try #require(try await store.settings.value(for: "admin_key_sha256"))
        #expect(!stored.contains(key))
        let (reloaded, second) = try await AdminKey.bootstrap(configured: nil, settings: store.settings)
        #expect(second == nil, "the key is generated only once")
        #expect(reloaded.verify(key))
        let (configured, none) = try await AdminKey.bootstrap(configured: "my-own-admin-key-123", settings: store.settings)
        #expect(none == nil && configured.verify("my-own-admin-key-123") && !configured.verify(key))
        try await store.close()
    }

    @Test("a rotated admin key takes over at once; the old one works for the grace period, also after a reload")
    func adminKeyRotation() async throws {
        let store = try await SQLStateStore.inMemory()
        let (keyring, generated) = try await AdminKeyring.load(configured: nil, settings: store.settings)
        let old = try #require(generated)
        let rotation = try await keyring.rotate(gracePeriod: 60, settings: store.settings)
        #expect(rotation.adminKey != old && rotation.adminKey.hasPrefix("lisa-admin-"))
        #expect(keyring.verify(rotation.adminKey))
        #expect(keyring.verify(old), "within the grace period")
        #expect(!keyring.verify(old, at: Date().addingTimeInterval(61)), "not after it")
        let (reloaded, none) = try await AdminKeyring.load(configured: nil, settings: store.settings)
        #expect(none == nil)
        #expect(reloaded.verify(rotation.adminKey) && reloaded.verify(old) && !reloaded.verify(old, at: Date().addingTimeInterval(61)))
        let fixed = AdminKeyring(current: AdminKeyVerifier(key: "from-the-environment-0123"), isConfigured: true)
        await #expect(throws: LISAError.self) { _ = try await fixed.rotate(gracePeriod: 0, settings: store.settings) }
        try await store.close()
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
