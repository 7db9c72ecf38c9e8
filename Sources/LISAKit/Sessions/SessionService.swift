public import Foundation

/// A chat session, with LISA's field names. `history` and `configuration` are kept as the
/// client sent them (messages with their RAG citations, model and parameters).
public struct ChatSession: Sendable, Hashable, Codable {
    public var sessionId: String
    public var userId: String
    public var name: String?
    public var history: JSONValue
    public var configuration: JSONValue?
    public var startTime: Date
    public var lastUpdated: Date

    /// The list view: no history, the first user message as a preview.
    public struct Summary: Sendable, Hashable, Codable {
        public var sessionId: String
        public var name: String?
        public var firstHumanMessage: String?
        public var startTime: Date
        public var lastUpdated: Date
    }

    var summary: Summary {
        var first: String?
        if case .array(let messages) = history {
            for message in messages where message.member("type") == .string("human") || message.member("role") == .string("user") {
                if let text = message.member("content")?.stringValue {
                    first = String(text.prefix(200))
                    break
                }
            }
        }
        return Summary(sessionId: sessionId, name: name, firstHumanMessage: first, startTime: startTime, lastUpdated: lastUpdated)
    }
}

/// A prompt template: a persona (system prompt) or a directive (inserted in the user's
/// message), owned by its author, shared with groups or everyone, revised on update.
public struct PromptTemplate: Sendable, Hashable, Codable {
    public enum Kind: String, Sendable, Codable, CaseIterable {
        case persona, directive

        public init(from decoder: any Decoder) throws { self = try Self.decodeChoice(from: decoder) }
    }

    public var id: String
    public var title: String
    public var type: Kind
    public var body: String
    public var owner: String
    /// Groups that may use it; `lisa:public` shares it with everyone.
    public var groups: [String]
    public var revision: Int
    public var created: Date
    public var updated: Date

    public static let publicGroup = "lisa:public"
}

/// Chat sessions (each principal sees only its own) and prompt templates, stored as records
/// in the state store.
public struct SessionService: Sendable {
    /// Where sessions and templates are kept.
    public let store: RecordStore
    public let access: AccessConfiguration

    static let sessionKind = "session"
    static let templateKind = "prompt-template"
    static let revisionKind = "prompt-template-revision"

    /// What each user may keep.
    public var quotas: StorageQuotas

    public init(store: RecordStore, access: AccessConfiguration, quotas: StorageQuotas = StorageQuotas()) {
        self.store = store
        self.access = access
        self.quotas = quotas
    }

    private static func key(_ principal: Principal, _ sessionId: String) -> String {
        "\(principal.username)\u{1F}\(sessionId)"
    }

    private static func validID(_ id: String) -> Bool {
        (1...128).contains(id.utf8.count)
            && id.unicodeScalars.allSatisfy { $0.isASCII && (CharacterSet.alphanumerics.contains($0) || "-_.:".unicodeScalars.contains($0)) }
    }

    // MARK: - Sessions

    /// The caller's sessions, newest first, from their stored summaries (sessions saved
    /// before summaries existed are summarised from their whole document).
    public func sessions(of principal: Principal) async throws -> [ChatSession.Summary] {
        let decoder = JSONDecoder()
        return try await store.recordSummaries(kind: Self.sessionKind, parent: principal.username).map { text in
            let data = Data(text.utf8)
            // A whole session (it has a history) is summarised here; otherwise it is the summary.
            if let session = try? decoder.decode(ChatSession.self, from: data) { return session.summary }
            return try decoder.decode(ChatSession.Summary.self, from: data)
        }.sorted { $0.lastUpdated > $1.lastUpdated }
    }

    private func store(_ session: ChatSession, of principal: Principal) async throws {
        try await store.put(
            session, summary: session.summary, kind: Self.sessionKind, id: Self.key(principal, session.sessionId), parent: principal.username
        )
    }

    public func session(_ id: String, of principal: Principal) async throws -> ChatSession {
        guard let session = try await store.get(ChatSession.self, kind: Self.sessionKind, id: Self.key(principal, id)) else {
            throw LISAError.notFound("The session '\(id)' does not exist.", reason: "session_not_found")
        }
        return session
    }

    /// Creates or replaces the caller's session `id` with `history` and `configuration`.
    public func save(_ id: String, history: JSONValue, configuration: JSONValue?, name: String?, of principal: Principal) async throws -> ChatSession
    {
        guard Self.validID(id) else {
            throw LISAError.invalidRequest("A session id is 1-128 letters, digits, '-', '_', '.' or ':'.", param: "sessionId")
        }
        guard case .array = history else { throw LISAError.invalidRequest("history must be an array of messages.", param: "history") }
        let now = Date()
        let existingBody = try await store.record(kind: Self.sessionKind, id: Self.key(principal, id))
        let existing = try existingBody.map { try JSONDecoder().decode(ChatSession.self, from: Data($0.utf8)) }
        let session = ChatSession(
            sessionId: id, userId: principal.username, name: name ?? existing?.name, history: history,
            configuration: configuration ?? existing?.configuration, startTime: existing?.startTime ?? now, lastUpdated: now
        )
        try await checkQuota(saving: session, replacing: existingBody, of: principal)
        try await store(session, of: principal)
        return session
    }

