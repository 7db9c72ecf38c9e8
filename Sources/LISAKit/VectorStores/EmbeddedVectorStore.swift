import Dispatch
import Foundation
public import Logging
import Synchronization

/// The default vector store: no service, persisted in the data directory, exact search.
///
/// Each collection lives in memory as one contiguous `Float32` matrix (row per chunk;
/// cosine collections store unit vectors, so cosine is a dot product) scanned with SIMD
/// on every core, keeping the best `topK` per core and merging. The same data is written
/// to SQLite (`vectors.sqlite`, embeddings as little-endian Float32 blobs) before memory
/// changes, so it survives restarts and a crash never leaves half a document; opening
/// reads it back.
public final class EmbeddedVectorStore: VectorStore {
    private let database: SQLiteDatabase
    /// Serializes writers, so memory changes in the order the database did.
    private let writes = AsyncLock()
    private let state: RWLocked<[String: Matrix]>

    private init(database: SQLiteDatabase, collections: [String: Matrix]) {
        self.database = database
        self.state = RWLocked(collections)
    }

    /// Opens (creating if needed) the store in `directory`.
    public static func open(directory: String, logger: Logger) async throws -> EmbeddedVectorStore {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let path = URL(fileURLWithPath: directory).appendingPathComponent("vectors.sqlite").path
        return try await open(database: try await SQLiteDatabase.open(path: path, logger: logger))
    }

    /// A store in memory only.
    public static func inMemory() async throws -> EmbeddedVectorStore {
        try await open(database: try await SQLiteDatabase.inMemory())
    }

    private static func open(database: SQLiteDatabase) async throws -> EmbeddedVectorStore {
        try await database.query(
            "CREATE TABLE IF NOT EXISTS collections (name TEXT PRIMARY KEY NOT NULL, dimension INTEGER NOT NULL, metric TEXT NOT NULL)"
        )
        try await database.query(
            """
            CREATE TABLE IF NOT EXISTS chunks (
                collection TEXT NOT NULL, id TEXT NOT NULL, document_id TEXT NOT NULL, text TEXT NOT NULL,
                metadata TEXT NOT NULL, embedding BLOB NOT NULL, PRIMARY KEY (collection, id)
            )
            """
        )
        try await database.query("CREATE INDEX IF NOT EXISTS chunks_document ON chunks (collection, document_id)")
        var collections: [String: Matrix] = [:]
        for row in try await database.query("SELECT name, dimension, metric FROM collections") {
            guard let name = row["name"].string, let dimension = row["dimension"].int,
                let metric = row["metric"].string.flatMap(DistanceMetric.init(rawValue:))
            else { continue }
            let matrix = Matrix(VectorCollection(name: name, dimension: dimension, metric: metric))
            for chunk in try await database.query(
                "SELECT id, document_id, text, metadata, embedding FROM chunks WHERE collection = ? ORDER BY rowid", [.text(name)]
            ) {
                matrix.upsert(try Self.decode(chunk, dimension: dimension))
            }
            collections[name] = matrix
        }
        return EmbeddedVectorStore(database: database, collections: collections)
    }

    // MARK: - VectorStore

    public func createCollection(_ collection: VectorCollection) async throws {
        try collection.validate()
        try await writes.withLock {
            if let existing = state.read({ $0[collection.name]?.collection }) {
                guard existing == collection else { throw Self.conflict(existing) }
                return
            }
            try await database.query(
                "INSERT INTO collections (name, dimension, metric) VALUES (?, ?, ?)",
                [.text(collection.name), .integer(Int64(collection.dimension)), .text(collection.metric.rawValue)]
            )
            state.write { $0[collection.name] = Matrix(collection) }
        }
    }

    public func collections() async throws -> [VectorCollection] {
        state.read { $0.values.map(\.collection) }.sorted { $0.name < $1.name }
    }

    @discardableResult
    public func dropCollection(_ name: String) async throws -> Bool {
        try await writes.withLock {
            guard state.read({ $0[name] }) != nil else { return false }
            try await database.transaction { db in
                try await db.query("DELETE FROM chunks WHERE collection = ?", [.text(name)])
                try await db.query("DELETE FROM collections WHERE name = ?", [.text(name)])
            }
            state.write { $0[name] = nil }
            return true
        }
    }

