import Foundation

extension RawRepresentable where Self: CaseIterable, RawValue == String {
    /// Decodes one of the cases by its raw value; any other value is an error that names the
    /// value and the accepted ones (`'week' is not one of day, month`), never the decoder's
    /// "Cannot initialize … from invalid String value".
    public static func decodeChoice(from decoder: any Decoder) throws -> Self {
        let container = try decoder.singleValueContainer()
        let raw = try container.decode(String.self)
        guard let value = Self(rawValue: raw) else {
            throw DecodingError.dataCorruptedError(
                in: container, debugDescription: "'\(raw)' is not one of \(allCases.map(\.rawValue).joined(separator: ", "))"
            )
        }
        return value
    }
}
