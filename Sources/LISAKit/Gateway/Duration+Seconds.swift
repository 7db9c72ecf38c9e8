import Foundation

extension Duration {
    /// The duration in seconds, as a `Double`.
    var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }

    /// The longest duration LISA makes from a number of seconds it was given: 10⁹ s (about
    /// 31 years), as good as forever for a timeout.
    static let longestFromSeconds = Duration.seconds(1_000_000_000)

    /// `seconds` to the millisecond, held to `0...`\(``longestFromSeconds``): a setting or an
    /// answer's number can be anything (`.inf`, `1e300`, negative), and converting those traps.
    package static func seconds(clamping seconds: Double) -> Duration {
        guard seconds.isFinite, seconds > 0 else { return seconds == .infinity ? longestFromSeconds : .zero }
        guard seconds < 1_000_000_000 else { return longestFromSeconds }
        return .milliseconds(Int64((seconds * 1000).rounded(.up)))
    }
}