    /// Refuses a save that would take the user past their session count or size quota.
    private func checkQuota(saving session: ChatSession, replacing existing: String?, of principal: Principal) async throws {
        let usage = try await store.recordUsage(kind: Self.sessionKind, parent: principal.username)
        if existing == nil, usage.count >= quotas.maxSessionsPerUser {
            throw LISAError.quotaExceeded(
                "You have \(usage.count) sessions, the most LISA keeps per user (quotas.maxSessionsPerUser); delete some first."
            )
        }
        let size = try SQLStateStore.json(session).count
        if usage.characters - (existing?.count ?? 0) + size > quotas.maxSessionBytesPerUser {
            throw LISAError.payloadTooLarge(
                "Saving this session would take your sessions past \(quotas.maxSessionBytesPerUser) characters (quotas.maxSessionBytesPerUser); delete some first.",
                reason: "quota_exceeded"
            )
        }
    }

    public func rename(_ id: String, to name: String, of principal: Principal) async throws -> ChatSession {
        var session = try await session(id, of: principal)
        let trimmed = name.trimmingCharacters(in: .whitespacesAndNewlines)
        guard (1...200).contains(trimmed.count) else { throw LISAError.invalidRequest("name must be 1-200 characters.", param: "name") }
        session.name = trimmed
        session.lastUpdated = Date()
        try await store(session, of: principal)
        return session
    }

    public func delete(_ id: String, of principal: Principal) async throws {
        guard try await store.deleteRecord(kind: Self.sessionKind, id: Self.key(principal, id)) else {
            throw LISAError.notFound("The session '\(id)' does not exist.", reason: "session_not_found")
        }
    }

    @discardableResult
    public func deleteAll(of principal: Principal) async throws -> Int {
        try await store.deleteRecords(kind: Self.sessionKind, parent: principal.username)
    }

    // MARK: - Prompt templates

    private func mayRead(_ template: PromptTemplate, _ principal: Principal) -> Bool {
        template.owner == principal.username || access.isAdmin(principal) || template.groups.contains(PromptTemplate.publicGroup)
            || !Set(template.groups).isDisjoint(with: principal.groups)
    }

    private func mayEdit(_ template: PromptTemplate, _ principal: Principal) -> Bool {
        template.owner == principal.username || access.isAdmin(principal)
    }

    /// The templates the caller may use: their own, shared with one of their groups, public.
    public func templates(for principal: Principal) async throws -> [PromptTemplate] {
        try await store.list(PromptTemplate.self, kind: Self.templateKind).filter { mayRead($0, principal) }
            .sorted { $0.updated > $1.updated }
    }

    public func template(_ id: String, for principal: Principal) async throws -> PromptTemplate {
        guard let template = try await store.get(PromptTemplate.self, kind: Self.templateKind, id: id), mayRead(template, principal) else {
            throw LISAError.notFound("The prompt template '\(id)' does not exist.", reason: "prompt_template_not_found")
        }
        return template
    }

    public struct TemplateInput: Sendable, Codable {
        public var title: String
        public var type: PromptTemplate.Kind?
        public var body: String
        public var groups: [String]?
    }

    private static func check(_ input: TemplateInput) throws(LISAError) {
        guard (1...200).contains(input.title.trimmingCharacters(in: .whitespaces).count) else {
            throw .invalidRequest("title must be 1-200 characters.", param: "title")
        }
        guard (1...32_000).contains(input.body.count) else { throw .invalidRequest("body must be 1-32000 characters.", param: "body") }
    }

    public func createTemplate(_ input: TemplateInput, by principal: Principal) async throws -> PromptTemplate {
        try Self.check(input)
        let owned = try await store.list(PromptTemplate.self, kind: Self.templateKind).filter { $0.owner == principal.username }.count
        guard owned < quotas.maxTemplatesPerUser else {
            throw LISAError.quotaExceeded(
                "You own \(owned) prompt templates, the most LISA keeps per user (quotas.maxTemplatesPerUser); delete some first."
            )
        }
        let now = Date()
        let template = PromptTemplate(
            id: UUID().uuidString.lowercased(), title: input.title, type: input.type ?? .persona, body: input.body, owner: principal.username,
            groups: input.groups ?? [], revision: 1, created: now, updated: now
        )
        try await store.put(template, kind: Self.templateKind, id: template.id)
        return template
    }

    /// A new revision (the previous one is kept); owner or administrator only.
    public func updateTemplate(_ id: String, with input: TemplateInput, by principal: Principal) async throws -> PromptTemplate {
        try Self.check(input)
        var template = try await template(id, for: principal)
        guard mayEdit(template, principal) else { throw LISAError.forbidden("Only the template's owner or an administrator may change it.") }
        try await store.put(template, kind: Self.revisionKind, id: "\(id)#\(template.revision)", parent: id)
        template.title = input.title
        template.type = input.type ?? template.type
        template.body = input.body
        template.groups = input.groups ?? template.groups
        template.revision += 1
        template.updated = Date()
        try await store.put(template, kind: Self.templateKind, id: id)
        return template
    }

    /// Earlier revisions, oldest first: those the caller could read when they were current
    /// (a revision shared with fewer people than the template is now stays private).
    public func revisions(of id: String, for principal: Principal) async throws -> [PromptTemplate] {
        _ = try await template(id, for: principal)
        return try await store.list(PromptTemplate.self, kind: Self.revisionKind, parent: id)
            .filter { mayRead($0, principal) }.sorted { $0.revision < $1.revision }
    }

    public func deleteTemplate(_ id: String, by principal: Principal) async throws {
        let template = try await template(id, for: principal)
        guard mayEdit(template, principal) else { throw LISAError.forbidden("Only the template's owner or an administrator may delete it.") }
        try await store.deleteRecord(kind: Self.templateKind, id: id)
        try await store.deleteRecords(kind: Self.revisionKind, parent: id)
    }
}
