/// This build of LISA, as `--version` prints it and `GET /health` would report it.
public enum LISAVersion {
    public static let string = "0.5.0-dev"
}