    public func upsert(_ chunks: [VectorChunk], into collection: String) async throws {
        try await write(collection, chunks: chunks, replacing: nil)
    }

    public func replaceDocument(_ documentId: String, with chunks: [VectorChunk], in collection: String) async throws {
        try chunks.requireAllBelong(to: documentId)
        try await write(collection, chunks: chunks, replacing: documentId)
    }

    @discardableResult
    public func deleteDocument(_ documentId: String, from collection: String) async throws -> Int {
        try await writes.withLock {
            guard let matrix = state.read({ $0[collection] }) else { throw Self.missing(collection) }
            try await database.query(
                "DELETE FROM chunks WHERE collection = ? AND document_id = ?", [.text(collection), .text(documentId)]
            )
            return state.write { _ in matrix.removeDocument(documentId) }
        }
    }

    public func search(_ query: VectorQuery, in collection: String) async throws -> [VectorMatch] {
        guard let matrix = state.read({ $0[collection] }) else { throw Self.missing(collection) }
        try Self.check(query, against: matrix.collection)
        return state.read { _ in matrix.search(query) }
    }

    public func count(in collection: String) async throws -> Int {
        guard let matrix = state.read({ $0[collection] }) else { throw Self.missing(collection) }
        return state.read { _ in matrix.count }
    }

    public func close() async throws {
        try await database.close()
    }

    private func write(_ collection: String, chunks: [VectorChunk], replacing documentId: String?) async throws {
        try await writes.withLock {
            guard let matrix = state.read({ $0[collection] }) else { throw Self.missing(collection) }
            try Self.check(chunks, against: matrix.collection)
            let encoder = JSONEncoder()
            encoder.outputFormatting = .sortedKeys
            let rows: [[StateValue]] = try chunks.map { chunk in
                [
                    .text(collection), .text(chunk.id), .text(chunk.documentId), .text(chunk.text),
                    .text(String(decoding: try encoder.encode(chunk.metadata), as: UTF8.self)), .blob(Self.bytes(chunk.embedding)),
                ]
            }
            try await database.transaction { db in
                if let documentId {
                    try await db.query("DELETE FROM chunks WHERE collection = ? AND document_id = ?", [.text(collection), .text(documentId)])
                }
                for row in rows {
                    try await db.query(
                        """
                        INSERT INTO chunks (collection, id, document_id, text, metadata, embedding) VALUES (?, ?, ?, ?, ?, ?)
                        ON CONFLICT (collection, id) DO UPDATE SET document_id = excluded.document_id, text = excluded.text,
                            metadata = excluded.metadata, embedding = excluded.embedding
                        """,
                        row
                    )
                }
            }
            state.write { _ in
                if let documentId { matrix.removeDocument(documentId) }
                for chunk in chunks { matrix.upsert(chunk) }
            }
        }
    }

    static func bytes(_ vector: [Float]) -> [UInt8] {
        var bytes = [UInt8]()
        bytes.reserveCapacity(vector.count * 4)
        for value in vector {
            withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
        }
        return bytes
    }

    static func floats(_ bytes: [UInt8]) -> [Float] {
        stride(from: 0, to: bytes.count - 3, by: 4).map { offset in
            let bits = UInt32(bytes[offset]) | UInt32(bytes[offset + 1]) << 8 | UInt32(bytes[offset + 2]) << 16 | UInt32(bytes[offset + 3]) << 24
            return Float(bitPattern: bits)
        }
    }

    private static func decode(_ row: StateRow, dimension: Int) throws -> VectorChunk {
        guard let id = row["id"].string, let documentId = row["document_id"].string, let text = row["text"].string,
            let metadata = row["metadata"].string, let blob = row["embedding"].bytes, blob.count == dimension * 4
        else { throw LISAError.internalError("A stored chunk is damaged.") }
        return VectorChunk(
            id: id, documentId: documentId, text: text,
            metadata: try JSONDecoder().decode([String: JSONValue].self, from: Data(metadata.utf8)), embedding: floats(blob)
        )
    }
}

