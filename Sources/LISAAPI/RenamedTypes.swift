// The names these types had before 0.7: settings types end in `Configuration` now (see
// Architecture.md, "Names").

@available(*, deprecated, renamed: "PGVectorConfiguration")
public typealias PGVectorSettings = PGVectorConfiguration

@available(*, deprecated, renamed: "OpenSearchConfiguration")
public typealias OpenSearchSettings = OpenSearchConfiguration
