"""TLS everywhere, with a private CA generated for each test: LISAServe on HTTPS (HTTP/2,
rotation, client certificates), upstreams on HTTPS (CA bundles, clear failures, mTLS), and
an OIDC issuer on HTTPS."""
import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import openai
import pytest
from cryptography import x509

from certs import CA
from conftest import ADMIN_KEY, BIN, ROOT, Lisa, free_port


class HTTPSUpstream:
    """A small OpenAI-compatible upstream on HTTPS (optionally requiring a client certificate)."""

    def __init__(self, cert, key, client_ca=None):
        self.port = free_port()
        self.client_subjects = []
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                status = 200 if self.path == "/health" else 404
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                request = json.loads(self.rfile.read(length))
                peer = self.connection.getpeercert()
                if peer:
                    upstream.client_subjects.append(dict(item[0] for item in peer["subject"]))
                text = request["messages"][-1]["content"]
                body = json.dumps({"id": "c1", "object": "chat.completion", "created": 1, "model": request["model"],
                                   "choices": [{"index": 0, "message": {"role": "assistant", "content": f"tls: {text}"},
                                                "finish_reason": "stop"}],
                                   "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert), str(key))
        if client_ca:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(str(client_ca))
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"https://127.0.0.1:{self.port}/v1"

    def close(self):
        self.server.shutdown()


def request(lisa, method, path, body=None, verify=True):
    with httpx.Client(verify=verify, timeout=30) as client:
        response = client.request(method, lisa.url + path, json=body, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        return response.status_code, response.json()


def peer_serial(port, cafile):
    context = ssl.create_default_context(cafile=str(cafile))
    with socket.create_connection(("127.0.0.1", port)) as raw, context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True)).serial_number


def test_https_server_with_http2_and_certificate_rotation(upstream, tmp_path):
    ca = CA(tmp_path / "pki", "lisa-test-ca")
    cert, key, first_serial = ca.issue("server", "lisa.test")
    lisa = Lisa(upstream, tmp_path / "data", tls_ca=ca.path, extra_config=f"""
server:
  tls:
    certificate: {cert}
    privateKey: {key}
    reloadIntervalSeconds: 0.5
""")
    try:
        # curl with the private CA; HTTP/2 is negotiated by ALPN, HTTP/1.1 still works.
        for flag, version in (("--http2", "2"), ("--http1.1", "1.1")):
            out = subprocess.run(["curl", "-sS", flag, "--cacert", str(ca.path), "-H", f"Authorization: Bearer {ADMIN_KEY}",
                                  "-o", "/dev/null", "-w", "%{http_code} %{http_version}", lisa.url + "/v1/models"],
                                 capture_output=True, text=True, timeout=30)
            assert out.stdout == f"200 {version}", out.stdout + out.stderr
        failed = subprocess.run(["curl", "-sS", lisa.url + "/health"], capture_output=True, text=True, timeout=30)
        assert failed.returncode != 0 and "certificate" in failed.stderr.lower(), "not trusted without the CA"

        # The openai SDK (httpx, HTTP/1.1) and a streaming answer over TLS.
        client = openai.OpenAI(base_url=lisa.url + "/v1", api_key=ADMIN_KEY, max_retries=0,
                               http_client=httpx.Client(verify=ssl.create_default_context(cafile=str(ca.path))))
        assert client.chat.completions.create(model="chat-small", messages=[{"role": "user", "content": "over tls"}]
                                              ).choices[0].message.content == "echo: over tls"
        chunks = [c.choices[0].delta.content or "" for c in client.chat.completions.create(
            model="chat-small", messages=[{"role": "user", "content": "streamed"}], stream=True) if c.choices]
        assert "".join(chunks) == "echo: streamed"
        with pytest.raises(openai.APIConnectionError):
            openai.OpenAI(base_url=lisa.url + "/v1", api_key=ADMIN_KEY, max_retries=0).models.list()

        # Rotation: new files in place; new connections get the new certificate, no restart.
        assert peer_serial(lisa.port, ca.path) == first_serial
        new_cert, new_key, second_serial = ca.issue("server-next", "lisa.test")
        shutil.copy(new_key, key)
        shutil.copy(new_cert, cert)
        deadline = time.time() + 10
        while time.time() < deadline and peer_serial(lisa.port, ca.path) != second_serial:
            time.sleep(0.2)
        assert peer_serial(lisa.port, ca.path) == second_serial
        assert lisa.proc.process.poll() is None, "the same process"
        assert client.models.list().data
    finally:
        lisa.stop()
    assert "server certificate reloaded" in lisa.proc.output()


def test_client_certificates_sign_in_as_their_subject(upstream, tmp_path):
    ca = CA(tmp_path / "pki", "server-ca")
    clients = CA(tmp_path / "pki", "client-ca")
    strangers = CA(tmp_path / "pki", "stranger-ca")
    cert, key, _ = ca.issue("server", "lisa.test")
    alice = clients.issue("alice", "alice", names=(), client=True, units=("team-a",))
    admin = clients.issue("ops", "ops-bot", names=(), client=True, units=("lisa-admins",))
    mallory = strangers.issue("mallory", "mallory", names=(), client=True, units=("lisa-admins",))
    lisa = Lisa(upstream, tmp_path / "data", tls_ca=ca.path, extra_config=f"""
server:
  tls:
    certificate: {cert}
    privateKey: {key}
    clientCA: {clients.path}
auth:
  adminGroup: lisa-admins
""")

    def call(path, identity=None):
        context = ssl.create_default_context(cafile=str(ca.path))
        if identity:
            context.load_cert_chain(str(identity[0]), str(identity[1]))
        with httpx.Client(verify=context) as client:
            return client.get(lisa.url + path).status_code

    try:
        assert call("/v1/models", alice) == 200, "CN=alice signs in with her certificate alone"
        assert call("/models/chat-small", alice) == 403, "team-a is not an admin"
        assert call("/models/chat-small", admin) == 200, "OU=lisa-admins is the admin group"
        assert call("/v1/models") == 401, "no certificate, no key: refused"
        with pytest.raises(httpx.HTTPError):
            call("/v1/models", mallory)  # signed by a CA the server does not trust
    finally:
        lisa.stop()


@pytest.fixture
def pki(tmp_path):
    return CA(tmp_path / "pki", "upstream-ca")


def create(lisa, model_id, url, tls=None):
    endpoint = {"url": url}
    if tls:
        endpoint["tls"] = tls
    return request(lisa, "POST", "/models", {"modelId": model_id, "modelName": "up", "endpoints": [endpoint]})


def chat(lisa, model, key=ADMIN_KEY):
    with httpx.Client(timeout=30) as client:
        response = client.post(lisa.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                               json={"model": model, "messages": [{"role": "user", "content": "hi"}]})
        return response.status_code, response.json()


def test_upstream_tls_with_a_private_ca_and_clear_failures(upstream, tmp_path, pki):
    good = HTTPSUpstream(*pki.issue("good", "upstream")[:2])
    wrong_name = HTTPSUpstream(*pki.issue("wrong", "elsewhere", names=("elsewhere.example",))[:2])
    expired = HTTPSUpstream(*pki.issue("expired", "upstream", not_before_days=-30, not_after_days=-1)[:2])
    lisa = Lisa(upstream, tmp_path / "data")
    try:
        trusted = {"caFile": str(pki.path)}
        assert create(lisa, "good", good.url, trusted)[0] == 201
        status, body = chat(lisa, "good")
        assert status == 200 and body["choices"][0]["message"]["content"] == "tls: hi"

        assert create(lisa, "no-bundle", good.url)[0] == 201
        status, body = chat(lisa, "no-bundle")
        assert status == 502 and body["error"]["code"] == "upstream_tls_error"
        assert f"127.0.0.1:{good.port}" in body["error"]["message"] and "unknown CA" in body["error"]["message"], body
        # An ordinary user learns that the upstream failed, and the request id; not where or why.
        status, created = request(lisa, "POST", "/api-tokens/mallory", {"name": "t", "groups": []})
        status, body = chat(lisa, "no-bundle", key=created["token"])
        message = body["error"]["message"]
        assert status == 502 and body["error"]["code"] == "upstream_tls_error", body
        assert str(good.port) not in message and "CA" not in message and "request id" in message, message

        assert create(lisa, "wrong-name", wrong_name.url, trusted)[0] == 201
        status, body = chat(lisa, "wrong-name")
        assert status == 502 and body["error"]["code"] == "upstream_tls_error"
        assert "name mismatch" in body["error"]["message"] and "elsewhere.example" in body["error"]["message"], body

        assert create(lisa, "expired", expired.url, trusted)[0] == 201
        status, body = chat(lisa, "expired")
        assert status == 502 and "expired" in body["error"]["message"], body

        # Active health probes use the endpoint's TLS settings too: the endpoint stays healthy.
        code, _ = request(lisa, "POST", "/models", {"modelId": "probed", "modelName": "up",
                                                    "endpoints": [{"url": good.url, "tls": trusted}],
                                                    "healthCheck": {"path": "/health", "intervalSeconds": 0.2, "timeoutSeconds": 1}})
        assert code == 201
        time.sleep(1.5)
        assert request(lisa, "GET", "/models/probed")[1]["endpointStatus"][0]["healthy"] is True
        assert chat(lisa, "probed")[0] == 200

        # A bad bundle path is refused when the model is created, naming the field.
        status, body = create(lisa, "bad-bundle", good.url, {"caFile": str(tmp_path / "missing.pem")})
        assert status == 400 and body["error"]["param"] == "endpoints[0].tls.caFile"
    finally:
        lisa.stop()
        for server in (good, wrong_name, expired):
            server.close()


def test_mutual_tls_to_an_upstream(upstream, tmp_path, pki):
    clients = CA(tmp_path / "pki", "upstream-clients")
    server = HTTPSUpstream(*pki.issue("mtls", "upstream")[:2], client_ca=clients.path)
    client_cert, client_key, _ = clients.issue("lisa-client", "lisa-gateway", names=(), client=True)
    lisa = Lisa(upstream, tmp_path / "data")
    try:
        with_cert = {"caFile": str(pki.path), "certificate": str(client_cert), "privateKey": str(client_key)}
        assert create(lisa, "mtls", server.url, with_cert)[0] == 201
        status, body = chat(lisa, "mtls")
        assert status == 200 and body["choices"][0]["message"]["content"] == "tls: hi", body
        assert server.client_subjects and server.client_subjects[-1]["commonName"] == "lisa-gateway"

        assert create(lisa, "mtls-anonymous", server.url, {"caFile": str(pki.path)})[0] == 201
        status, body = chat(lisa, "mtls-anonymous")
        assert status == 502 and body["error"]["code"] == "upstream_tls_error", body
        assert "CERTIFICATE_REQUIRED" in body["error"]["message"] or "HANDSHAKE_FAILURE" in body["error"]["message"], body
    finally:
        lisa.stop()
        server.close()


def test_oidc_issuer_on_https_with_a_private_ca(upstream, tmp_path):
    from test_oidc import CLIENT_ID, IdP
    ca = CA(tmp_path / "pki", "idp-ca")
    cert, key, _ = ca.issue("idp", "idp")
    idp = IdP()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    idp.server.socket = context.wrap_socket(idp.server.socket, server_side=True)
    idp.issuer = idp.issuer.replace("http://", "https://")
    config = f"""
auth:
  authority: {idp.issuer}
  clientId: {CLIENT_ID}
  jwtGroupsProperty: realm_access.roles
  caFile: {ca.path}
"""
    lisa = Lisa(upstream, tmp_path / "data", extra_config=config)
    try:
        client = openai.OpenAI(base_url=lisa.url + "/v1", api_key=idp.token(), max_retries=0)
        assert [m.id for m in client.models.list()] == ["chat-small", "embedder"]
    finally:
        lisa.stop()
    # Without the bundle the IdP is not trusted and the token is refused.
    lisa = Lisa(upstream, tmp_path / "data2", extra_config=config.replace(f"  caFile: {ca.path}\n", ""))
    try:
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=lisa.url + "/v1", api_key=idp.token(), max_retries=0).models.list()
    finally:
        lisa.stop()
        idp.server.shutdown()