/// One collection in memory: a row-major Float32 matrix and the rows' chunks. Not
/// thread-safe on its own; the store's lock guards it.
final class Matrix: @unchecked Sendable {
    let collection: VectorCollection
    private(set) var values: ContiguousArray<Float> = []
    private var ids: [String] = []
    private var documentIds: [String] = []
    private var texts: [String] = []
    private var metadata: [[String: JSONValue]] = []
    private var rowOfID: [String: Int] = [:]
    private var rowsOfDocument: [String: Set<Int>] = [:]

    init(_ collection: VectorCollection) {
        self.collection = collection
    }

    var count: Int { ids.count }

    func upsert(_ chunk: VectorChunk) {
        var embedding = chunk.embedding
        if collection.metric == .cosine { Self.normalize(&embedding) }
        let dimension = collection.dimension
        if let row = rowOfID[chunk.id] {
            rowsOfDocument[documentIds[row]]?.remove(row)
            values.replaceSubrange(row * dimension..<(row + 1) * dimension, with: embedding)
            documentIds[row] = chunk.documentId
            texts[row] = chunk.text
            metadata[row] = chunk.metadata
            rowsOfDocument[chunk.documentId, default: []].insert(row)
            return
        }
        let row = ids.count
        values.append(contentsOf: embedding)
        ids.append(chunk.id)
        documentIds.append(chunk.documentId)
        texts.append(chunk.text)
        metadata.append(chunk.metadata)
        rowOfID[chunk.id] = row
        rowsOfDocument[chunk.documentId, default: []].insert(row)
    }

    @discardableResult
    func removeDocument(_ documentId: String) -> Int {
        guard let rows = rowsOfDocument[documentId] else { return 0 }
        // Highest rows first, each swapped with the last row, so indices stay valid.
        for row in rows.sorted(by: >) { remove(row: row) }
        rowsOfDocument[documentId] = nil
        return rows.count
    }

    private func remove(row: Int) {
        let last = ids.count - 1
        let dimension = collection.dimension
        rowOfID[ids[row]] = nil
        rowsOfDocument[documentIds[row]]?.remove(row)
        if row != last {
            for column in 0..<dimension { values[row * dimension + column] = values[last * dimension + column] }
            ids[row] = ids[last]
            documentIds[row] = documentIds[last]
            texts[row] = texts[last]
            metadata[row] = metadata[last]
            rowOfID[ids[row]] = row
            rowsOfDocument[documentIds[row]]?.remove(last)
            rowsOfDocument[documentIds[row]]?.insert(row)
        }
        values.removeLast(dimension)
        ids.removeLast()
        documentIds.removeLast()
        texts.removeLast()
        metadata.removeLast()
    }

    static func normalize(_ vector: inout [Float]) {
        let norm = vector.reduce(0) { $0 + $1 * $1 }.squareRoot()
        guard norm > 0 else { return }
        for index in vector.indices { vector[index] /= norm }
    }

    /// Exact top-k: every row scored with SIMD, split over the cores.
    func search(_ query: VectorQuery) -> [VectorMatch] {
        var probe = query.embedding
        if collection.metric == .cosine { Self.normalize(&probe) }
        let rows = ids.count
        guard rows > 0 else { return [] }
        let dimension = collection.dimension
        let metric = collection.metric
        let filter = query.filter
        let k = query.topK
        let parts = rows >= 8192 ? max(1, min(ProcessInfo.processInfo.activeProcessorCount, 16)) : 1
        let perPart = (rows + parts - 1) / parts
        let results = Mutex<[[(Float, Int)]]>(Array(repeating: [], count: parts))
        values.withUnsafeBufferPointer { matrix in
            probe.withUnsafeBufferPointer { vector in
                let matrix = UnsafeSendable(matrix)
                let vector = UnsafeSendable(vector)
                DispatchQueue.concurrentPerform(iterations: parts) { part in
                    var best = TopK(k)
                    let start = part * perPart
                    let end = min(rows, start + perPart)
                    guard start < end else { return }
                    for row in start..<end {
                        if !filter.isEmpty && !metadata[row].matches(filter) { continue }
                        let base = matrix.value.baseAddress! + row * dimension
                        let score =
                            switch metric {
                            case .cosine, .innerProduct: Self.dot(base, vector.value.baseAddress!, dimension)
                            case .l2: -Self.squaredDistance(base, vector.value.baseAddress!, dimension).squareRoot()
                            }
                        best.offer(score, row)
                    }
                    results.withLock { $0[part] = best.items }
                }
            }
        }
        var merged = TopK(k)
        for item in results.withLock({ $0 }).joined() { merged.offer(item.0, item.1) }
        return merged.sorted().compactMap { score, row in
            if let threshold = query.scoreThreshold, score < threshold { return nil }
            return VectorMatch(id: ids[row], documentId: documentIds[row], text: texts[row], metadata: metadata[row], score: score)
        }
    }

