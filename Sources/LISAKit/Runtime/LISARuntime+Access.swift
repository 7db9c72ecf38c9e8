/// Who may see what: decisions every binding makes the same way, so none repeats them.
extension LISARuntime {
    /// The budgets of `user` (and of the token `tokenID`, for its own budget) as
    /// `principal` may see them: anyone their own; an administrator anyone's, named by user
    /// and groups. `user` `nil` or the caller's own name: the caller's budgets.
    ///
    /// - Throws: ``LISAError`` `permissionDenied` when someone else's are asked for by a
    ///   non-administrator; `notFound` for a token the administrator cannot see.
    public func budgets(ofUser user: String?, groups: [String] = [], tokenID: String? = nil, by principal: Principal) async throws -> BudgetList {
        guard let user, user != principal.username else { return try await budgets(for: principal) }
        guard configuration.access.isAdmin(principal) else { throw LISAError.forbidden("You may see your own budgets only.") }
        var subject = Principal(username: user, groups: groups, method: .apiToken)
        if let tokenID {
            let token = try await tokens.get(id: tokenID, by: principal)
            subject.tokenID = token.id
            subject.budget = token.budget
        }
        return try await budgets(for: subject)
    }

    /// The models API's list as `principal` may see it: administrators every model as
    /// stored; anyone else who may call inference the models they may use, without where
    /// they run (endpoints, launch, replicas).
    ///
    /// - Throws: ``LISAError`` `permissionDenied` for a caller who may not call models.
    public func modelRecords(visibleTo principal: Principal) throws(LISAError) -> [ModelManager.ModelRecord] {
        let access = configuration.access
        let records = models.records()
        if access.isAdmin(principal) { return records }
        guard access.mayCallInference(principal) else { throw .forbidden("Listing models needs membership of the user group.") }
        let usable = records.filter { access.mayUse($0.definition, principal) }
        let visible = Set(usable.map(\.definition.modelId))
        return usable.map { $0.forUsers(visible: visible) }
    }
}
