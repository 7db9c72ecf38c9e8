import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Runs a tool on a file's bytes with a time and output budget: it is killed when it runs
/// past `timeoutSeconds`, writes more than `maxOutputBytes`, or the calling task is cancelled
/// (graceful shutdown, a job's deadline), so no upload can keep a subprocess alive.
enum BoundedProcess {
    static func output(
        of tool: String, _ arguments: [String], input: Data, suffix: String, filename: String, maxOutputBytes: Int, timeoutSeconds: Double
    ) async throws(LISAError) -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("lisa-\(UUID().uuidString)\(suffix)").path
        guard FileManager.default.createFile(atPath: path, contents: input, attributes: [.posixPermissions: 0o600]) else {
            throw .internalError("Cannot write a temporary file to read '\(filename)'.")
        }
        defer { try? FileManager.default.removeItem(atPath: path) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [tool] + arguments.map { $0 == "{input}" ? path : $0 }
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            throw .internalError("Cannot run \(tool) to read '\(filename)' (install poppler-utils).")
        }
        let pid = process.processIdentifier
        let terminate: @Sendable () -> Void = { _ = kill(pid, SIGKILL) }
        // The deadline: kill the tool if it is still running then.
        let watchdog = Task {
            try await Task.sleep(for: .seconds(clamping: timeoutSeconds))
            terminate()
        }
        enum Outcome: Sendable {
            case output(Data)
            case tooLarge
        }
        let reader = output.fileHandleForReading
        let outcome: Outcome = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Outcome, Never>) in
                DispatchQueue.global().async {
                    var collected = Data()
                    while true {
                        let chunk = reader.availableData
                        if chunk.isEmpty { break }
                        collected.append(chunk)
                        if collected.count > maxOutputBytes {
                            terminate()
                            continuation.resume(returning: .tooLarge)
                            return
                        }
                    }
                    continuation.resume(returning: .output(collected))
                }
            }
        } onCancel: {
            terminate()
        }
        watchdog.cancel()
        process.waitUntilExit()
        if Task.isCancelled { throw .internalError("Reading '\(filename)' was cancelled.") }
        switch outcome {
        case .tooLarge:
            throw .payloadTooLarge("'\(filename)' holds more text than the limit of \(maxOutputBytes) bytes (rag.ingestion.maxTextBytes).")
        case .output(let bytes):
            guard process.terminationStatus == 0, process.terminationReason == .exit else {
                if process.terminationReason == .uncaughtSignal {
                    throw .invalidRequest("'\(filename)' took longer than \(Int(timeoutSeconds)) s to read and was given up.", param: "file")
                }
                if process.terminationStatus == 127 {
                    throw .internalError("\(tool) is not installed; it reads '\(filename)' (Debian: poppler-utils).")
                }
                throw .invalidRequest(
                    "'\(filename)' cannot be read (\(tool) exited with \(process.terminationStatus)); is it damaged?", param: "file")
            }
            return String(decoding: bytes, as: UTF8.self)
        }
    }
}
