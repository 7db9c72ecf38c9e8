public import AsyncHTTPClient
import Foundation
public import Logging
import NIOCore
import NIOHTTP1
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Runs each replica of a hosted model as a child process on this machine.
///
/// A replica gets a free port on 127.0.0.1, its own process group (so stopping it stops
/// what it spawned, and a Ctrl-C meant for LISAServe does not reach it), default signal
/// dispositions, and its output appended to `<data-dir>/replicas/<model>/<replica>.log`.
/// The command runs without a shell. Its environment carries `LISA_REPLICA_ID` and
/// `LISA_DEPLOYMENT_ID`, by which a restarted LISAServe recognises its replicas (adopting
/// them, or stopping those no record accounts for) — on Linux through `/proc`.
public final class LocalProcessBackend: HostingBackend {
    public var name: String { "local" }
    public let directory: String
    /// Identifies the state store's deployment, so two LISA deployments on one machine
    /// never take each other's processes for orphans.
    public let deploymentID: String
    private let httpClient: HTTPClient
    private let logger: Logger
    /// Exit statuses of children reaped while observing them.
    private let exits = Mutex<[Int32: String]>([:])

    public init(directory: String, deploymentID: String, httpClient: HTTPClient, logger: Logger) {
        self.directory = directory
        self.deploymentID = deploymentID
        self.httpClient = httpClient
        self.logger = logger
    }

    public func launch(_ replica: ReplicaRecord, of model: ModelDefinition) async throws -> ReplicaRecord {
        guard let spec = model.launch else { throw LISAError.invalidRequest("The model has no launch spec.") }
        let port = try Self.freePort()
        var arguments = try spec.arguments(port: port, modelName: model.modelName)
        if let workingDirectory = spec.workingDirectory {
            // Change directory in a tiny shell that takes the directory and the command as
            // arguments (never as text), then replaces itself with the command.
            arguments = ["/bin/sh", "-c", "cd \"$0\" && exec \"$@\"", workingDirectory] + arguments
        }
        let logDirectory = URL(fileURLWithPath: directory).appendingPathComponent("replicas").appendingPathComponent(model.modelId)
        try FileManager.default.createDirectory(at: logDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let logPath = logDirectory.appendingPathComponent("\(replica.replicaId).log").path
        // LISAServe's own settings (the admin key, the database URL with its password) are
        // not passed on: a model server has no business with them.
        var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("LISA_") }
        for (key, value) in spec.environment { environment[key] = value }
        environment["LISA_REPLICA_ID"] = replica.replicaId
        environment["LISA_DEPLOYMENT_ID"] = deploymentID
        environment["LISA_MODEL_ID"] = model.modelId
        environment["PORT"] = String(port)
        Self.appendLine(
            "--- LISA: starting replica \(replica.replicaId) of \(model.modelId) on port \(port) at \(Date()): \(arguments.joined(separator: " "))",
            to: logPath
        )
        let pid = try Self.spawn(arguments: arguments, environment: environment, logPath: logPath)
        var launched = replica
        launched.handle = String(pid)
        launched.url = "http://127.0.0.1:\(port)\(spec.basePath)"
        launched.logPath = logPath
        launched.state = .starting
        launched.startedAt = Date().timeIntervalSince1970
        launched.detail = nil
        logger.info(
            "replica launched",
            metadata: ["lisa.model": "\(model.modelId)", "lisa.replica": "\(replica.replicaId)", "lisa.pid": "\(pid)", "lisa.port": "\(port)"]
        )
        return launched
    }

    public func observe(_ replica: ReplicaRecord, of model: ModelDefinition) async -> ReplicaObservation {
        guard let pid = replica.handle.flatMap(Int32.init) else { return .exited("never started") }
        if let reason = exitReason(pid: pid, replicaID: replica.replicaId) { return .exited(reason) }
        guard let url = replica.url, let origin = Self.origin(of: url) else { return .starting }
        let path = model.launch?.healthCheckPath ?? "/health"
        do {
            var request = HTTPClientRequest(url: origin + path)
            request.method = .GET
            let response = try await httpClient.execute(request, timeout: .seconds(2))
            _ = try? await response.body.collect(upTo: 64 * 1024)
            return (200..<300).contains(response.status.code) ? .ready : .starting
        } catch {
            return .starting
        }
    }

