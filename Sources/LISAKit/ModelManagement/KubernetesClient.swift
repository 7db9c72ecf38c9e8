public import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOFoundationCompat
public import NIOHTTP1
import NIOSSL
import Yams

/// The part of the Kubernetes REST API the hosting backend uses, over AsyncHTTPClient: JSON
/// in and out, a bearer token, the cluster's CA, one namespace.
///
/// Credentials come from the pod's service account when LISAServe runs in a cluster
/// (`/var/run/secrets/kubernetes.io/serviceaccount`, `KUBERNETES_SERVICE_HOST`), or from a
/// kubeconfig file (its current context: `server`, `certificate-authority(-data)`,
/// `insecure-skip-tls-verify`, a user `token` or `tokenFile`). Client certificates and
/// exec plugins are not read; use a service-account token.
public struct KubernetesClient: Sendable {
    /// The API server's origin, e.g. `https://10.0.0.1:443`.
    public var server: String
    public var namespace: String
    var token: String?
    var tls: TLSConfiguration?
    let httpClient: HTTPClient

    /// One answer: status and JSON body (`null` when it was not JSON).
    public struct Reply: Sendable {
        public var status: Int
        public var body: JSONValue

        /// Kubernetes' `Status.message`, or the status code.
        var message: String { body.member("message")?.stringValue ?? "status \(status)" }
    }

