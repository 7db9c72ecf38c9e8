import Foundation
import Testing

@testable import LISAKit

@Suite("Unique ids")
struct UniqueIDTests {
    @Test("ids never repeat in a process, from many threads at once; UUIDs are well-formed version 4")
    func unique() async {
        let batches = await withTaskGroup(of: [String].self) { group in
            for _ in 0..<8 {
                group.addTask { (0..<5_000).map { _ in UniqueID.uuidString() } }
            }
            return await group.reduce(into: []) { $0 += $1 }
        }
        #expect(Set(batches).count == 40_000)
        for text in batches.prefix(100) {
            let parsed = UUID(uuidString: text)
            #expect(parsed != nil && text == text.lowercased(), "\(text)")
            let bytes = parsed.map { withUnsafeBytes(of: $0.uuid) { Array($0) } } ?? []
            #expect(bytes.count == 16 && bytes[6] >> 4 == 4 && bytes[8] >> 6 == 2, "\(text)")
        }
        let numbers = (0..<10_000).map { _ in UniqueID.next64() }
        #expect(Set(numbers).count == numbers.count)
    }
}
