import Foundation
import LISAKit
import Yams

/// Reads one model definition from a YAML or JSON file.
enum ModelDefinitionFile {
    /// Any YAML or JSON document, as JSON.
    static func loadJSON(path: String) throws -> JSONValue {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw ConfigurationError("cannot read '\(path)': \(error.localizedDescription)")
        }
        do {
            if path.lowercased().hasSuffix(".json") {
                return try JSONDecoder().decode(JSONValue.self, from: data)
            }
            return try YAMLDecoder().decode(JSONValue.self, from: String(decoding: data, as: UTF8.self))
        } catch {
            throw ConfigurationError("'\(path)' is not valid YAML or JSON: \(error)")
        }
    }

    static func load(path: String) throws -> ModelDefinition {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw ConfigurationError("cannot read '\(path)': \(error.localizedDescription)")
        }
        do {
            if path.lowercased().hasSuffix(".json") {
                return try JSONDecoder().decode(ModelDefinition.self, from: data)
            }
            return try YAMLDecoder().decode(ModelDefinition.self, from: String(decoding: data, as: UTF8.self))
        } catch let error as DecodingError {
            throw ConfigurationError("'\(path)': \(error.lisaDescription)")
        } catch {
            throw ConfigurationError("'\(path)' is not valid YAML or JSON: \(error)")
        }
    }
}
