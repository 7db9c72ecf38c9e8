/// This build of LISA: its semantic version and, for release builds, the commit and date
/// it was built from (`LISABuildInfo`).
public enum LISAVersion {
    /// The version the source tree carries; CHANGELOG.md's newest release.
    public static let number = "0.6.0"

    /// The version this binary reports: a release's stamped version, else `number`.
    public static var string: String { LISABuildInfo.version ?? number }

    /// The commit the binary was built from, or `nil` for a build from a checkout.
    public static var commit: String? { LISABuildInfo.commit }

    /// When the binary was built (ISO 8601, UTC), or `nil` for a build from a checkout.
    public static var buildDate: String? { LISABuildInfo.date }

    /// What `--version` prints: `0.6.0 (commit 9a1fa3c…, built 2026-12-07T18:00:00Z)`,
    /// or `0.6.0 (development build)` without a release stamp.
    public static var description: String {
        guard let commit else { return "\(string) (development build)" }
        return "\(string) (commit \(commit), built \(buildDate ?? "unknown"))"
    }
}
