import Foundation

/// What `/health/readiness` reports: whether this process can serve, and why not.
public struct Readiness: Sendable, Hashable, Codable {
    /// `OK`, or `unavailable`.
    public var status: String
    /// `ok`, or what went wrong reaching the state store.
    public var stateStore: String
    /// Whether this process runs the hosting controller now.
    public var leader: Bool
    /// Models this process routes to.
    public var models: Int
    /// Tools an optional feature needs and this server lacks (`pdftotext: "…"`): the
    /// server is ready, but that feature refuses requests. Absent when nothing is missing.
    public var missingTools: [String: String]?

    public var isReady: Bool { status == "OK" }
}

extension LISARuntime {
    /// Checks the state store (a read within `timeout`) and reports what this process can
    /// do. Not ready while the store cannot be read: management calls would fail, and a
    /// Kubernetes probe should take the pod out of its Service until it can.
    public func readiness(timeout: Duration = .seconds(2)) async -> Readiness {
        let settings = store.settings
        var problem: String?
        do {
            _ = try await withDeadline(
                timeout,
                timedOut: {
                    LISAError.stateStoreUnavailable("The state store did not answer within \(Int(timeout.seconds)) s.")
                }
            ) {
                try await settings.value(for: "lisa.readiness")
            }
        } catch let error as LISAError {
            problem = error.message
        } catch {
            problem = "The state store cannot be read: \(String(describing: error).prefix(200))"
        }
        return Readiness(
            status: problem == nil ? "OK" : "unavailable", stateStore: problem ?? "ok", leader: models.isLeading,
            models: gateway.registry.allModels().count,
            missingTools: DocumentParser.pdfProblem(configuration.ragIngestion.document).map { ["pdftotext": $0] }
        )
    }
}

extension LISARuntime {
    /// Sends `model` the smallest real request its type takes, as an administrator, and
    /// reports the latency or the upstream's error. 404 for an unknown model; models of
    /// other types than text generation and embeddings cannot be tested this way.
    public func testModel(_ modelId: String) async throws -> ModelTestResult {
        guard let model = gateway.registry.model(modelId) else { throw LISAError.modelNotFound(modelId) }
        let started = ContinuousClock.now
        let kind: String
        do {
            switch model.definition.modelType {
            case .textgen:
                kind = "chat"
                let request = try JSONDecoder().decode(
                    ChatCompletionRequest.self,
                    from: JSONEncoder().encode([
                        "model": JSONValue.string(modelId), "max_tokens": 1, "messages": [["role": "user", "content": "ping"]],
                    ])
                )
                _ = try await chatCompletion(request, as: .admin)
            case .embedding:
                kind = "embeddings"
                let request = try JSONDecoder().decode(
                    EmbeddingRequest.self, from: JSONEncoder().encode(["model": JSONValue.string(modelId), "input": "ping"])
                )
                _ = try await embeddings(request, as: .admin)
            default:
                throw LISAError.invalidRequest(
                    "Only textgen and embedding models can be tested; '\(modelId)' is \(model.definition.modelType.rawValue).", param: "modelId"
                )
            }
        } catch let error as LISAError where error.code == .invalidRequest && error.param == "modelId" {
            throw error
        } catch {
            let failure = (error as? LISAError) ?? LISAError.internalError()
            return ModelTestResult(
                modelId: modelId, ok: false, latencyMilliseconds: (ContinuousClock.now - started).seconds * 1000,
                request: model.definition.modelType == .embedding ? "embeddings" : "chat", error: failure.message, code: failure.reason
            )
        }
        return ModelTestResult(
            modelId: modelId, ok: true, latencyMilliseconds: (ContinuousClock.now - started).seconds * 1000, request: kind
        )
    }
}
