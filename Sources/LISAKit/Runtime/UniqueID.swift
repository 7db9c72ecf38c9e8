import Foundation
import Synchronization

/// Identifiers for request ids and usage records, made without a system call each.
///
/// Each is a counter passed through SplitMix64's finalizer, which is a bijection of 64-bit
/// values: ids from one process never repeat (before 2^64 of them), and each process starts
/// from its own random key, so processes (replicas) do not produce the same sequence. They
/// are unique, not secret: nothing may rely on them being unguessable (tokens and keys come
/// from `SystemRandomNumberGenerator`).
package enum UniqueID {
    private static let key: (UInt64, UInt64) = {
        var generator = SystemRandomNumberGenerator()
        return (generator.next(), generator.next())
    }()
    private static let counter = Atomic<UInt64>(0)

    /// The next 64-bit id of this process.
    package static func next64() -> UInt64 {
        let count = counter.add(1, ordering: .relaxed).newValue
        return mix(key.0 &+ count &* 0x9E37_79B9_7F4A_7C15)
    }

    /// A version-4-shaped UUID, lower case: the next id and a second, independent mix of it.
    package static func uuidString() -> String {
        let count = counter.add(1, ordering: .relaxed).newValue
        let high = mix(key.0 &+ count &* 0x9E37_79B9_7F4A_7C15)
        let low = mix(key.1 ^ count)
        var bytes = (high.bigEndian, low.bigEndian)
        return withUnsafeMutableBytes(of: &bytes) { raw in
            raw[6] = raw[6] & 0x0F | 0x40  // version 4
            raw[8] = raw[8] & 0x3F | 0x80  // RFC 4122 variant
            let uuid = raw.load(as: uuid_t.self)
            return UUID(uuid: uuid).uuidString.lowercased()
        }
    }

    private static func mix(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
