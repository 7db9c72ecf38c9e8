import Foundation

/// Target tracking on in-flight requests per replica, as a pure state machine.
///
/// Each sample gives the total in-flight requests of a model and its ready replicas. The
/// wanted count is `ceil(inFlight / targetValue)` within the bounds. Scaling out happens
/// at once (then waits `cooldown`); scaling in only after load has stayed low for a whole
/// `cooldown`, to the highest count wanted during that window, so a short lull does not
/// stop replicas that the next burst needs.
public struct Autoscaler: Sendable {
    public var configuration: AutoScalingConfig
    private var lastAction: Double?
    /// (time, wanted) samples within the last cooldown.
    private var window: [(Double, Int)] = []
    /// Since when samples have been collected without a scaling action.
    private var observingSince: Double?

    public init(configuration: AutoScalingConfig) {
        self.configuration = configuration
    }

    /// The wanted count for a load, before cooldowns.
    public func wanted(inFlight: Int) -> Int {
        let target = configuration.metricConfig.targetValue
        let raw = Int((Double(inFlight) / target).rounded(.up))
        return min(max(raw, configuration.minCapacity, 0), configuration.maxCapacity)
    }

    /// Records a sample; returns the new replica count when it should change, else `nil`.
    public mutating func sample(inFlight: Int, current: Int, at now: Double) -> Int? {
        let wanted = wanted(inFlight: inFlight)
        if observingSince == nil { observingSince = now }
        window.append((now, wanted))
        window.removeAll { $0.0 < now - configuration.cooldown }
        if let lastAction, now - lastAction < configuration.cooldown { return nil }
        if wanted > current {
            lastAction = now
            observingSince = now
            window.removeAll()
            return wanted
        }
        guard current > configuration.minCapacity else { return nil }
        // Scale in only when the whole cooldown window (observed since the last action) wanted fewer.
        guard let observingSince, now - observingSince >= configuration.cooldown else { return nil }
        let peak = window.map(\.1).max() ?? wanted
        guard peak < current else { return nil }
        lastAction = now
        self.observingSince = now
        window.removeAll()
        return max(peak, configuration.minCapacity)
    }
}
