import ArgumentParser
import Foundation
import LISAClient

func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    encoder.dateEncodingStrategy = .iso8601
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

/// Prints rows as aligned columns under a header.
func printTable(_ header: [String], _ rows: [[String]]) {
    let widths = header.indices.map { column in ([header] + rows).map { $0[column].count }.max() ?? 0 }
    for row in [header] + rows {
        print(row.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }.joined(separator: "  "))
    }
}

/// Prints the sources of a grounded answer (`"lisa": {"sources": [...]}`).
func printSources(_ lisa: JSONValue?) {
    guard case .object(let members)? = lisa, case .array(let sources)? = members["sources"], !sources.isEmpty else { return }
    print("\nSources:")
    for (index, source) in sources.enumerated() {
        guard case .object(let fields) = source, case .string(let name)? = fields["documentName"] else { continue }
        print("  [\(index + 1)] \(name)")
    }
}
