import Foundation
import LISAClient
import Yams

/// Reads one model definition from a YAML or JSON file.
enum ModelDefinitionFile {
    /// Any YAML or JSON document, as JSON.
    static func loadJSON(path: String) throws -> JSONValue {
        try decode(JSONValue.self, path: path)
    }

    static func load(path: String) throws -> ModelDefinition {
        try decode(ModelDefinition.self, path: path)
    }

    /// The file at `path` (JSON when its name ends in `.json`, YAML otherwise) as `T`, or an
    /// error naming the file and what is wrong.
    private static func decode<T: Decodable>(_ type: T.Type, path: String) throws -> T {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw ConfigurationError("cannot read '\(path)': \(error.localizedDescription)")
        }
        do {
            if path.lowercased().hasSuffix(".json") {
                return try JSONDecoder().decode(T.self, from: data)
            }
            return try YAMLDecoder().decode(T.self, from: String(decoding: data, as: UTF8.self))
        } catch let error as DecodingError where T.self != JSONValue.self {
            throw ConfigurationError("'\(path)': \(error.lisaDescription)")
        } catch {
            throw ConfigurationError("'\(path)' is not valid YAML or JSON: \(error)")
        }
    }
}
