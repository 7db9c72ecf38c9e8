extension JSONValue {
    /// The member `key` of an object; `nil` for other values.
    public func member(_ key: String) -> JSONValue? {
        if case .object(let members) = self { return members[key] }
        return nil
    }
}
