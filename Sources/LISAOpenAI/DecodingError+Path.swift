import Foundation

extension DecodingError {
    /// A one-line, user-facing description that names the JSON path that failed,
    /// for example `messages[0].content: expected a string or an array of content parts`.
    public var lisaDescription: String {
        switch self {
        case .typeMismatch(let type, let context):
            if context.debugDescription.hasPrefix("expected") {
                return "\(Self.path(context.codingPath)): \(Self.cleaned(context.debugDescription))"
            }
            return "\(Self.path(context.codingPath)): expected \(Self.describe(type))"
        case .valueNotFound(let type, let context):
            return "\(Self.path(context.codingPath)): expected \(Self.describe(type)), found null"
        case .keyNotFound(let key, let context):
            return "\(Self.path(context.codingPath + [key])): required field is missing"
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty {
                return "request body is not valid JSON"
            }
            return "\(Self.path(context.codingPath)): \(Self.cleaned(context.debugDescription))"
        @unknown default:
            return "invalid request body"
        }
    }

    /// Renders a coding path as `a.b[0].c`; the empty path is the document root.
    package static func path(_ codingPath: [any CodingKey]) -> String {
        var result = ""
        for key in codingPath {
            if let index = key.intValue {
                result += "[\(index)]"
            } else if key.stringValue.hasPrefix("Index ") {
                result += "[\(key.stringValue.dropFirst(6))]"
            } else {
                result += result.isEmpty ? key.stringValue : ".\(key.stringValue)"
            }
        }
        return result.isEmpty ? "(root)" : result
    }

    private static func describe(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "a string"
        case is Bool.Type: return "a boolean"
        case is Int.Type, is Int64.Type, is Int32.Type: return "an integer"
        case is Double.Type, is Float.Type: return "a number"
        case is [Any].Type: return "an array"
        case is [String: Any].Type: return "an object"
        default:
            let name = String(describing: type)
            if name.hasPrefix("Array") { return "an array" }
            if name.hasPrefix("Dictionary") { return "an object" }
            return "a valid \(name)"
        }
    }

    private static func cleaned(_ text: String) -> String {
        text.replacingOccurrences(of: "\n", with: " ")
    }
}
