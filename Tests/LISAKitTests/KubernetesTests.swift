import AsyncHTTPClient
import Foundation
import Logging
import NIOHTTP1
import Testing

@testable import LISAHummingbirdTesting
@testable import LISAKit

@Suite("Kubernetes backend: names, kubeconfig, the API emulator")
struct KubernetesTests {
    @Test("object names are DNS-1123 labels, distinct for ids that read alike")
    func names() {
        for id in ["Qwen/Qwen2.5-0.5B-Instruct", "a_b", "a-b", "UPPER", "---", String(repeating: "x", count: 200), "ünïcode"] {
            let label = KubernetesBackend.modelLabel(id)
            #expect(label.count <= 40 && KubernetesEmulator.isDNSLabel(label), "\(id) → \(label)")
            let name = KubernetesBackend.deploymentName(model: id, replica: "3f2a9c1e-0000-4000-8000-000000000000")
            #expect(name.count <= 63 && KubernetesEmulator.isDNSLabel(name), "\(name)")
        }
        #expect(KubernetesBackend.modelLabel("a_b") != KubernetesBackend.modelLabel("a-b"))
    }

    @Test("kubeconfig: the current context's server, CA and token; other credentials refused with the reason")
    func kubeconfig() throws {
        let client = HTTPClient.shared
        let config = """
            apiVersion: v1
            kind: Config
            current-context: b
            clusters:
            - name: one
              cluster: {server: "https://one:6443"}
            - name: two
              cluster: {server: "http://127.0.0.1:8001", insecure-skip-tls-verify: true}
            users:
            - name: u
              user: {token: abc}
            contexts:
            - name: a
              context: {cluster: one, user: u}
            - name: b
              context: {cluster: two, user: u, namespace: models}
            """
        let parsed = try KubernetesClient.parse(kubeconfig: config, at: "/tmp/k", namespace: nil, httpClient: client)
        #expect(parsed.server == "http://127.0.0.1:8001" && parsed.namespace == "models" && parsed.token == "abc")
        let overridden = try KubernetesClient.parse(kubeconfig: config, at: "/tmp/k", namespace: "other", httpClient: client)
        #expect(overridden.namespace == "other")
        let certificates = config.replacingOccurrences(of: "user: {token: abc}", with: "user: {client-certificate-data: AAAA, client-key-data: BBBB}")
        #expect(throws: ConfigurationError.self) {
            try KubernetesClient.parse(kubeconfig: certificates, at: "/tmp/k", namespace: nil, httpClient: client)
        }
        let badCA = config.replacingOccurrences(of: "insecure-skip-tls-verify: true", with: "certificate-authority-data: \"not base64!\"")
        #expect(throws: ConfigurationError.self) { try KubernetesClient.parse(kubeconfig: badCA, at: "/tmp/k", namespace: nil, httpClient: client) }
    }

    @Test("the emulator answers as the API server does: 201, 409 AlreadyExists, 422 Invalid, 404 NotFound, 401")
    func emulatorShapes() async throws {
        let emulator = KubernetesEmulator(token: "t")
        let (url, stop) = try await emulator.start()
        defer { Task { await stop() } }
        let client = try KubernetesClient(server: url, namespace: "ns", token: "t", httpClient: HTTPClient.shared)
        let backend = KubernetesBackend(client: client, deploymentID: "dep", logger: Logger(label: "k8s-test"))
        var spec = LaunchSpec(command: "/bin/sleep 600 {port}")
        spec.kubernetes = KubernetesLaunch(image: "busybox:1")
        var model = ModelDefinition(modelId: "m", modelName: "m")
        model.launch = spec
        let replica = ReplicaRecord(replicaId: "r1", modelId: "m", backend: "kubernetes", state: .launching, startedAt: 0)
        let deployment = try backend.deployment(replica: replica, model: model)

        let created = try await client.call(.POST, client.path("apps/v1", "deployments"), json: deployment)
        #expect(created.status == 201 && created.body["metadata"]?["resourceVersion"] != nil)
        let again = try await client.call(.POST, client.path("apps/v1", "deployments"), json: deployment)
        #expect(again.status == 409 && again.body["reason"] == "AlreadyExists" && again.body["kind"] == "Status")
        var invalid = deployment
        if case .object(var members) = invalid, case .object(var metadata) = members["metadata"] ?? .null {
            metadata["name"] = "Not_A_Name"
            members["metadata"] = .object(metadata)
            invalid = .object(members)
        }
        let refused = try await client.call(.POST, client.path("apps/v1", "deployments"), json: invalid)
        #expect(refused.status == 422 && refused.body["reason"] == "Invalid")
        let missing = try await client.call(.GET, client.path("apps/v1", "deployments", "nope"))
        #expect(missing.status == 404 && missing.body["reason"] == "NotFound")
        let anonymous = try KubernetesClient(server: url, namespace: "ns", token: nil, httpClient: HTTPClient.shared)
        await #expect(throws: LISAError.self) { _ = try await anonymous.call(.GET, anonymous.path("", "pods")) }
        // The Deployment controller makes its pod; the replica's selector finds it.
        try await waitUntil(timeout: .seconds(60)) {
            let pods = try await client.call(.GET, client.path("", "pods", query: KubernetesBackend.selector(["lisa.replica-id": "r1"])))
            return pods.body["items"]?.arrayValue?.first?["status"]?["podIP"] != nil
        }
        await backend.stop(replica, timeout: .seconds(1))
        let deleted = try await client.call(.GET, client.path("apps/v1", "deployments", KubernetesBackend.deploymentName(model: "m", replica: "r1")))
        #expect(deleted.status == 404, "stop deletes the replica's Deployment")
        // Its pod terminates after the grace period (waited on, not timed: the machine may be busy).
        try await waitUntil(timeout: .seconds(120)) {
            let pods = try await client.call(.GET, client.path("", "pods", query: KubernetesBackend.selector(["lisa.replica-id": "r1"])))
            return pods.body["items"]?.arrayValue?.isEmpty == true
        }
    }
}