    public func stop(_ replica: ReplicaRecord, timeout: Duration) async {
        var pids: [Int32] = []
        if let pid = replica.handle.flatMap(Int32.init), exitReason(pid: pid, replicaID: replica.replicaId) == nil {
            pids.append(pid)
        }
        if pids.isEmpty {
            pids = Self.processes(deploymentID: deploymentID).filter { $0.replicaID == replica.replicaId }.map(\.pid)
        }
        for pid in pids {
            await terminate(pid: pid, replicaID: replica.replicaId, timeout: timeout)
        }
        if let logPath = replica.logPath {
            Self.appendLine("--- LISA: replica \(replica.replicaId) stopped at \(Date())", to: logPath)
        }
    }

    public func removeOrphans(known: Set<String>) async -> [String] {
        var removed: [String] = []
        for process in Self.processes(deploymentID: deploymentID) where !known.contains(process.replicaID) {
            logger.notice("stopping an orphaned replica process", metadata: ["lisa.replica": "\(process.replicaID)", "lisa.pid": "\(process.pid)"])
            await terminate(pid: process.pid, replicaID: process.replicaID, timeout: .seconds(5))
            removed.append(process.replicaID)
        }
        return removed
    }

    public func logs(of replica: ReplicaRecord, tail: Int) async throws -> String {
        guard let path = replica.logPath, let data = FileManager.default.contents(atPath: path) else { return "(no log yet)\n" }
        let lines = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        let trimmed = lines.last == "" ? lines.dropLast() : lines[...]
        return trimmed.suffix(max(tail, 1)).joined(separator: "\n") + "\n"
    }

    // MARK: - Processes

    /// `nil` while the process runs (and is the replica), else why it is gone.
    private func exitReason(pid: Int32, replicaID: String) -> String? {
        if let reason = exits.withLock({ $0[pid] }) { return reason }
        var status: Int32 = 0
        let result = waitpid(pid, &status, WNOHANG)
        if result == pid {
            let reason = Self.describe(status: status)
            exits.withLock { $0[pid] = reason }
            return reason
        }
        // Not our child (adopted after a restart) or still running: is it there, and ours?
        guard kill(pid, 0) == 0 || errno == EPERM else { return "process \(pid) is gone" }
        if let environment = Self.environment(of: pid) {
            guard environment["LISA_REPLICA_ID"] == replicaID else { return "process \(pid) is gone (its id was reused)" }
            if Self.isZombie(pid) { return "process \(pid) exited" }
        }
        return nil
    }

