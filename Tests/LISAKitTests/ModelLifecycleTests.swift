import Foundation
import Testing

@testable import LISAKit

@Suite("Model lifecycle, autoscaling and launch specs")
struct ModelLifecycleTests {
    /// Every legal (action, status) pair and where it leads; every other pair is refused.
    static let legal: [ModelAction: [ModelStatus?: ModelStatus]] = [
        .create: [nil: .creating],
        .update: [.inService: .updating, .stopped: .stopped, .failed: .failed],
        .start: [.stopped: .starting, .failed: .starting],
        .stop: [.inService: .stopping, .failed: .stopping],
        .delete: [.inService: .deleting, .stopped: .deleting, .failed: .deleting, .creating: .deleting, .starting: .deleting],
    ]

    @Test(
        "every action in every status: legal ones lead where the table says, the others are refused naming the status",
        arguments: ModelAction.allCases)
    func actions(action: ModelAction) {
        let statuses: [ModelStatus?] = [nil] + ModelStatus.allCases.map(Optional.some)
        for status in statuses {
            let result = ModelLifecycle.status(after: action, from: status)
            if let expected = Self.legal[action]?[status] {
                #expect(result == .success(expected), "\(action) from \(status?.rawValue ?? "none")")
            } else {
                guard case .failure(let refusal) = result else {
                    Issue.record("\(action) from \(status?.rawValue ?? "none") should be refused, got \(result)")
                    continue
                }
                if let status, action != .create {
                    #expect(refusal.message.contains(status.rawValue), "the refusal names the current status")
                }
            }
        }
    }

    @Test("controller events move transitional statuses only")
    func events() {
        let expectations: [(ModelEvent, ModelStatus, ModelStatus?)] = [
            (.ready, .creating, .inService), (.ready, .starting, .inService), (.ready, .updating, .inService),
            (.ready, .inService, nil), (.ready, .stopped, nil), (.ready, .deleting, nil), (.ready, .stopping, nil),
            (.failed("x"), .creating, .failed), (.failed("x"), .starting, .failed), (.failed("x"), .updating, .failed),
            (.failed("x"), .inService, .failed), (.failed("x"), .stopped, nil), (.failed("x"), .deleting, nil),
            (.stopped, .stopping, .stopped), (.stopped, .inService, nil), (.stopped, .deleting, nil),
        ]
        for (event, from, to) in expectations {
            #expect(ModelLifecycle.status(after: event, from: from) == to, "\(event) from \(from)")
        }
        #expect(ModelStatus.allCases.filter(\.servesTraffic) == [.inService, .updating])
    }

    @Test("the autoscaler scales out at once, in only after a whole cooldown of low load")
    func autoscaler() {
        var scaler = Autoscaler(configuration: AutoScalingConfig(minCapacity: 1, maxCapacity: 4, cooldown: 10, targetValue: 2))
        #expect(scaler.wanted(inFlight: 0) == 1 && scaler.wanted(inFlight: 3) == 2 && scaler.wanted(inFlight: 100) == 4)
        #expect(scaler.sample(inFlight: 1, current: 1, at: 0) == nil)
        #expect(scaler.sample(inFlight: 5, current: 1, at: 1) == 3, "out at once, to ceil(5/2)")
        #expect(scaler.sample(inFlight: 8, current: 3, at: 5) == nil, "within the cooldown")
        #expect(scaler.sample(inFlight: 8, current: 3, at: 11) == 4)
        // Load drops: nothing until a whole cooldown of low samples, then the window's peak.
        #expect(scaler.sample(inFlight: 0, current: 4, at: 12) == nil)
        #expect(scaler.sample(inFlight: 3, current: 4, at: 16) == nil)
        #expect(scaler.sample(inFlight: 0, current: 4, at: 20) == nil)
        #expect(scaler.sample(inFlight: 0, current: 4, at: 22) == 2, "the peak of the last 10 s wanted 2")
        #expect(scaler.sample(inFlight: 0, current: 2, at: 28) == nil)
        #expect(scaler.sample(inFlight: 0, current: 2, at: 33) == 1)
        #expect(scaler.sample(inFlight: 0, current: 1, at: 60) == nil, "never below the minimum")
    }

    @Test("launch commands split like a shell, placeholders replaced per argument, never run through a shell")
    func launchCommand() throws {
        let spec = LaunchSpec(command: #"vllm serve {modelName} --port {port} --arg 'a b' "c \"d\"" e\ f"#)
        let arguments = try spec.arguments(port: 8123, modelName: "x; rm -rf /")
        #expect(arguments == ["vllm", "serve", "x; rm -rf /", "--port", "8123", "--arg", "a b", #"c "d""#, "e f"])
        #expect(throws: LISAError.self) { try LaunchSpec(command: "run 'unterminated {port}").arguments(port: 1, modelName: "m") }
    }

    @Test(
        "hosted model definitions are validated",
        arguments: [
            (#"{"modelId":"h","hostingType":"lisa_hosted"}"#, "launch"),
            (#"{"modelId":"h","hostingType":"lisa_hosted","launch":{"command":"serve"}}"#, "launch.command"),
            (#"{"modelId":"h","hostingType":"lisa_hosted","modelUrl":"http://a/v1","launch":{"command":"s {port}"}}"#, "modelUrl"),
            (#"{"modelId":"h","modelUrl":"http://a/v1","launch":{"command":"s {port}"}}"#, "launch"),
            (#"{"modelId":"h","hostingType":"cloud","modelUrl":"http://a/v1"}"#, "hostingType"),
            (
                #"{"modelId":"h","hostingType":"lisa_hosted","launch":{"command":"s {port}"},"autoScalingConfig":{"minCapacity":3,"maxCapacity":2}}"#,
                "autoScalingConfig.maxCapacity"
            ),
            (
                #"{"modelId":"h","hostingType":"lisa_hosted","launch":{"command":"s {port}"},"autoScalingConfig":{"maxCapacity":2,"desiredCapacity":5}}"#,
                "autoScalingConfig.desiredCapacity"
            ),
        ])
    func hostedValidation(json: String, param: String) throws {
        let model = try JSONDecoder().decode(ModelDefinition.self, from: Data(json.utf8))
        #expect {
            try model.validate()
        } throws: { error in
            (error as? LISAError)?.param == param
        }
    }

    @Test("a JSON merge patch merges objects, replaces values and removes nulls")
    func mergePatch() throws {
        let original: JSONValue = ["a": 1, "nested": ["x": 1, "y": 2], "gone": true]
        let patched = original.merging(patch: ["nested": ["y": 3], "gone": nil, "new": "v"])
        #expect(patched == ["a": 1, "nested": ["x": 1, "y": 3], "new": "v"])
    }
}
