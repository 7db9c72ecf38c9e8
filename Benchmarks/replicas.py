"""Two LISAServe replicas on one PostgreSQL: how fast a change on one reaches the other,
and how well a rate limit holds when requests alternate between them. Medians and maxima
of one run.

    swift build --product LISAServe && swift build --product lisa-fake-upstream && swift build --product lisactl
    ./scripts/postgres.sh start
    LISA_BIN_DIR="$(swift build --show-bin-path)" .venv/bin/python Benchmarks/replicas.py [--rounds 20]

- model convergence: a model created through replica A (after POST /models returned) until
  replica B lists it in /v1/models;
- revocation: a token B has just used (so it is in B's cache) revoked through A, until B
  refuses it;
- limits: 40 requests alternating between A and B as fast as one client sends them, under
  60/min with bursts of 10: how many got through against what the bucket allows in that
  time (the overshoot).
"""
import argparse
import json
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "Tests" / "python"))
from conftest import ADMIN_KEY, ROOT, Lisa, lisactl, start_fake_upstream  # noqa: E402
from conftest import api as request  # noqa: E402


class Factory:
    def __init__(self, root):
        self.root = root

    def mktemp(self, name):
        path = self.root / name
        path.mkdir(exist_ok=True)
        return path


def status_of(url, key):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"}), timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    tmp = pathlib.Path(tempfile.mkdtemp())
    fake, upstream = start_fake_upstream(Factory(tmp), 5)
    name = "bench_" + uuid.uuid4().hex[:8]
    url = subprocess.run([str(ROOT / "scripts" / "postgres.sh"), "createdb", name], capture_output=True, text=True, check=True).stdout.strip()
    config = "rateLimits:\n  default: {requestsPerMinute: 60, burst: 10}\n"
    a = Lisa(upstream, tmp / "a", extra_env={"LISA_DATABASE_URL": url}, extra_config=config)
    b = Lisa(upstream, tmp / "b", extra_env={"LISA_DATABASE_URL": url}, extra_config=config)
    try:
        convergence = []
        for index in range(args.rounds):
            code, _ = request(a, "POST", "/models", {"modelId": f"m{index}", "modelName": "echo", "modelUrl": upstream})
            assert code == 200
            created = time.perf_counter()
            while f"m{index}" not in [m["id"] for m in status_of(b.url + "/v1/models", ADMIN_KEY)[1]["data"]]:
                time.sleep(0.001)
            convergence.append((time.perf_counter() - created) * 1000)

        revocation = []
        for index in range(max(5, args.rounds // 2)):
            token = json.loads(lisactl(a, "--output", "json", "tokens", "create", "--name", f"t{index}").stdout)
            assert status_of(b.url + "/v1/models", token["token"])[0] == 200
            code, _ = request(a, "DELETE", f"/api-tokens/{token['tokenInfo']['id']}")
            assert code == 200
            revoked = time.perf_counter()
            while status_of(b.url + "/v1/models", token["token"])[0] != 401:
                time.sleep(0.001)
            revocation.append((time.perf_counter() - revoked) * 1000)

        token = json.loads(lisactl(a, "--output", "json", "tokens", "create", "--name", "limited").stdout)["token"]
        allowed = 0
        started = time.perf_counter()
        for index in range(40):
            target = (a, b)[index % 2]
            body = json.dumps({"model": "chat-small", "messages": [{"role": "user", "content": "x"}]}).encode()
            req = urllib.request.Request(target.url + "/v1/chat/completions", data=body, method="POST",
                                         headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
            try:
                urllib.request.urlopen(req, timeout=10).read()
                allowed += 1
            except urllib.error.HTTPError as error:
                assert error.code == 429, error.code
        elapsed = time.perf_counter() - started
        budget = 10 + elapsed * 1.0  # the burst, plus one a second refilled while they ran

        print(f"model visible on the other replica: median {statistics.median(convergence):.1f} ms, "
              f"max {max(convergence):.1f} ms (n={len(convergence)})")
        print(f"revoked token refused by the other replica: median {statistics.median(revocation):.1f} ms, "
              f"max {max(revocation):.1f} ms (n={len(revocation)})")
        print(f"rate limit 60/min burst 10 across two replicas: {allowed} of 40 allowed in {elapsed:.2f} s; "
              f"the bucket allows {int(budget)} (overshoot {max(0, allowed - int(budget))})")
    finally:
        a.stop()
        b.stop()
        fake.stop()


if __name__ == "__main__":
    main()