    private func terminate(pid: Int32, replicaID: String, timeout: Duration) async {
        // The replica leads its own process group: signal the group.
        _ = kill(-pid, SIGTERM)
        _ = kill(pid, SIGTERM)
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if exitReason(pid: pid, replicaID: replicaID) != nil { break }
            try? await Task.sleep(for: .milliseconds(50))
        }
        if exitReason(pid: pid, replicaID: replicaID) == nil {
            logger.warning("replica did not stop in time; killing it", metadata: ["lisa.replica": "\(replicaID)", "lisa.pid": "\(pid)"])
            _ = kill(-pid, SIGKILL)
            _ = kill(pid, SIGKILL)
            for _ in 0..<100 where exitReason(pid: pid, replicaID: replicaID) == nil {
                try? await Task.sleep(for: .milliseconds(20))
            }
        } else {
            // Whatever the group leader left behind goes too.
            _ = kill(-pid, SIGKILL)
        }
    }

    static func describe(status: Int32) -> String {
        let signal = status & 0x7f
        if signal == 0 { return "exited with status \((status >> 8) & 0xff)" }
        return "killed by signal \(signal)"
    }

    #if os(Linux)
    static func spawn(arguments: [String], environment: [String: String], logPath: String) throws -> Int32 {
        var fileActions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&fileActions)
        defer { posix_spawn_file_actions_destroy(&fileActions) }
        posix_spawn_file_actions_addopen(&fileActions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&fileActions, 1, logPath, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        posix_spawn_file_actions_adddup2(&fileActions, 1, 2)
        // Nothing else is inherited: not the server's listening socket (a replica that
        // outlives LISAServe would keep its port), not the database or log files.
        closeInheritedDescriptors(&fileActions)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Own process group; an empty signal mask; default handling of the signals the
        // server ignores or handles (ignored dispositions would survive exec).
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGPIPE, SIGCHLD, SIGUSR1, SIGUSR2] {
            sigaddset(&defaults, signal)
        }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var pid: pid_t = 0
        let result = posix_spawnp(&pid, arguments[0], &fileActions, &attributes, argv, envp)
        guard result == 0 else {
            throw LISAError.invalidRequest("Cannot start '\(arguments[0])': \(String(cString: strerror(result))).", param: "launch.command")
        }
        return pid
    }

    /// Adds "close every descriptor from 3 up" to `actions`: glibc's `closefrom` action
    /// (2.34+, looked up at run time), else one close per descriptor open now.
    static func closeInheritedDescriptors(_ actions: inout posix_spawn_file_actions_t) {
        typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, Int32) -> Int32
        if let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np") {
            let closeFrom = unsafeBitCast(symbol, to: CloseFrom.self)
            if closeFrom(&actions, 3) == 0 { return }
        }
        let open = (try? FileManager.default.contentsOfDirectory(atPath: "/dev/fd"))?.compactMap(Int32.init) ?? []
        for descriptor in open where descriptor > 2 && fcntl(descriptor, F_GETFD) != -1 {
            posix_spawn_file_actions_addclose(&actions, descriptor)
        }
    }

    /// A port on 127.0.0.1 that nothing listens on now.
    static func freePort() throws -> Int {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socket >= 0 else { throw LISAError.internalError("Cannot open a socket to find a free port.") }
        defer { close(socket) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw LISAError.internalError("Cannot bind a socket to find a free port.") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(socket, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    #else
    static func spawn(arguments: [String], environment: [String: String], logPath: String) throws -> Int32 {
        throw LISAError.invalidRequest("The local hosting backend runs on Linux only in this version.", param: "hostingType")
    }

    static func freePort() throws -> Int {
        throw LISAError.invalidRequest("The local hosting backend runs on Linux only in this version.", param: "hostingType")
    }
    #endif

    /// Processes carrying this deployment's id, with their replica ids (Linux `/proc`).
    static func processes(deploymentID: String) -> [(pid: Int32, replicaID: String)] {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        return entries.compactMap { entry in
            guard let pid = Int32(entry), let environment = environment(of: pid), environment["LISA_DEPLOYMENT_ID"] == deploymentID,
                let replicaID = environment["LISA_REPLICA_ID"], !isZombie(pid)
            else { return nil }
            return (pid, replicaID)
        }
    }

    static func environment(of pid: Int32) -> [String: String]? {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { return nil }
        var result: [String: String] = [:]
        for entry in data.split(separator: 0) {
            let text = String(decoding: entry, as: UTF8.self)
            guard let equals = text.firstIndex(of: "=") else { continue }
            result[String(text[..<equals])] = String(text[text.index(after: equals)...])
        }
        return result
    }

    static func isZombie(_ pid: Int32) -> Bool {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/stat") else { return false }
        let text = String(decoding: data, as: UTF8.self)
        guard let close = text.lastIndex(of: ")") else { return false }
        return text[text.index(after: close)...].trimmingCharacters(in: .whitespaces).hasPrefix("Z")
    }

    static func origin(of url: String) -> String? {
        guard let components = URLComponents(string: url), let scheme = components.scheme, let host = components.host else { return nil }
        return "\(scheme)://\(host)" + (components.port.map { ":\($0)" } ?? "")
    }

    static func appendLine(_ line: String, to path: String) {
        if !FileManager.default.fileExists(atPath: path) {
            FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600])
        }
        guard let handle = FileHandle(forWritingAtPath: path) else { return }
        defer { try? handle.close() }
        _ = try? handle.seekToEnd()
        try? handle.write(contentsOf: Data((line + "\n").utf8))
    }
}
