import Foundation
import LISAAPI
import Testing

@testable import LISAKit

/// A DOCX upload is a ZIP archive whose offsets the uploader writes: every one must lie inside
/// the bytes before the ZIP library reads it (an offset past 2⁶³ trapped in its seek and took
/// the process down, again on every retry of the ingestion job).
@Suite("ZIP structure check")
struct ZipStructureTests {
    static func docx() throws -> [UInt8] {
        Array(try Fixture.data("documents/report.docx"))
    }

    /// A ZIP64 end record pointing the central directory at 2⁶³, with its locator and a
    /// classic end record that defers to it.
    static func zip64Attack(directoryOffset: UInt64 = 1 << 63) -> [UInt8] {
        var bytes: [UInt8] = Array("PK\u{3}\u{4}".utf8) + Array(repeating: 0, count: 26)
        func le(_ value: UInt64, _ width: Int) -> [UInt8] { (0..<width).map { UInt8((value >> (8 * UInt64($0))) & 0xFF) } }
        let record = UInt64(bytes.count)
        bytes += le(0x0606_4b50, 4) + le(44, 8) + le(45, 2) + le(45, 2) + le(0, 4) + le(0, 4)
        bytes += le(1, 8) + le(1, 8) + le(46, 8) + le(directoryOffset, 8)
        bytes += le(0x0706_4b50, 4) + le(0, 4) + le(record, 8) + le(1, 4)
        bytes += le(0x0605_4b50, 4) + le(0, 2) + le(0, 2) + le(0xFFFF, 2) + le(0xFFFF, 2) + le(0xFFFF_FFFF, 4) + le(0xFFFF_FFFF, 4) + le(0, 2)
        return bytes
    }

    @Test("a real DOCX passes and its text is read")
    func realArchive() async throws {
        try ZipStructure.check(try Self.docx())
        let text = try await DocumentParser.text(of: Data(try Self.docx()), filename: "report.docx")
        #expect(text.contains("Quarterly revenue"))
    }

    @Test("a ZIP64 directory offset past the bytes is refused as damaged, before the ZIP library reads it")
    func zip64OffsetPastTheEnd() async throws {
        for offset: UInt64 in [1 << 63, UInt64.max, 1 << 40, 4096] {
            let bytes = Self.zip64Attack(directoryOffset: offset)
            #expect(throws: ZipStructure.Problem.damaged) { try ZipStructure.check(bytes) }
            let error = await #expect(throws: LISAError.self) { _ = try await DocumentParser.text(of: Data(bytes), filename: "evil.docx") }
            #expect(error?.code == .invalidRequest || error?.code == .unsupportedContent)
        }
    }

    @Test("an entry whose deflate stream ends past its stated size is damaged, at once (ZIPFoundation looped forever on it)", .timeLimit(.minutes(1)))
    func truncatedStream() throws {
        var bytes = try Self.docx()
        let entries = try ZipStructure.entries(bytes)
        let document = try #require(entries.first { $0.name == Array("word/document.xml".utf8) })
        #expect(document.method == 8)
        // The central directory's compressed size, halved: the stream now runs past what it states.
        var position = bytes.count - 22
        let directory = Int(
            UInt32(bytes[position + 16]) | UInt32(bytes[position + 17]) << 8 | UInt32(bytes[position + 18]) << 16 | UInt32(bytes[position + 19]) << 24
        )
        position = directory
        while position + 46 <= bytes.count {
            let nameLength = Int(bytes[position + 28]) | Int(bytes[position + 29]) << 8
            let name = Array(bytes[(position + 46)..<(position + 46 + nameLength)])
            if name == document.name {
                let half = UInt32(document.compressedSize / 2)
                for i in 0..<4 { bytes[position + 20 + i] = UInt8((half >> (8 * UInt32(i))) & 0xFF) }
                break
            }
            position +=
                46 + nameLength + (Int(bytes[position + 30]) | Int(bytes[position + 31]) << 8)
                + (Int(bytes[position + 32]) | Int(bytes[position + 33]) << 8)
        }
        #expect(try ZipStructure.entries(bytes).first { $0.name == document.name }?.compressedSize == document.compressedSize / 2)
        #expect(throws: ZipReader.Failure.self) { try ZipReader.entry("word/document.xml", of: Data(bytes), maxBytes: 1 << 20) }
    }

    @Test("no truncation or byte change of a real archive traps the check or loops in the read", .timeLimit(.minutes(2)))
    func mutations() async throws {
        let original = try Self.docx()
        var generator = SeededGenerator(state: 0x5eed)
        var passed = 0
        for round in 0..<3000 {
            var bytes = original
            if round % 3 == 0 {
                bytes = Array(bytes.prefix(Int(generator.next() % UInt64(bytes.count))))
            } else {
                for _ in 0..<(1 + Int(generator.next() % 8)) {
                    let index = Int(generator.next() % UInt64(bytes.count))
                    // Bias towards the directory records at the end, where the offsets are.
                    let target = round % 2 == 0 ? index : bytes.count - 1 - Int(generator.next() % UInt64(min(200, bytes.count)))
                    bytes[target] = round % 5 == 0 ? 0xFF : UInt8(truncatingIfNeeded: generator.next())
                }
            }
            // What passes the check goes to the ZIP library, which must end with data or an error.
            if (try? ZipStructure.check(bytes)) != nil {
                passed += 1
                _ = try? ZipReader.entry("word/document.xml", of: Data(bytes), maxBytes: 1 << 20)
            }
        }
        #expect(passed > 0, "some mutations keep the archive's structure and are read")
        #expect(throws: ZipStructure.Problem.notAnArchive) { try ZipStructure.check(Array("not a zip".utf8)) }
        #expect(throws: ZipStructure.Problem.notAnArchive) { try ZipStructure.check([]) }
    }
}
