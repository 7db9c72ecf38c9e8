import Foundation
import LISAKit
import LISAKitTesting
import Logging
import NIOCore
import Testing

/// Usage records, cost and budgets: the store's counters, and calls through the runtime.
@Suite("Usage and budgets")
struct UsageTests {
    @Test(
        "a reservation is refused once spent and reserved reach the limit, all lines or none; settling releases and charges",
        arguments: StoreKind.available
    )
    func reserveAndSettle(kind: StoreKind) async throws {
        let test = try await TestStore.make(kind)
        defer { Task { try? await test.cleanup() } }
        let store = test.store
        let line = BudgetLine(key: "user:a:tokens:day", periodStart: 0, limit: 100, amount: 60)
        #expect(try await store.usage.reserveBudget(id: "r1", lines: [line], expiresAt: 1e12) == nil)
        // 60 < 100: one more may start (a budget is overspent by one call at most).
        #expect(try await store.usage.reserveBudget(id: "r2", lines: [line], expiresAt: 1e12) == nil)
        let refused = try #require(try await store.usage.reserveBudget(id: "r3", lines: [line], expiresAt: 1e12))
        #expect(refused.spent == 0 && refused.reserved == 120)
        try await store.usage.settleBudget(id: "r1", lines: [line], spent: [10])
        var counter = try #require(try await store.usage.budgetCounters([line]).first)
        #expect(counter.spent == 10 && counter.reserved == 60)
        // A refusal on a second line reserves nothing on the first.
        let other = BudgetLine(key: "group:g:tokens:day", periodStart: 0, limit: 5, amount: 60)
        #expect(try await store.usage.reserveBudget(id: "r4", lines: [line, other], expiresAt: 1e12) == nil)
        let second = try #require(try await store.usage.reserveBudget(id: "r5", lines: [line, other], expiresAt: 1e12))
        #expect(second.key == other.key)
        counter = try #require(try await store.usage.budgetCounters([line]).first)
        #expect(counter.reserved == 120, "r2 and r4 hold; r5 took nothing")
        try await store.usage.settleBudget(id: "r4", lines: [line, other], spent: [1, 1])
        counter = try #require(try await store.usage.budgetCounters([line]).first)
        #expect(counter.spent == 11 && counter.reserved == 60)

        let lostLine = BudgetLine(key: "user:b:tokens:day", periodStart: 0, limit: 100, amount: 30)
        #expect(try await store.usage.reserveBudget(id: "lost", lines: [lostLine], expiresAt: 5) == nil)
        if kind == .postgres {
            // Replicas share the store: a reservation whose process died is released when
            // it expires, by any of them, charging nothing; its late settlement only charges.
            #expect(try await store.usage.releaseExpiredReservations(before: 10) == 1)
            var released = try #require(try await store.usage.budgetCounters([lostLine]).first)
            #expect(released.reserved == 0 && released.spent == 0)
            try await store.usage.settleBudget(id: "lost", lines: [lostLine], spent: [7])
            released = try #require(try await store.usage.budgetCounters([lostLine]).first)
            #expect(released.reserved == 0 && released.spent == 7)
        } else if kind == .sqliteFile {
            // One process per SQLite file: whatever was held when it stopped is released when it opens again.
            try await store.close()
            let reopened = try await test.reopen()
            let released = try #require(try await reopened.usage.budgetCounters([lostLine]).first)
            #expect(released.reserved == 0 && released.spent == 0)
            #expect(try await reopened.usage.budgetCounters([line]).first?.spent == 11, "what was spent stays spent")
            try await reopened.close()
            return
        }
        try await store.close()
    }

    @Test("usage queries parse dates, buckets and groups, and refuse what is no date or too wide with a 400")
    func queryParameters() throws {
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let defaults = try UsageQuery(parameters: [:], now: now)
        #expect(defaults.to == now && defaults.from == now.addingTimeInterval(-86400) && defaults.bucket == .day && defaults.groupBy.isEmpty)
        let parsed = try UsageQuery(
            parameters: ["from": "2026-11-01", "to": "2026-12-01T12:00:00Z", "bucket": "hour", "groupBy": "user, model,user"], now: now
        )
        #expect(parsed.from == Date(timeIntervalSince1970: 1_793_491_200) && parsed.groupBy == [.user, .model])
        for hostile in ["1e19", "nan", "-5", "inf", "9e18", String(repeating: "2", count: 5000), "yesterday", "2026-13-45"] {
            #expect(throws: LISAError.self, "from=\(hostile.prefix(20))") { _ = try UsageQuery(parameters: ["from": hostile], now: now) }
        }
        #expect(throws: LISAError.self) { _ = try UsageQuery(parameters: ["from": "0"], now: now) }  // 57 years: too wide
        #expect(throws: LISAError.self) { _ = try UsageQuery(parameters: ["bucket": "weekly"], now: now) }
        #expect(throws: LISAError.self) { _ = try UsageQuery(parameters: ["groupBy": "user,country"], now: now) }
        #expect(throws: LISAError.self) { _ = try UsageQuery(parameters: ["from": "1800000100"], now: now) }  // after to
    }

