/// Decides which ingestion job runs next: at most `concurrency` at once, no user holding
/// more than half of them (at least one), and among the users with jobs waiting, the one
/// with the fewest running goes first (ties in turn). A user who queues a hundred slow
/// uploads therefore never holds every worker: another user's upload starts at once when
/// `concurrency` ≥ 2, and after at most one job otherwise.
/// Pure: no I/O, no clock. (Arrays, not deques: each user has at most
/// `quotas.maxPendingJobsPerUser` jobs waiting.)
struct IngestionScheduler: Sendable {
    let concurrency: Int
    /// The most jobs one user runs at once.
    let perUser: Int
    private var waiting: [String: [String]] = [:]
    /// Users with waiting jobs, in the order they are served on ties.
    private var turn: [String] = []
    private var running: [String: Int] = [:]
    private(set) var runningCount = 0

    init(concurrency: Int) {
        self.concurrency = max(concurrency, 1)
        self.perUser = max(self.concurrency / 2, 1)
    }

    /// Jobs waiting to start.
    var waitingCount: Int { waiting.values.reduce(0) { $0 + $1.count } }

    mutating func add(_ jobId: String, user: String) {
        if waiting[user, default: []].isEmpty, !turn.contains(user) { turn.append(user) }
        waiting[user, default: []].append(jobId)
    }

    /// The next job to start and its user, or `nil` when none may start now.
    mutating func next() -> (jobId: String, user: String)? {
        guard runningCount < concurrency else { return nil }
        // The waiting user with the fewest running jobs (under their share); the earliest in turn on ties.
        var chosen: Int?
        for index in turn.indices where running[turn[index], default: 0] < perUser {
            if chosen == nil || running[turn[index], default: 0] < running[turn[chosen!], default: 0] { chosen = index }
        }
        guard let chosen else { return nil }
        let user = turn.remove(at: chosen)
        guard var queue = waiting[user], !queue.isEmpty else { return next() }
        let jobId = queue.removeFirst()
        waiting[user] = queue
        if waiting[user]?.isEmpty == false { turn.append(user) } else { waiting[user] = nil }
        running[user, default: 0] += 1
        runningCount += 1
        return (jobId, user)
    }

    /// A job of `user` has ended.
    mutating func finished(user: String) {
        guard let count = running[user], count > 0 else { return }
        running[user] = count == 1 ? nil : count - 1
        runningCount -= 1
    }
}