    public init(server: String, namespace: String, token: String?, caPEM: [UInt8]? = nil, insecure: Bool = false, httpClient: HTTPClient) throws {
        self.server = server.hasSuffix("/") ? String(server.dropLast()) : server
        self.namespace = namespace
        self.token = token
        self.httpClient = httpClient
        if server.hasPrefix("https:") {
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.minimumTLSVersion = .tlsv12
            if let caPEM { tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(caPEM)) }
            if insecure { tls.certificateVerification = .none }
            self.tls = tls
        }
    }

    static let serviceAccountDirectory = "/var/run/secrets/kubernetes.io/serviceaccount"

    /// In-cluster credentials when LISAServe runs in a pod, else the kubeconfig at `path`
    /// (or `$KUBECONFIG`, or `~/.kube/config`). `namespace` overrides the one they name.
    public static func load(kubeconfig path: String?, namespace: String?, httpClient: HTTPClient) throws -> KubernetesClient {
        let environment = ProcessInfo.processInfo.environment
        if path == nil, let host = environment["KUBERNETES_SERVICE_HOST"], let port = environment["KUBERNETES_SERVICE_PORT"],
            FileManager.default.fileExists(atPath: serviceAccountDirectory + "/token")
        {
            let token = try String(contentsOfFile: serviceAccountDirectory + "/token", encoding: .utf8).trimmingCharacters(
                in: .whitespacesAndNewlines)
            let ca = FileManager.default.contents(atPath: serviceAccountDirectory + "/ca.crt").map { Array($0) }
            let own = (try? String(contentsOfFile: serviceAccountDirectory + "/namespace", encoding: .utf8))?
                .trimmingCharacters(in: .whitespacesAndNewlines)
            let bracketed = host.contains(":") ? "[\(host)]" : host
            return try KubernetesClient(
                server: "https://\(bracketed):\(port)", namespace: namespace ?? own ?? "default", token: token, caPEM: ca, httpClient: httpClient
            )
        }
        let file =
            path ?? environment["KUBECONFIG"]?.split(separator: ":").first.map(String.init)
            ?? (environment["HOME"].map { $0 + "/.kube/config" } ?? "")
        guard let data = FileManager.default.contents(atPath: file), let text = String(data: data, encoding: .utf8) else {
            throw ConfigurationError(
                "hosting.backend kubernetes: not in a cluster (no service-account token) and no kubeconfig at '\(file)' (hosting.kubernetes.kubeconfig)"
            )
        }
        return try parse(kubeconfig: text, at: file, namespace: namespace, httpClient: httpClient)
    }

    static func parse(kubeconfig text: String, at file: String, namespace: String?, httpClient: HTTPClient) throws -> KubernetesClient {
        func fail(_ what: String) -> ConfigurationError { ConfigurationError("kubeconfig '\(file)': \(what)") }
        guard let root = try? Yams.load(yaml: text) as? [String: Any] else { throw fail("not a YAML mapping") }
        func named(_ list: String, _ name: String?) -> [String: Any]? {
            (root[list] as? [[String: Any]])?.first { $0["name"] as? String == name }
        }
        guard let contextName = root["current-context"] as? String, let context = named("contexts", contextName)?["context"] as? [String: Any]
        else { throw fail("no current-context") }
        guard let cluster = named("clusters", context["cluster"] as? String)?["cluster"] as? [String: Any],
            let server = cluster["server"] as? String
        else { throw fail("the current context's cluster has no server") }
        let user = named("users", context["user"] as? String)?["user"] as? [String: Any] ?? [:]
        let directory = (file as NSString).deletingLastPathComponent
        func resolve(_ path: String) -> String { path.hasPrefix("/") ? path : directory + "/" + path }
        var ca: [UInt8]?
        if let encoded = cluster["certificate-authority-data"] as? String {
            guard let decoded = Data(base64Encoded: encoded) else { throw fail("certificate-authority-data is not base64") }
            ca = Array(decoded)
        } else if let path = cluster["certificate-authority"] as? String {
            guard let contents = FileManager.default.contents(atPath: resolve(path)) else { throw fail("cannot read \(path)") }
            ca = Array(contents)
        }
        var token = user["token"] as? String
        if token == nil, let path = user["tokenFile"] as? String {
            token = (try? String(contentsOfFile: resolve(path), encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        if user["client-certificate-data"] != nil || user["client-certificate"] != nil || user["exec"] != nil, token == nil {
            throw fail("only token credentials are supported (a service-account token); client certificates and exec plugins are not")
        }
        do {
            return try KubernetesClient(
                server: server, namespace: namespace ?? context["namespace"] as? String ?? "default", token: token, caPEM: ca,
                insecure: cluster["insecure-skip-tls-verify"] as? Bool ?? false, httpClient: httpClient
            )
        } catch {
            throw fail("certificate-authority: \(error)")
        }
    }

    /// Calls the API. Never follows redirects (the shared client does not).
    public func call(
        _ method: HTTPMethod, _ path: String, json: JSONValue? = nil, contentType: String = "application/json", timeout: Duration = .seconds(30)
    ) async throws -> Reply {
        var request = HTTPClientRequest(url: server + path)
        request.method = method
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        request.headers.add(name: "Accept", value: "application/json")
        if let tls { request.tlsConfiguration = tls }
        if let json {
            request.headers.add(name: "Content-Type", value: contentType)
            request.body = .bytes(ByteBuffer(bytes: try JSONEncoder().encode(json)))
        }
        let response: HTTPClientResponse
        do {
            response = try await httpClient.execute(request, timeout: .init(timeout))
        } catch {
            throw LISAError.badGateway("The Kubernetes API at \(server) cannot be reached: \(UpstreamFailure(classifying: error)).")
        }
        let data = try await response.body.collect(upTo: 16 * 1024 * 1024)
        let status = Int(response.status.code)
        if status == 401 || status == 403 {
            let body = (try? JSONDecoder().decode(JSONValue.self, from: data)) ?? .null
            throw LISAError.badGateway(
                "The Kubernetes API refused LISA (\(status)): \(body.member("message")?.stringValue ?? "check the service account's Role")."
            )
        }
        if path.contains("/log") {
            return Reply(status: status, body: .string(String(buffer: data)))
        }
        return Reply(status: status, body: (try? JSONDecoder().decode(JSONValue.self, from: data)) ?? .null)
    }

    /// `/api/v1/namespaces/N/<resource>` or `/apis/apps/v1/namespaces/N/<resource>`.
    func path(_ group: String, _ resource: String, _ name: String? = nil, query: String? = nil) -> String {
        let base = group.isEmpty ? "/api/v1" : "/apis/\(group)"
        var path = "\(base)/namespaces/\(namespace)/\(resource)"
        if let name { path += "/\(name)" }
        if let query { path += "?" + query }
        return path
    }
}
