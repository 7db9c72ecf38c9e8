import NIOCore
import Testing

@testable import LISAKit

@Suite("Byte search")
struct ByteSearchTests {
    @Test("firstOffset finds a marker anywhere, after false starts, relative to the reader index")
    func firstOffset() {
        let marker = Array("data: [DONE]".utf8)
        #expect(ByteBuffer(string: "data: [DONE]").firstOffset(of: marker) == 0)
        #expect(ByteBuffer(string: "data: {}\n\ndata: [DONE]\n\n").firstOffset(of: marker) == 10)
        #expect(ByteBuffer(string: "data: [DON").firstOffset(of: marker) == nil)
        #expect(ByteBuffer(string: "ddddata: [DONE").firstOffset(of: marker) == nil)
        #expect(ByteBuffer(string: "").firstOffset(of: marker) == nil)
        #expect(ByteBuffer(string: "abc").firstOffset(of: []) == 0)
        var buffer = ByteBuffer(string: "xx\"lisa\" \"lisa\"")
        buffer.moveReaderIndex(forwardBy: 3)
        #expect(buffer.firstOffset(of: Array("\"lisa\"".utf8)) == 6)
        // Linear: a long run of first bytes with no match.
        let long = ByteBuffer(repeating: UInt8(ascii: "d"), count: 1 << 20)
        #expect(long.firstOffset(of: marker) == nil)
    }

    @Test("containsUTF8 finds a marker in native, bridged-free and non-contiguous strings")
    func containsUTF8() {
        #expect(#"{"usage":{"prompt_tokens":1}}"#.containsUTF8("\"usage\""))
        #expect(!#"{"usagex":1}"#.containsUTF8("\"usage\""))
        #expect("héllo \"usage\" wörld".containsUTF8("\"usage\""))
        #expect("".containsUTF8("") && !"".containsUTF8("a"))
        let sub = "xx\"error\"yy".dropFirst(2)
        #expect(sub.containsUTF8("\"error\"") && !sub.containsUTF8("xx"))
    }
}
