import Foundation

/// Collection names: 1–64 of lowercase letters, digits, `_` and `-`, starting with a
/// letter or digit (they become table and index names).
package enum CollectionName {
    package static func isValid(_ name: String) -> Bool {
        guard (1...64).contains(name.utf8.count), let first = name.unicodeScalars.first,
            first.isASCII, CharacterSet.lowercaseLetters.contains(first) || CharacterSet.decimalDigits.contains(first)
        else { return false }
        return name.unicodeScalars.allSatisfy {
            $0.isASCII && (CharacterSet.lowercaseLetters.contains($0) || CharacterSet.decimalDigits.contains($0) || $0 == "_" || $0 == "-")
        }
    }
}
