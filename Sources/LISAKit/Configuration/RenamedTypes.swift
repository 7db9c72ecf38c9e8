// The names these types had before 0.7: settings types end in `Configuration` now (see
// Architecture.md, "Names").

@available(*, deprecated, renamed: "ServerTLSConfiguration")
public typealias ServerTLSSettings = ServerTLSConfiguration

@available(*, deprecated, renamed: "UsageConfiguration")
public typealias UsageSettings = UsageConfiguration

@available(*, deprecated, renamed: "KubernetesConfiguration")
public typealias KubernetesSettings = KubernetesConfiguration

@available(*, deprecated, renamed: "UIConfiguration")
public typealias UISettings = UIConfiguration

@available(*, deprecated, renamed: "TracingConfiguration")
public typealias TracingSettings = TracingConfiguration

extension TokenCache {
    @available(*, deprecated, renamed: "Configuration")
    public typealias Settings = Configuration
}

extension PGVectorStore {
    @available(*, deprecated, renamed: "IndexConfiguration")
    public typealias IndexSettings = IndexConfiguration
}
