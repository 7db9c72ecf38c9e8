import Foundation
import Logging
import Synchronization
import Testing

@testable import LISAKit

/// Usage reports read the hourly rollup, through a connection the request path does not use.
@Suite("Usage rollup and report connection")
struct UsageRollupTests {
    static let base = Date(timeIntervalSince1970: 1_800_000_000)  // on the hour

    static func record(
        _ user: String, _ model: String, at offset: Double, token: String? = "tok", status: String = "ok", id: String = UUID().uuidString
    )
        -> UsageRecord
    {
        UsageRecord(
            id: id, time: base.addingTimeInterval(offset), requestId: "r", username: user, tokenId: token, groups: ["g"], model: model,
            servedBy: nil, endpoint: nil, operation: "chat.completions", inputTokens: 3, outputTokens: 5, estimated: false, durationMs: 1,
            timeToFirstTokenMs: nil, status: status, cost: 0.5
        )
    }

    @Test(
        "writes keep hourly sums (a record written twice counts once); reports over cut hours match the raw records; retention repairs the rollup",
        arguments: StoreKind.available)
    func rollupMatchesRecords(_ kind: StoreKind) async throws {
        let test = try await TestStore.make(kind)
        defer { Task { try? await test.cleanup() } }
        let store = test.store
        // Three hours, one call every 90 s, two users, two models, one without a token.
        var records: [UsageRecord] = []
        for i in 0..<120 {
            let user = i % 2 == 0 ? "alice" : "bob"
            let model = i % 3 == 0 ? "m1" : "m2"
            let token: String? = i % 5 == 0 ? nil : "tok"
            let status = i % 7 == 0 ? "upstream_error" : "ok"
            records.append(Self.record(user, model, at: Double(i) * 90, token: token, status: status, id: "u\(i)"))
        }
        try await store.usage.insert(Array(records[..<60]))
        try await store.usage.insert(Array(records[40...]))
        let hourly = try await store.database.query("SELECT CAST(SUM(requests) AS BIGINT) AS n FROM usage_hourly")
        #expect(hourly.first?["n"].int == 120, "each record summed once")

        func raw(_ from: Double, _ to: Double, user: String? = nil) -> (requests: Int, errors: Int, input: Int, cost: Double) {
            let chosen = records.filter { (from..<to).contains($0.time.timeIntervalSince(Self.base)) && (user == nil || $0.username == user) }
            return (chosen.count, chosen.filter { $0.status != "ok" }.count, chosen.count * 3, Double(chosen.count) * 0.5)
        }
        for (from, to, user) in [(-100.0, 20_000.0, nil), (1000.0, 9000.0, "alice"), (3700.0, 3800.0, nil), (0.0, 7200.0, "bob"), (5.0, 3601.0, nil)]
        {
            let filter = UsageFilter(from: Self.base.addingTimeInterval(from), to: Self.base.addingTimeInterval(to), user: user)
            let aggregates = try await store.usage.aggregates(filter, byUser: true, byToken: true)
            let expected = raw(from, to, user: user)
            #expect(aggregates.reduce(0) { $0 + $1.requests } == expected.requests, "\(from)..<\(to) \(user ?? "everyone")")
            #expect(aggregates.reduce(0) { $0 + $1.errors } == expected.errors)
            #expect(aggregates.reduce(0) { $0 + $1.inputTokens } == expected.input)
            #expect(abs(aggregates.reduce(0) { $0 + $1.cost } - expected.cost) < 1e-9)
            #expect(aggregates.allSatisfy { $0.tokenID == nil || $0.tokenID == "tok" })
        }
        var grouped = UsageFilter(from: Self.base, to: Self.base.addingTimeInterval(20_000))
        #expect(try await store.usage.groups(grouped) == ["g"])
        grouped.group = "g"
        #expect(try await store.usage.aggregates(grouped, byUser: false, byToken: false).reduce(0) { $0 + $1.requests } == 120)

        // Retention cuts the second hour in the middle: the rollup keeps what is left.
        #expect(try await store.usage.delete(before: Self.base.addingTimeInterval(5400)) == 60)
        let left = try await store.database.query("SELECT CAST(SUM(requests) AS BIGINT) AS n FROM usage_hourly")
        #expect(left.first?["n"].int == 60)
        let all = UsageFilter(from: Self.base.addingTimeInterval(3600), to: Self.base.addingTimeInterval(20_000))
        #expect(try await store.usage.aggregates(all, byUser: false, byToken: false).reduce(0) { $0 + $1.requests } == 60)
        try await store.close()
    }

    @Test("a report is answered while the request path's SQLite connection is held")
    func reportBesideTheWriter() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("lisa-rollup-\(UUID().uuidString).sqlite").path
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        let store = try await SQLStateStore.openSQLite(path: path, logger: Logger(label: "test"))
        try await store.usage.insert((0..<10).map { Self.record("alice", "m1", at: Double($0)) })
        let filter = UsageFilter(from: Self.base, to: Self.base.addingTimeInterval(7200))
        // The transaction holds the writer's connection until the report inside it is answered:
        // a report that needed that connection would wait for itself (the guard ends it).
        let first = FirstAnswer()
        let requests = await withCheckedContinuation { (continuation: CheckedContinuation<Int?, Never>) in
            first.set(continuation)
            Task {
                let counted = try? await store.database.transaction { _ in
                    try await store.usage.aggregates(filter, byUser: false, byToken: false).reduce(0) { $0 + $1.requests }
                }
                first.answer(counted)
            }
            Task {
                try? await Task.sleep(for: .seconds(60))
                first.answer(nil)
            }
        }
        #expect(requests == 10, "the report did not wait for the request path's connection")
        if requests != nil { try await store.close() }
    }
}

/// Resumes a continuation with whichever answer comes first.
private final class FirstAnswer: Sendable {
    private let continuation = Mutex<CheckedContinuation<Int?, Never>?>(nil)

    func set(_ continuation: CheckedContinuation<Int?, Never>) {
        self.continuation.withLock { $0 = continuation }
    }

    func answer(_ value: Int?) {
        continuation.withLock { $0.take() }?.resume(returning: value)
    }
}
