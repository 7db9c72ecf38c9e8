// RAG vector-store benchmark: the embedded store and pgvector side by side, in one run.
//
//   swift run -c release lisa-bench-rag [--postgres URL] [--sizes 10000,100000] [--queries 200]
//
// For each store and size: ingest that many 384-dimension chunks (all-MiniLM-L6-v2's size;
// random unit vectors, so no embedding time is counted) in batches of 500 and report
// chunks/s; then run top-10 queries and report p50/p99 latency in milliseconds.
import Foundation
import LISAKit
import Logging

struct Options {
    var postgres: String?
    var sizes = [10_000, 100_000]
    var queries = 200
    var dimension = 384
}

var parsed = Options()
var arguments = CommandLine.arguments.dropFirst().makeIterator()
while let argument = arguments.next() {
    switch argument {
    case "--postgres": parsed.postgres = arguments.next()
    case "--sizes": parsed.sizes = (arguments.next() ?? "").split(separator: ",").compactMap { Int($0) }
    case "--queries": parsed.queries = Int(arguments.next() ?? "") ?? parsed.queries
    default: FileHandle.standardError.write(Data("unknown option \(argument)\n".utf8)); exit(2)
    }
}

let options = parsed

func unitVector(_ dimension: Int) -> [Float] {
    var generator = SystemRandomNumberGenerator()
    var vector = (0..<dimension).map { _ in Float.random(in: -1...1, using: &generator) }
    let norm = vector.reduce(0) { $0 + $1 * $1 }.squareRoot()
    for index in vector.indices { vector[index] /= norm }
    return vector
}

func percentile(_ values: [Double], _ p: Double) -> Double {
    let sorted = values.sorted()
    return sorted[min(sorted.count - 1, Int((Double(sorted.count - 1) * p).rounded()))]
}

struct Row {
    var store: String
    var size: Int
    var chunksPerSecond: Double
    var p50: Double
    var p99: Double
}

func run(_ name: String, _ store: any VectorStore, size: Int) async throws -> Row {
    let collection = "bench-\(size)-\(UUID().uuidString.prefix(6).lowercased())"
    try await store.createCollection(VectorCollection(name: collection, dimension: options.dimension))
    let chunks = (0..<size).map { index in
        VectorChunk(
            id: "c\(index)", documentId: "d\(index / 20)", text: "chunk \(index) of a benchmark document",
            metadata: ["n": .integer(Int64(index % 10))], embedding: unitVector(options.dimension)
        )
    }
    let start = ContinuousClock.now
    for batch in stride(from: 0, to: size, by: 500) {
        try await store.upsert(Array(chunks[batch..<min(batch + 500, size)]), into: collection)
    }
    let ingest = (ContinuousClock.now - start)
    let seconds = Double(ingest.components.seconds) + Double(ingest.components.attoseconds) / 1e18
    var latencies: [Double] = []
    for _ in 0..<options.queries {
        let query = VectorQuery(embedding: unitVector(options.dimension), topK: 10)
        let began = ContinuousClock.now
        let found = try await store.search(query, in: collection)
        let elapsed = ContinuousClock.now - began
        precondition(found.count == 10)
        latencies.append(Double(elapsed.components.attoseconds) / 1e15 + Double(elapsed.components.seconds) * 1000)
    }
    try await store.dropCollection(collection)
    return Row(store: name, size: size, chunksPerSecond: Double(size) / seconds, p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99))
}

var logger = Logger(label: "bench")
logger.logLevel = .warning
let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lisa-bench-rag-\(UUID().uuidString)").path
let embedded = try await EmbeddedVectorStore.open(directory: directory, logger: logger)
var stores: [(String, any VectorStore)] = [("embedded", embedded)]
var database: PostgresDatabase?
if let url = options.postgres {
    let postgres = try await PostgresDatabase.connect(url: url, logger: logger)
    database = postgres
    stores.append(("pgvector (HNSW m=16, ef_search=40)", try await PGVectorStore.open(database: postgres, logger: logger)))
}
print("cores: \(ProcessInfo.processInfo.activeProcessorCount), dimension \(options.dimension), top-10, \(options.queries) queries per cell")
print("| store | chunks | ingest (chunks/s) | query p50 (ms) | query p99 (ms) |")
print("|---|---|---|---|---|")
for size in options.sizes {
    for (name, store) in stores {
        let row = try await run(name, store, size: size)
        print(String(format: "| %@ | %d | %.0f | %.2f | %.2f |", row.store, row.size, row.chunksPerSecond, row.p50, row.p99))
    }
}
try await embedded.close()
try? await database?.close()
try? FileManager.default.removeItem(atPath: directory)
