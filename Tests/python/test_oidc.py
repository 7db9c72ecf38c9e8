"""OIDC sign-in: tokens minted by an independent implementation (joserfc) with real RSA and EC
keys, verified by LISAServe against a JWKS served by a local HTTP server."""
import base64
import hashlib
import hmac
import json
import os
import threading
import urllib.parse
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import openai
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from conftest import Lisa, free_port

CLIENT_ID = "lisa"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class IdP:
    """A minimal OIDC issuer: discovery document, a JWKS that can be changed at run time, and
    the authorization-code flow with PKCE (S256) for browser sign-in: `/auth` approves at once
    as `login_claims` and redirects back with a code; `/token` exchanges the code only with the
    verifier whose SHA-256 is the challenge, for the same client and redirect URI, once, and
    renews with the refresh token it gave. ID tokens live `lifetime` seconds."""

    def __init__(self):
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}/realms/lisa"
        self.rsa = RSAKey.generate_key(2048, parameters={"kid": "rsa-1", "alg": "RS256", "use": "sig"})
        self.ec = ECKey.generate_key("P-256", parameters={"kid": "ec-1", "alg": "ES256", "use": "sig"})
        self.published = [self.rsa, self.ec]
        self.jwks_fetches = 0
        self.login_claims = {}
        self.lifetime = 300
        self.codes = {}
        self.exchanges = []
        self.refresh_tokens = {}
        self.refreshes = []
        idp = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def send_json(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Access-Control-Allow-Origin", "*")
                self.end_headers()
                self.wfile.write(data)

            def do_OPTIONS(self):
                self.send_response(204)
                self.send_header("Access-Control-Allow-Origin", "*")
                self.send_header("Access-Control-Allow-Methods", "POST")
                self.send_header("Access-Control-Allow-Headers", "Content-Type, Accept")
                self.end_headers()

            def do_POST(self):
                if self.path != "/realms/lisa/token":
                    return self.send_json(404, {"error": "not_found"})
                form = dict(urllib.parse.parse_qsl(self.rfile.read(int(self.headers["Content-Length"])).decode()))
                if form.get("grant_type") == "refresh_token":
                    claims = idp.refresh_tokens.get(form.get("refresh_token"))
                    if claims is None or form.get("client_id") != CLIENT_ID:
                        return self.send_json(400, {"error": "invalid_grant"})
                    idp.refreshes.append(form)
                    token = idp.token(exp=int(time.time()) + idp.lifetime, **claims)
                    return self.send_json(200, {"id_token": token, "access_token": token, "token_type": "Bearer",
                                                "expires_in": idp.lifetime})
                grant = idp.codes.pop(form.get("code"), None)
                challenge = b64(hashlib.sha256(form.get("code_verifier", "").encode()).digest())
                if (grant is None or form.get("grant_type") != "authorization_code" or form.get("client_id") != grant["client_id"]
                        or form.get("redirect_uri") != grant["redirect_uri"] or challenge != grant["challenge"]):
                    return self.send_json(400, {"error": "invalid_grant"})
                idp.exchanges.append(form)
                token = idp.token(nonce=grant["nonce"], exp=int(time.time()) + idp.lifetime, **idp.login_claims)
                refresh = b64(os.urandom(24))
                idp.refresh_tokens[refresh] = dict(idp.login_claims)
                self.send_json(200, {"id_token": token, "access_token": token, "token_type": "Bearer",
                                     "expires_in": idp.lifetime, "refresh_token": refresh})

            def do_GET(self):
                url = urllib.parse.urlparse(self.path)
                if url.path == "/realms/lisa/auth":
                    query = dict(urllib.parse.parse_qsl(url.query))
                    if query.get("response_type") != "code" or query.get("code_challenge_method") != "S256" or query.get("client_id") != CLIENT_ID:
                        return self.send_json(400, {"error": "invalid_request"})
                    code = b64(os.urandom(16))
                    idp.codes[code] = {"challenge": query["code_challenge"], "nonce": query.get("nonce"),
                                       "redirect_uri": query["redirect_uri"], "client_id": query["client_id"]}
                    location = query["redirect_uri"] + "?" + urllib.parse.urlencode({"code": code, "state": query.get("state", "")})
                    self.send_response(302)
                    self.send_header("Location", location)
                    self.end_headers()
                    return
                if self.path == "/realms/lisa/.well-known/openid-configuration":
                    body = {"issuer": idp.issuer, "jwks_uri": idp.issuer + "/certs", "authorization_endpoint": idp.issuer + "/auth",
                            "token_endpoint": idp.issuer + "/token"}
                elif self.path == "/realms/lisa/certs":
                    idp.jwks_fetches += 1
                    body = {"keys": [key.as_dict(private=False) for key in idp.published]}
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def claims(self, **overrides):
        now = int(time.time())
        claims = {"iss": self.issuer, "aud": CLIENT_ID, "sub": "u-123", "preferred_username": "alice",
                  "exp": now + 300, "iat": now, "nbf": now - 5, "realm_access": {"roles": ["team-a", "lisa-users"]}}
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def token(self, key=None, **overrides):
        key = key or self.rsa
        alg = key.as_dict()["alg"]
        return jwt.encode({"alg": alg, "kid": key.kid}, self.claims(**overrides), key)


@pytest.fixture
def idp():
    provider = IdP()
    yield provider
    provider.server.shutdown()


@pytest.fixture
def oidc_lisa(upstream, tmp_path, idp):
    server = Lisa(upstream, tmp_path / "data", extra_config=f"""
  - modelId: team-b-model
    modelName: team-b
    modelUrl: {upstream}
    allowedGroups: [team-b]
auth:
  authority: {idp.issuer}
  clientId: {CLIENT_ID}
  jwtGroupsProperty: realm_access.roles
  userGroup: lisa-users
  adminGroup: lisa-admins
  jwksMinimumRefetchSeconds: 1
""")
    yield server
    server.stop()


def client(lisa, token):
    return openai.OpenAI(base_url=lisa.url + "/v1", api_key=token, max_retries=0)


def test_valid_rsa_and_ec_tokens_pass_with_their_groups(oidc_lisa, idp):
    for key in (idp.rsa, idp.ec):
        models = [m.id for m in client(oidc_lisa, idp.token(key)).models.list()]
        assert models == ["chat-small", "embedder"], "team-b-model is hidden from team-a"
    answer = client(oidc_lisa, idp.token()).chat.completions.create(
        model="chat-small", messages=[{"role": "user", "content": "signed in"}])
    assert answer.choices[0].message.content == "echo: signed in"
    with pytest.raises(openai.NotFoundError):
        client(oidc_lisa, idp.token()).chat.completions.create(model="team-b-model", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.PermissionDeniedError):
        client(oidc_lisa, idp.token(realm_access={"roles": ["team-a"]})).chat.completions.create(
            model="chat-small", messages=[{"role": "user", "content": "x"}])
    admin = idp.token(realm_access={"roles": ["lisa-admins"]})
    assert "team-b-model" in [m.id for m in client(oidc_lisa, admin).models.list()]


def forged_tokens(idp):
    now = int(time.time())
    valid = idp.token()
    header, payload, signature = valid.split(".")
    tampered_claims = idp.claims(realm_access={"roles": ["lisa-admins"]})
    tampered = ".".join([header, b64(json.dumps(tampered_claims).encode()), signature])
    bad_signature = ".".join([header, payload, signature[:-4] + ("AAAA" if not signature.endswith("AAAA") else "BBBB")])
    none = ".".join([b64(json.dumps({"alg": "none", "kid": "rsa-1"}).encode()), payload, ""])
    public_pem = idp.rsa.as_pem(private=False)
    hs_header = b64(json.dumps({"alg": "HS256", "kid": "rsa-1", "typ": "JWT"}).encode())
    hs_input = f"{hs_header}.{payload}".encode()
    hs256 = f"{hs_header}.{payload}.{b64(hmac.new(public_pem, hs_input, hashlib.sha256).digest())}"
    stranger = RSAKey.generate_key(2048, parameters={"kid": "unknown-kid", "alg": "RS256"})
    return {
        "expired": idp.token(exp=now - 3600, iat=now - 7200, nbf=now - 7200),
        "not yet valid": idp.token(nbf=now + 3600),
        "issued in the future": idp.token(iat=now + 3600),
        "wrong issuer": idp.token(iss="https://evil.example.com/realms/lisa"),
        "wrong audience": idp.token(aud="another-client"),
        "unknown kid": jwt.encode({"alg": "RS256", "kid": "unknown-kid"}, idp.claims(), stranger),
        "tampered payload": tampered,
        "bad signature": bad_signature,
        "alg none": none,
        "HS256 with the RSA public key": hs256,
        "missing exp": idp.token(exp=None),
        "missing issuer": idp.token(iss=None),
    }


def test_forged_and_invalid_tokens_are_rejected_with_401(oidc_lisa, idp):
    for name, token in forged_tokens(idp).items():
        with pytest.raises(openai.AuthenticationError) as caught:
            client(oidc_lisa, token).models.list()
        assert caught.value.status_code == 401, name
        assert token not in str(caught.value.body), f"{name}: the token is not echoed"
    log = oidc_lisa.proc.output()
    assert "authentication failed" in log
    assert idp.token().split(".")[2] not in log, "tokens never reach the log"


def test_key_rotation_at_the_idp_is_picked_up_without_restart(oidc_lisa, idp):
    assert [m.id for m in client(oidc_lisa, idp.token()).models.list()]
    rotated = RSAKey.generate_key(2048, parameters={"kid": "rsa-2", "alg": "RS256", "use": "sig"})
    idp.published = [rotated, idp.ec]
    token = jwt.encode({"alg": "RS256", "kid": "rsa-2"}, idp.claims(), rotated)
    time.sleep(1.1)  # the least time between refetches triggered by unknown key ids (30 s by default)
    assert [m.id for m in client(oidc_lisa, token).models.list()] == ["chat-small", "embedder"]
    fetches = idp.jwks_fetches
    started = time.monotonic()
    for _ in range(20):  # a flood of unknown kids does not hammer the IdP
        with pytest.raises(openai.AuthenticationError):
            client(oidc_lisa, forged_tokens(idp)["unknown kid"]).models.list()
    elapsed = time.monotonic() - started
    # At most one refetch per refetch floor (1 s here), however long a busy machine takes
    # for the flood: 20 requests must not mean 20 fetches.
    assert idp.jwks_fetches - fetches <= 1 + int(elapsed / 1.0), (idp.jwks_fetches - fetches, elapsed)