    @inline(__always)
    static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ count: Int) -> Float {
        var sum = SIMD16<Float>()
        var index = 0
        let rawA = UnsafeRawPointer(a)
        let rawB = UnsafeRawPointer(b)
        while index + 16 <= count {
            let x = rawA.loadUnaligned(fromByteOffset: index * 4, as: SIMD16<Float>.self)
            let y = rawB.loadUnaligned(fromByteOffset: index * 4, as: SIMD16<Float>.self)
            // Multiply then add: `addingProduct` becomes a libm fma call per lane on x86-64
            // without FMA in the baseline, many times slower.
            sum += x * y
            index += 16
        }
        var total = sum.sum()
        while index < count {
            total += a[index] * b[index]
            index += 1
        }
        return total
    }

    @inline(__always)
    static func squaredDistance(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ count: Int) -> Float {
        var sum = SIMD16<Float>()
        var index = 0
        let rawA = UnsafeRawPointer(a)
        let rawB = UnsafeRawPointer(b)
        while index + 16 <= count {
            let difference =
                rawA.loadUnaligned(fromByteOffset: index * 4, as: SIMD16<Float>.self)
                - rawB.loadUnaligned(fromByteOffset: index * 4, as: SIMD16<Float>.self)
            sum += difference * difference
            index += 16
        }
        var total = sum.sum()
        while index < count {
            let difference = a[index] - b[index]
            total += difference * difference
            index += 1
        }
        return total
    }
}

/// The best `k` (score, row) pairs seen, kept in a min-heap by score.
struct TopK {
    let k: Int
    private(set) var items: [(Float, Int)] = []

    init(_ k: Int) {
        self.k = k
        items.reserveCapacity(k)
    }

    mutating func offer(_ score: Float, _ row: Int) {
        if items.count < k {
            items.append((score, row))
            siftUp(items.count - 1)
        } else if score > items[0].0 {
            items[0] = (score, row)
            siftDown(0)
        }
    }

    func sorted() -> [(Float, Int)] {
        items.sorted { $0.0 != $1.0 ? $0.0 > $1.0 : $0.1 < $1.1 }
    }

    private mutating func siftUp(_ index: Int) {
        var child = index
        while child > 0 {
            let parent = (child - 1) / 2
            guard items[child].0 < items[parent].0 else { return }
            items.swapAt(child, parent)
            child = parent
        }
    }

    private mutating func siftDown(_ index: Int) {
        var parent = index
        while true {
            let left = parent * 2 + 1
            let right = left + 1
            var smallest = parent
            if left < items.count && items[left].0 < items[smallest].0 { smallest = left }
            if right < items.count && items[right].0 < items[smallest].0 { smallest = right }
            guard smallest != parent else { return }
            items.swapAt(parent, smallest)
            parent = smallest
        }
    }
}

/// A pointer handed to `concurrentPerform` workers that only read through it.
struct UnsafeSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

/// A value behind a readers-writer lock: searches run side by side, writes alone.
final class RWLocked<Value>: @unchecked Sendable {
    private var value: Value
    private let lock: UnsafeMutablePointer<pthread_rwlock_t>

    init(_ value: Value) {
        self.value = value
        lock = .allocate(capacity: 1)
        pthread_rwlock_init(lock, nil)
    }

    deinit {
        pthread_rwlock_destroy(lock)
        lock.deallocate()
    }

    func read<T>(_ body: (Value) throws -> T) rethrows -> T {
        pthread_rwlock_rdlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        return try body(value)
    }

    func write<T>(_ body: (inout Value) throws -> T) rethrows -> T {
        pthread_rwlock_wrlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        return try body(&value)
    }
}
