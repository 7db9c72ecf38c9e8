/// What `scripts/release.sh` stamps into a release build: it rewrites this file in its
/// staging copy of the committed tree. A build from a checkout leaves all three `nil`.
public enum LISABuildInfo {
    /// The release's version when it differs from `LISAVersion.number` (a `scripts/release.sh VERSION` argument).
    public static let version: String? = nil
    /// The full commit hash the release was built from.
    public static let commit: String? = nil
    /// When the release was built, ISO 8601 in UTC.
    public static let date: String? = nil
}