def test_postgresql_state_over_tls_with_verify_full(upstream, tmp_path):
    ca = CA(tmp_path / "pki", "db-ca")
    other = CA(tmp_path / "pki", "other-ca")
    cert, key, _ = ca.issue("db", "db", names=("127.0.0.1", "localhost"))
    wrong_cert, wrong_key, _ = ca.issue("db-wrong", "db", names=("db.example",))
    port = free_port()
    data = f"/tmp/lisa-pgtls-{port}"
    env = {**os.environ, "LISA_PG_PORT": str(port), "LISA_PG_DATA": data, "LISA_PG_SSL_CERT": str(cert), "LISA_PG_SSL_KEY": str(key)}
    script = str(ROOT / "scripts" / "postgres.sh")
    base = subprocess.run([script, "start"], env=env, capture_output=True, text=True, check=True).stdout.strip()
    try:
        url = base.replace("sslmode=disable", f"sslmode=verify-full&sslrootcert={ca.path}")
        lisa = Lisa(upstream, tmp_path / "data", extra_env={"LISA_DATABASE_URL": url})
        try:
            assert request(lisa, "POST", "/models", {"modelId": "over-tls", "modelName": "x", "modelUrl": upstream})[0] == 201
            assert request(lisa, "GET", "/models/over-tls")[0] == 200
        finally:
            lisa.stop()

        # Another CA: LISAServe refuses to start and says why, without the password.
        refused = subprocess.run([str(BIN / "LISAServe"), "--port", "0", "--data-dir", str(tmp_path / "d2")],
                                 env={"LISA_DATABASE_URL": url.replace(str(ca.path), str(other.path)) .replace("postgres@", "postgres:s3cret@"),
                                      "LISA_ADMIN_KEY": ADMIN_KEY, "PATH": os.environ["PATH"]},
                                 capture_output=True, text=True, timeout=60)
        assert refused.returncode != 0
        assert "cannot reach PostgreSQL" in refused.stderr and "s3cret" not in refused.stderr, refused.stderr
        assert "certificate" in refused.stderr.lower() or "verify" in refused.stderr.lower(), refused.stderr
    finally:
        subprocess.run([script, "stop"], env=env, capture_output=True)
        shutil.rmtree(data, ignore_errors=True)

    # A certificate for another name fails verify-full (name mismatch).
    port = free_port()
    data = f"/tmp/lisa-pgtls-{port}"
    env = {**os.environ, "LISA_PG_PORT": str(port), "LISA_PG_DATA": data, "LISA_PG_SSL_CERT": str(wrong_cert),
           "LISA_PG_SSL_KEY": str(wrong_key)}
    base = subprocess.run([script, "start"], env=env, capture_output=True, text=True, check=True).stdout.strip()
    try:
        url = base.replace("sslmode=disable", f"sslmode=verify-full&sslrootcert={ca.path}")
        refused = subprocess.run([str(BIN / "LISAServe"), "--port", "0", "--data-dir", str(tmp_path / "d3")],
                                 env={"LISA_DATABASE_URL": url, "LISA_ADMIN_KEY": ADMIN_KEY, "PATH": os.environ["PATH"]},
                                 capture_output=True, text=True, timeout=60)
        assert refused.returncode != 0 and "cannot reach PostgreSQL" in refused.stderr, refused.stderr
        # verify-ca checks the chain only, so the same server is accepted.
        lisa = Lisa(upstream, tmp_path / "data4", extra_env={"LISA_DATABASE_URL": url.replace("verify-full", "verify-ca")})
        lisa.stop()
    finally:
        subprocess.run([script, "stop"], env=env, capture_output=True)
        shutil.rmtree(data, ignore_errors=True)


def test_a_tls_handshake_that_never_completes_is_cut_off(upstream, tmp_path):
    ca = CA(tmp_path / "pki", "lisa-test-ca")
    cert, key, _ = ca.issue("server", "lisa.test")
    lisa = Lisa(upstream, tmp_path / "data", tls_ca=ca.path, extra_config=f"""
server:
  headerReadTimeoutSeconds: 1
  tls:
    certificate: {cert}
    privateKey: {key}
""")
    try:
        silent = [socket.create_connection(("127.0.0.1", lisa.port)) for _ in range(10)]
        trickling = socket.create_connection(("127.0.0.1", lisa.port))
        trickling.sendall(b"\x16\x03\x01")  # the start of a ClientHello, never finished
        for s in silent + [trickling]:
            s.settimeout(30)
            try:
                assert s.recv(1) == b"", "the server closes the connection"
            except ConnectionResetError:
                pass
            except TimeoutError:
                raise AssertionError("a handshake that never completes kept its connection for 30 s")
        # A real client still gets in.
        assert request(lisa, "GET", "/v1/models", verify=ssl.create_default_context(cafile=str(ca.path)))[0] == 200
    finally:
        lisa.stop()
