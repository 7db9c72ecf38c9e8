import ArgumentParser
import Foundation
import LISAClient

struct UsageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "usage", abstract: "Requests, tokens and cost (everyone's for admins, your own otherwise).",
        discussion: """
            Examples: lisactl usage --group-by user,model; lisactl usage --from 2026-12-01 --bucket none --group-by group; \
            lisactl usage --user alice --bucket hour --from 1796256000.
            """
    )
    @OptionGroup var global: GlobalOptions
    @Option(help: "Start: an ISO 8601 date or time, or Unix seconds (default 24 hours before --to).") var from: String?
    @Option(help: "End (default now).") var to: String?
    @Option(help: "hour, day, month or none (default day).") var bucket: String?
    @Option(name: .customLong("group-by"), help: "Comma-separated: user, model, group, token.") var groupBy: String?
    @Option(help: "Only this user's calls.") var user: String?
    @Option(help: "Only calls to this model.") var model: String?

    func run() async throws {
        try await reportingErrors {
            var parameters: [String: String] = [:]
            for (name, value) in [("from", from), ("to", to), ("bucket", bucket), ("groupBy", groupBy), ("user", user), ("model", model)] {
                if let value { parameters[name] = value }
            }
            let report = try await global.makeClient().usage(parameters)
            switch global.output {
            case .json: try printJSON(report)
            case .table:
                let dimensions = report.groupBy
                let header =
                    (report.bucket == .none ? [] : ["START"]) + dimensions.map { $0.rawValue.uppercased() } + [
                        "REQUESTS", "ERRORS", "INPUT", "OUTPUT", "COST",
                    ]
                let timed = report.bucket != .none
                var rows = report.data.map { row -> [String] in
                    let keys = dimensions.map { dimension -> String in
                        switch dimension {
                        case .user: row.user ?? ""
                        case .model: row.model ?? ""
                        case .group: row.group ?? ""
                        case .token: row.tokenId ?? "-"
                        }
                    }
                    return (timed ? [row.start.map { Self.format($0, report.bucket) } ?? ""] : []) + keys + Self.figures(row)
                }
                var total = (timed ? ["total"] : []) + dimensions.map { _ in "" } + Self.figures(report.totals)
                if !timed && !dimensions.isEmpty { total[0] = "total" }
                if timed || !dimensions.isEmpty || rows.isEmpty { rows.append(total) }
                printTable(header, rows)
                if !report.latency.isEmpty {
                    print("")
                    printTable(
                        ["MODEL", "REQUESTS", "P50 MS", "P99 MS", "TTFT P50 MS"],
                        report.latency.map { latency in
                            [
                                latency.model, "\(latency.requests)", String(format: "%.1f", latency.p50Ms), String(format: "%.1f", latency.p99Ms),
                                latency.timeToFirstTokenP50Ms.map { String(format: "%.1f", $0) } ?? "-",
                            ]
                        }
                    )
                }
            }
        }
    }

    static func figures(_ row: UsageReport.Row) -> [String] {
        let estimated = row.estimatedRequests > 0 ? " (~\(row.estimatedRequests) est.)" : ""
        return ["\(row.requests)", "\(row.errors)", "\(row.inputTokens)\(estimated)", "\(row.outputTokens)", formatCost(row.cost)]
    }

    /// A cost with its significant digits: `0.000012`, not `0.0000`; two decimals from 1 up.
    static func formatCost(_ value: Double) -> String {
        guard value.isFinite, value != 0 else { return "0" }
        let magnitude = abs(value)
        if magnitude >= 1 { return String(format: "%.2f", value) }
        // Three significant digits below 1, trailing zeros dropped.
        let decimals = min(12, Int(-log10(magnitude).rounded(.down)) + 3)
        var text = String(format: "%.\(decimals)f", value)
        while text.hasSuffix("0") { text.removeLast() }
        if text.hasSuffix(".") { text.removeLast() }
        return text
    }

    static func format(_ date: Date, _ bucket: UsageQuery.Bucket) -> String {
        let text = ISO8601DateFormatter().string(from: date)
        switch bucket {
        case .hour: return String(text.prefix(16)) + "Z"
        case .day: return String(text.prefix(10))
        case .month: return String(text.prefix(7))
        case .none: return ""
        }
    }
}
