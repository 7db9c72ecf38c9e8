import Foundation

extension ModelDefinition {
    /// Checks the definition and reports the first problem as a 400 naming the field.
    public func validate() throws(LISAError) {
        guard Self.isValidModelID(modelId) else {
            throw .invalidRequest(
                "modelId must be 1-128 characters of letters, digits, '.', '_', '-' or ':' and start with a letter or digit.",
                param: "modelId"
            )
        }
        guard !modelName.trimmingCharacters(in: .whitespaces).isEmpty else {
            throw .invalidRequest("modelName must not be empty.", param: "modelName")
        }
        if case .other(let value) = modelType {
            let known = ModelType.known.map { "'\($0.rawValue)'" }.joined(separator: ", ")
            throw .invalidRequest("modelType must be one of \(known), not '\(value)'.", param: "modelType")
        }
        if case .other(let value) = inferenceContainer {
            throw .invalidRequest(
                "inferenceContainer must be one of 'openai', 'vllm', 'tgi', 'tei', 'ollama', 'llamacpp', not '\(value)'.", param: "inferenceContainer"
            )
        }
        switch upstreamAPI {
        case .openai: break
        case .anthropic, .openAIResponses:
            guard modelType == .textgen else {
                throw .invalidRequest(
                    "An upstream of upstreamAPI \(upstreamAPI.rawValue) serves text generation only: set modelType: textgen.", param: "upstreamAPI")
            }
        case .other(let value):
            throw .invalidRequest("upstreamAPI must be 'openai', 'anthropic' or 'openai-responses', not '\(value)'.", param: "upstreamAPI")
        }
        if let hostingType, HostingType(rawValue: hostingType) == nil {
            throw .invalidRequest(
                "hostingType must be 'third_party', 'internal_hosted' or 'lisa_hosted', not '\(hostingType)'.", param: "hostingType"
            )
        }
        if isHosted {
            guard let launch else {
                throw .invalidRequest("A lisa_hosted model needs a launch spec (launch.command).", param: "launch")
            }
            guard endpoints.isEmpty, modelUrl == nil else {
                throw .invalidRequest("A lisa_hosted model gets its endpoints from its replicas: remove modelUrl and endpoints.", param: "modelUrl")
            }
            try launch.validate()
        } else {
            if launch != nil {
                throw .invalidRequest("launch applies to lisa_hosted models only; set hostingType: lisa_hosted.", param: "launch")
            }
            try validateEndpoints()
        }
        try autoScalingConfig?.validate()
        if fallbacks.contains(modelId) {
            throw .invalidRequest("A model cannot be its own fallback.", param: "fallbacks")
        }
        if let retry, !(1...10).contains(retry.maxAttempts) {
            throw .invalidRequest("retry.maxAttempts must be between 1 and 10.", param: "retry.maxAttempts")
        }
        if let retry, !(0...1).contains(retry.budgetRatio) {
            throw .invalidRequest("retry.budgetRatio must be between 0 and 1.", param: "retry.budgetRatio")
        }
        if let circuitBreaker, circuitBreaker.failureThreshold < 1 || circuitBreaker.cooldownSeconds < 0 {
            throw .invalidRequest("circuitBreaker needs failureThreshold ≥ 1 and cooldownSeconds ≥ 0.", param: "circuitBreaker")
        }
        let week = 604_800.0
        if let timeouts,
            [timeouts.firstByteSeconds, timeouts.totalSeconds, timeouts.streamIdleSeconds].contains(where: { !(0.001...week).contains($0 ?? 1) })
        {
            throw .invalidRequest("timeouts must be positive and at most 604800 seconds (a week).", param: "timeouts")
        }
        try pricing?.validate(param: "pricing")
        if pricing?.replicaHourly != nil && !isHosted {
            throw .invalidRequest("pricing.replicaHourly applies to lisa_hosted models; price others per token.", param: "pricing.replicaHourly")
        }
        if let healthCheck,
            !healthCheck.path.hasPrefix("/") || !(0.001...86_400).contains(healthCheck.intervalSeconds)
                || !(0.001...86_400).contains(healthCheck.timeoutSeconds)
        {
            throw .invalidRequest(
                "healthCheck needs a path starting with '/' and an interval and timeout of 0.001 to 86400 seconds.", param: "healthCheck")
        }
    }

    private func validateEndpoints() throws(LISAError) {
        let endpoints = resolvedEndpoints
        guard !endpoints.isEmpty else {
            throw .invalidRequest("A model needs an endpoint: set modelUrl or endpoints.", param: "modelUrl")
        }
        for (index, endpoint) in endpoints.enumerated() {
            let param = self.endpoints.isEmpty ? "modelUrl" : "endpoints[\(index)].url"
            guard let url = URL(string: endpoint.url), let scheme = url.scheme?.lowercased(),
                scheme == "http" || scheme == "https", let host = url.host, !host.isEmpty
            else {
                throw .invalidRequest("'\(endpoint.url)' is not an http or https URL.", param: param)
            }
            guard url.query == nil, url.fragment == nil else {
                throw .invalidRequest("'\(endpoint.url)' must be a base URL without query or fragment.", param: param)
            }
            guard endpoint.weight >= 1 && endpoint.weight <= 1000 else {
                throw .invalidRequest("Endpoint weight must be between 1 and 1000.", param: "endpoints[\(index)].weight")
            }
            if let cap = endpoint.maxInFlight, cap < 1 {
                throw .invalidRequest("maxInFlight must be at least 1.", param: "endpoints[\(index)].maxInFlight")
            }
            if let tls = endpoint.tls {
                guard scheme == "https" else {
                    throw .invalidRequest("tls applies to https endpoints only.", param: "endpoints[\(index)].tls")
                }
                try tls.validate(param: "endpoints[\(index)].tls")
            }
        }
    }
}
