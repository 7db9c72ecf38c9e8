import Foundation

extension ModelDefinition {
    /// What is wrong with the models this one names as `fallbacks`, given how to find a
    /// model by id: one that does not exist, or one of another `modelType` (a chat request
    /// cannot fall back to an embedding model). Each error's `param` is `fallbacks[n]`.
    public func fallbackProblems(resolve: (String) -> ModelDefinition?) -> [LISAError] {
        fallbacks.enumerated().compactMap { index, id -> LISAError? in
            guard id != modelId else { return nil }  // validate() says so
            guard let fallback = resolve(id) else {
                return .invalidRequest("The fallback '\(id)' is not a model.", param: "fallbacks[\(index)]", reason: "fallback_not_found")
            }
            guard fallback.modelType == modelType else {
                return .invalidRequest(
                    "The fallback '\(id)' has modelType \(fallback.modelType.rawValue); "
                        + "a model falls back only to models of its own type (\(modelType.rawValue)).",
                    param: "fallbacks[\(index)]", reason: "fallback_type_mismatch"
                )
            }
            return nil
        }
    }
}

extension LISAConfiguration {
    /// Every problem of the configured models, in the order they are declared: each model's
    /// own checks, a `modelId` declared twice, hosted models (created through the API only),
    /// and fallbacks to models the configuration does not declare or of another type.
    public func modelProblems() -> [String] {
        var problems: [String] = []
        var first: [String: Int] = [:]
        for (index, model) in models.enumerated() {
            let name = "models[\(index)]" + (model.modelId.isEmpty ? "" : " '\(model.modelId)'")
            func add(_ error: LISAError) {
                let param = error.param.map { " (\($0))" } ?? ""
                problems.append("\(name): \(error.message)\(param)")
            }
            do {
                try model.validate()
            } catch {
                add(error)
            }
            if model.isHosted {
                problems.append("\(name): lisa_hosted models are created through the models API (POST /models), not declared in the file.")
            }
            if let earlier = first[model.modelId] {
                problems.append("\(name): modelId '\(model.modelId)' is already declared by models[\(earlier)].")
            } else {
                first[model.modelId] = index
            }
            let declared = Dictionary(models.map { ($0.modelId, $0) }, uniquingKeysWith: { earlier, _ in earlier })
            for error in model.fallbackProblems(resolve: { declared[$0] }) { add(error) }
        }
        return problems
    }
}