    @Test("usage records aggregate per hour, model, user, token and group; groups with commas and wildcards stay apart")
    func aggregates() async throws {
        let store = try await SQLStateStore.inMemory()
        let base = Date(timeIntervalSince1970: 1_800_000_000)
        func record(_ user: String, _ groups: [String], _ model: String, _ input: Int, _ output: Int, status: String = "ok", at offset: Double = 0)
            -> UsageRecord
        {
            UsageRecord(
                id: UUID().uuidString, time: base.addingTimeInterval(offset), requestId: "r", username: user, tokenId: "tok_\(user)", groups: groups,
                model: model, servedBy: nil, endpoint: nil, operation: "chat.completions", inputTokens: input, outputTokens: output, estimated: false,
                durationMs: Double(input), timeToFirstTokenMs: nil, status: status, cost: Double(input) / 100
            )
        }
        try await store.usage.insert(
            (0..<250).map { record("alice", ["a,b", "x_y"], "m1", 1, 2, at: Double($0)) } + [
                record("bob", ["a"], "m1", 10, 20, status: "upstream_timeout"), record("bob", ["x%y"], "m2", 5, 5, at: 7200),
            ]
        )
        let filter = UsageFilter(from: base.addingTimeInterval(-10), to: base.addingTimeInterval(86400))
        let byUser = try await store.usage.aggregates(filter, byUser: true, byToken: false)
        let alice = try #require(byUser.first { $0.user == "alice" })
        #expect(alice.requests == 250 && alice.inputTokens == 250 && alice.outputTokens == 500 && alice.errors == 0)
        #expect(byUser.filter { $0.user == "bob" }.count == 2, "two models, two hours")
        #expect(Set(try await store.usage.groups(filter)) == ["a,b", "x_y", "a", "x%y"])
        for (group, requests) in [("a", 1), ("a,b", 250), ("x_y", 250), ("x%y", 1), ("x", 0)] {
            var scoped = filter
            scoped.group = group
            #expect(
                try await store.usage.aggregates(scoped, byUser: false, byToken: false).reduce(0) { $0 + $1.requests } == requests, "group \(group)")
        }
        #expect(try await store.usage.samples(filter, limit: 10).count == 10)
        #expect(try await store.usage.delete(before: base.addingTimeInterval(100)) == 101)
        try await store.close()
    }

    @Test("50 concurrent calls cannot overspend a budget by more than one reservation; usage is recorded with the cost")
    func concurrentBudget() async throws {
        try await RuntimeTests.withRuntime(configure: { configuration in
            configuration.budgets.user = BudgetLimit(period: .day, tokens: 10)
            configuration.models[0].pricing = ModelPricing(inputPerMillionTokens: 1_000_000, outputPerMillionTokens: 2_000_000)
        }) { runtime in
            let alice = Principal(username: "alice", groups: ["team"], method: .apiToken, tokenID: "tok_alice")
            var built = try RuntimeTests.request("chat", "hello")
            built.maxTokens = 100
            let request = built
            let outcomes = await withTaskGroup(of: Bool.self) { group in
                for _ in 0..<50 {
                    group.addTask {
                        do {
                            _ = try await runtime.chatCompletion(request, as: alice)
                            return true
                        } catch let error as LISAError {
                            #expect(error.reason == "budget_exceeded")
                            #expect(error.retryAfter ?? 0 > 0)
                            return false
                        } catch {
                            Issue.record("unexpected \(error)")
                            return false
                        }
                    }
                }
                return await group.reduce(into: [Bool]()) { $0.append($1) }
            }
            // Settling happens off the request path: wait until nothing is held.
            try await waitUntil {
                let status = try await runtime.budgets(for: alice).data
                return status.first?.reserved == 0
            }
            let status = try #require(try await runtime.budgets(for: alice).data.first)
            let allowed = outcomes.filter { $0 }.count
            // The echo upstream reports 3 tokens a call. A call starts only while spent +
            // reserved is under the limit of 10, so at most four settle (3, 6, 9, then 12):
            // the overshoot is one call's worth, where 50 unchecked calls would spend 150.
            #expect(allowed >= 1 && allowed <= 4)
            #expect(status.spent == Double(allowed * 3))
            #expect(status.spent <= 10 + 3)
            try await runtime.usage.recorder.flush()
            let report = try await runtime.usageReport(
                UsageQuery(from: Date().addingTimeInterval(-60), to: Date().addingTimeInterval(60), bucket: .none, groupBy: [.user, .group]),
                for: .admin
            )
            let row = try #require(report.data.first { $0.user == "alice" && $0.group == "team" })
            #expect(row.requests == 50 && row.errors == 50 - allowed)
            #expect(row.inputTokens == allowed * 1 && row.outputTokens == allowed * 2)
            #expect(abs(row.cost - Double(allowed) * 5) < 1e-9, "1 input at 1 a token + 2 output at 2 a token")
            // A user sees only their own usage, and may not ask for anyone else's.
            await #expect(throws: LISAError.self) {
                _ = try await runtime.usageReport(UsageQuery(from: Date().addingTimeInterval(-60), to: Date(), user: "bob"), for: alice)
            }
        }
    }

    @Test("a hosted model's replica time becomes cost shared by tokens; idle hours show in the totals; stream estimates are marked")
    func hostedCostAndEstimates() async throws {
        // A local backend, but no services run: the model is stored, never launched.
        try await RuntimeTests.withRuntime(configure: { $0.hostingBackend = "local" }) { runtime in
            var hosted = ModelDefinition(modelId: "hosted", modelName: "h")
            hosted.hostingType = "lisa_hosted"
            hosted.launch = LaunchSpec(command: "serve --port {port}")
            hosted.pricing = ModelPricing(replicaHourly: 36)
            _ = try await runtime.models.create(hosted)
            let bob = Principal(username: "bob", groups: [], method: .apiToken)
            for try await _ in runtime.streamChatCompletion(try RuntimeTests.request("chat", "two words here"), as: bob) {}
            try await waitUntil { runtime.usage.recorder.pendingRecords == 1 }
            try await runtime.usage.recorder.flush()
            let now = Date()
            let hour = Int64(now.timeIntervalSince1970 / 3600) * 3600
            func record(_ user: String, _ tokens: Int) -> UsageRecord {
                UsageRecord(
                    id: UUID().uuidString, time: now, requestId: "r", username: user, tokenId: nil, groups: [], model: "hosted", servedBy: nil,
                    endpoint: nil, operation: "chat.completions", inputTokens: tokens, outputTokens: 0, estimated: false, durationMs: 1,
                    timeToFirstTokenMs: nil, status: "ok", cost: nil
                )
            }
            try await runtime.store.usage.insert([record("alice", 30), record("carol", 10)])
            try await runtime.store.usage.addReplicaSeconds(100, model: "hosted", hour: hour)  // 100 s at 36 an hour: 1.0
            try await runtime.store.usage.addReplicaSeconds(50, model: "hosted", hour: hour - 7200)  // an hour nobody used: 0.5
            let report = try await runtime.usageReport(
                UsageQuery(from: now.addingTimeInterval(-4 * 3600), to: now.addingTimeInterval(60), bucket: .none, groupBy: [.user]), for: .admin
            )
            let alice = try #require(report.data.first { $0.user == "alice" })
            let carol = try #require(report.data.first { $0.user == "carol" })
            #expect(abs(alice.hostedCost - 0.75) < 1e-9 && abs(carol.hostedCost - 0.25) < 1e-9)
            #expect(abs(report.totals.hostedCost - 1.5) < 1e-9, "the idle hour is in the admin's totals")
            let streamed = try #require(report.data.first { $0.user == "bob" })
            #expect(streamed.estimatedRequests == 1, "the in-memory stream reports no usage")
            #expect(streamed.outputTokens == 4, "four events relayed")
            // A user's own report carries their share, not the idle hours.
            let own = try await runtime.usageReport(
                UsageQuery(from: now.addingTimeInterval(-4 * 3600), to: now.addingTimeInterval(60), bucket: .none),
                for: Principal(username: "carol", groups: [], method: .apiToken)
            )
            #expect(abs(own.totals.hostedCost - 0.25) < 1e-9)
        }
    }
}
