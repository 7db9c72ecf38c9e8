"""Measures LISAServe, nginx proxy_pass and LiteLLM in front of the same fast mock upstream.

Prints one table; `--write-doc` also writes Documentation/benchmarks.md. See run.sh.
"""
import argparse
import json
import os
import pathlib
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[1]
KEY = "bench-admin-key-0123456789"
LITELLM_KEY = "sk-bench-master-key"
CHAT = {"model": "mock", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 16}
COMPLETION = json.dumps({
    "id": "chatcmpl-mock", "object": "chat.completion", "created": 1700000000, "model": "mock",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello! How can I help you today?"},
                 "finish_reason": "stop", "logprobs": None}],
    "usage": {"prompt_tokens": 9, "completion_tokens": 9, "total_tokens": 18}})
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, timeout=60, headers=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            request = urllib.request.Request(url, headers=headers or {})
            with urllib.request.urlopen(request, timeout=2) as response:
                if response.status < 500:
                    return
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(0.2)
    raise TimeoutError(url)


def tree(pid):
    """pid and all its descendants."""
    children = {}
    for entry in pathlib.Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                children.setdefault(int(fields[1]), []).append(int(entry.name))
            except OSError:
                pass
    result, stack = [], [pid]
    while stack:
        current = stack.pop()
        result.append(current)
        stack.extend(children.get(current, []))
    return result


def cpu_seconds(pid):
    total = 0
    for p in tree(pid):
        try:
            fields = pathlib.Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total / CLK_TCK


def memory_mb(pid, field):
    total = 0
    for p in tree(pid):
        try:
            for line in pathlib.Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith(field + ":"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def wrk(url, lua, duration, connections=64):
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", lua, url],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)

    def pct(p):
        match = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value
    return {"rps": rps, "requests": requests, "p50": pct(50), "p99": pct(99),
            "errors": int(errors.group(1)) if errors else 0, "socket_errors": socket_errors.group(1) if socket_errors else ""}


def hey(url, headers, rate, duration, concurrency=10):
    body = pathlib.Path(tempfile.mkstemp(suffix=".json")[1])
    body.write_text(json.dumps(CHAT))
    args = ["hey", "-z", f"{duration}s", "-c", str(concurrency), "-q", str(rate / concurrency), "-m", "POST",
            "-T", "application/json", "-D", str(body)]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    out = subprocess.run(args + [url], capture_output=True, text=True, check=True).stdout

    def pct(p):
        return float(re.search(rf"{p}%+ in ([\d.]+) secs", out).group(1)) * 1000
    return {"p50": pct(50), "p99": pct(99), "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}


def lua_script(directory, name, headers):
    path = directory / f"{name}.lua"
    lines = ['wrk.method = "POST"', f"wrk.body = '{json.dumps(CHAT)}'", 'wrk.headers["Content-Type"] = "application/json"']
    lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def stream_timings(url, headers, model, runs=30, words=199):
    """Median time to first chunk and median gap between chunks of streams of words+1 chunks."""
    import httpx
    prompt = " ".join(f"w{i}" for i in range(words))
    body = {"model": model, "stream": True, "messages": [{"role": "user", "content": prompt}]}
    firsts, gaps = [], []
    with httpx.Client(timeout=60) as client:
        for _ in range(runs + 3):
            start = time.perf_counter()
            stamps = []
            with client.stream("POST", url, json=body, headers=headers) as response:
                assert response.status_code == 200, response.read()
                buffer = b""
                for chunk in response.iter_raw():
                    now = time.perf_counter()
                    buffer += chunk
                    events = buffer.count(b"\n\n")
                    stamps += [now] * (events - len(stamps))
            assert buffer.rstrip().endswith(b"data: [DONE]"), buffer[-200:]
            firsts.append((stamps[0] - start) * 1000)
            gaps.append((stamps[-1] - stamps[0]) * 1000 / max(len(stamps) - 1, 1))
    return {"ttfc": statistics.median(firsts[3:]), "gap": statistics.median(gaps[3:]), "chunks": len(stamps)}


class Stack:
    def __init__(self, bin_dir, work, skip_litellm, usage_variants=False, tracing_variant=False, client_variants=False):
        self.procs = []
        self.work = work
        self.ports = {name: free_port() for name in ["mock", "nginx", "lisa", "litellm", "fake", "nginx_stream", "lisa_nousage",
                                                     "lisa_budget", "lisa_tracing", "lisa_ahc", "lisa_pool"]}
        p = self.ports
        (work / "mock.conf").write_text(f"""
worker_processes auto; pid {work}/mock.pid; error_log {work}/mock.err; daemon off;
events {{ worker_connections 4096; }}
http {{ access_log off;
  server {{ listen 127.0.0.1:{p['mock']} reuseport backlog=4096; keepalive_requests 1000000;
    location /health {{ return 200 'OK'; }}
    location / {{ default_type application/json; return 200 '{COMPLETION}'; }} }} }}
""")
        (work / "proxy.conf").write_text(f"""
worker_processes auto; pid {work}/proxy.pid; error_log {work}/proxy.err; daemon off;
events {{ worker_connections 4096; }}
http {{ access_log off;
  upstream mock {{ server 127.0.0.1:{p['mock']}; keepalive 128; }}
  upstream fake {{ server 127.0.0.1:{p['fake']}; keepalive 32; }}
  server {{ listen 127.0.0.1:{p['nginx']} backlog=4096; keepalive_requests 1000000;
    location / {{ proxy_pass http://mock; proxy_http_version 1.1; proxy_set_header Connection ""; }} }}
  server {{ listen 127.0.0.1:{p['nginx_stream']};
    location / {{ proxy_pass http://fake; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffering off; }} }} }}
""")
        self.start("mock", ["nginx", "-c", str(work / "mock.conf"), "-p", str(work)])
        wait_http(f"http://127.0.0.1:{p['mock']}/health")
        self.start("fake", [f"{bin_dir}/lisa-fake-upstream", "--port", str(p["fake"]), "--chunk-delay-ms", "0"])
        wait_http(f"http://127.0.0.1:{p['fake']}/health")
        self.start("nginx", ["nginx", "-c", str(work / "proxy.conf"), "-p", str(work)])
        wait_http(f"http://127.0.0.1:{p['nginx']}/health")
        (work / "lisa.yaml").write_text(f"""
logLevel: warning
models:
  - {{modelId: mock, modelName: mock, modelUrl: "http://127.0.0.1:{p['mock']}/v1"}}
  - {{modelId: stream, modelName: stream, modelUrl: "http://127.0.0.1:{p['fake']}/v1"}}
""")
        env = dict(os.environ, LISA_ADMIN_KEY=KEY)
        self.start("lisa", [f"{bin_dir}/LISAServe", "--config", str(work / "lisa.yaml"), "--port", str(p["lisa"]),
                            "--data-dir", str(work / "lisa-data")], env=env)
        wait_http(f"http://127.0.0.1:{p['lisa']}/health")
        time.sleep(1)
        self.lisa_idle_rss = memory_mb(self.pid("lisa"), "VmRSS")
        self.user_token = None
        if usage_variants:
            # The same server without usage records, and one called with a user's token
            # under a budget (a reservation and a settlement in the state store per call).
            models = (work / "lisa.yaml").read_text()
            (work / "lisa-nousage.yaml").write_text(models + "usage: {enabled: false}\n")
            (work / "lisa-budget.yaml").write_text(models + "rateLimits: {enabled: false}\n"
                                                   "budgets: {user: {period: day, tokens: 1000000000000}}\n")
            for name, config in [("lisa_nousage", "lisa-nousage.yaml"), ("lisa_budget", "lisa-budget.yaml")]:
                self.start(name, [f"{bin_dir}/LISAServe", "--config", str(work / config), "--port", str(p[name]),
                                  "--data-dir", str(work / f"{name}-data")], env=env)
                wait_http(f"http://127.0.0.1:{p[name]}/health")
            request = urllib.request.Request(
                f"http://127.0.0.1:{p['lisa_budget']}/api-tokens/bench", data=json.dumps({"name": "bench"}).encode(), method="POST",
                headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=10) as response:
                self.user_token = json.loads(response.read())["token"]
        self.tracing = False
        if tracing_variant:
            # Every call traced and exported; the mock nginx, which answers any POST with
            # 200, stands in for the collector.
            models = (work / "lisa.yaml").read_text()
            (work / "lisa-tracing.yaml").write_text(models + f"tracing: {{endpoint: 'http://127.0.0.1:{p['mock']}', sampleRatio: 1}}\n")
            self.start("lisa_tracing", [f"{bin_dir}/LISAServe", "--config", str(work / "lisa-tracing.yaml"), "--port",
                                        str(p["lisa_tracing"]), "--data-dir", str(work / "lisa_tracing-data")], env=env)
            wait_http(f"http://127.0.0.1:{p['lisa_tracing']}/health")
            self.tracing = True
        self.client_variants = False
        if client_variants:
            # The same server on the AsyncHTTPClient path it had before the lean client, and
            # with the lean client but connection tasks on the concurrency pool.
            models = (work / "lisa.yaml").read_text()
            (work / "lisa-ahc.yaml").write_text(models + "upstream: {client: asyncHTTPClient}\nserver: {runOnEventLoops: false}\n")
            (work / "lisa-pool.yaml").write_text(models + "server: {runOnEventLoops: false}\n")
            for name, config in [("lisa_ahc", "lisa-ahc.yaml"), ("lisa_pool", "lisa-pool.yaml")]:
                self.start(name, [f"{bin_dir}/LISAServe", "--config", str(work / config), "--port", str(p[name]),
                                  "--data-dir", str(work / f"{name}-data")], env=env)
                wait_http(f"http://127.0.0.1:{p[name]}/health")
            self.client_variants = True
        self.litellm = None
        litellm = ROOT / ".bench/litellm/bin/litellm"
        if not skip_litellm and litellm.exists():
            (work / "litellm.yaml").write_text(f"""
model_list:
  - model_name: mock
    litellm_params: {{model: openai/mock, api_base: "http://127.0.0.1:{p['mock']}/v1", api_key: x}}
general_settings: {{master_key: {LITELLM_KEY}}}
litellm_settings: {{telemetry: false}}
""")
            env = dict(os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_LOG="ERROR")
            self.start("litellm", [str(litellm), "--config", str(work / "litellm.yaml"), "--host", "127.0.0.1",
                                   "--port", str(p["litellm"]), "--num_workers", "2"], env=env)
            wait_http(f"http://127.0.0.1:{p['litellm']}/health/liveliness", timeout=120)
            self.litellm = subprocess.run([str(ROOT / ".bench/litellm/bin/python"), "-c",
                                           "import importlib.metadata as m; print(m.version('litellm'))"],
                                          capture_output=True, text=True).stdout.strip()

    def start(self, name, args, env=None):
        log = open(self.work / f"{name}.log", "w")
        self.procs.append((name, subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)))

    def pid(self, name):
        return next(p.pid for n, p in self.procs if n == name)

    def stop(self):
        for _, proc in reversed(self.procs):
            proc.send_signal(signal.SIGTERM)
        for _, proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


def version(args):
    try:
        out = subprocess.run(args, capture_output=True, text=True)
        return (out.stdout + out.stderr).strip().splitlines()[0]
    except (OSError, IndexError):
        return "?"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--memory", action="store_true", help="also run 1M requests through LISAServe for RSS growth")
    parser.add_argument("--write-doc", action="store_true")
    parser.add_argument("--skip-litellm", action="store_true")
    parser.add_argument("--usage-variants", action="store_true",
                        help="also measure LISAServe without usage records, and with a user's token under a budget")
    parser.add_argument("--tracing-variant", action="store_true",
                        help="also measure LISAServe with every call traced and exported over OTLP")
    parser.add_argument("--client-variants", action="store_true",
                        help="also measure LISAServe on AsyncHTTPClient, and with connection tasks off the event loops")
    args = parser.parse_args()

    work = pathlib.Path(tempfile.mkdtemp(prefix="lisa-bench-"))
    stack = Stack(args.bin, work, args.skip_litellm, args.usage_variants, args.tracing_variant, args.client_variants)
    p = stack.ports
    targets = [("direct (mock)", f"http://127.0.0.1:{p['mock']}/v1/chat/completions", {}, "mock"),
               ("nginx proxy_pass", f"http://127.0.0.1:{p['nginx']}/v1/chat/completions", {}, "nginx"),
               ("LISAServe", f"http://127.0.0.1:{p['lisa']}/v1/chat/completions", {"Authorization": f"Bearer {KEY}"}, "lisa")]
    if stack.user_token:
        targets += [("LISAServe, usage records off", f"http://127.0.0.1:{p['lisa_nousage']}/v1/chat/completions",
                     {"Authorization": f"Bearer {KEY}"}, "lisa_nousage"),
                    ("LISAServe, user token with a budget", f"http://127.0.0.1:{p['lisa_budget']}/v1/chat/completions",
                     {"Authorization": f"Bearer {stack.user_token}"}, "lisa_budget")]
    if stack.tracing:
        targets.append(("LISAServe, tracing on (every call)", f"http://127.0.0.1:{p['lisa_tracing']}/v1/chat/completions",
                        {"Authorization": f"Bearer {KEY}"}, "lisa_tracing"))
    if stack.client_variants:
        targets += [("LISAServe, AsyncHTTPClient, concurrency pool", f"http://127.0.0.1:{p['lisa_ahc']}/v1/chat/completions",
                     {"Authorization": f"Bearer {KEY}"}, "lisa_ahc"),
                    ("LISAServe, lean client, concurrency pool", f"http://127.0.0.1:{p['lisa_pool']}/v1/chat/completions",
                     {"Authorization": f"Bearer {KEY}"}, "lisa_pool")]
    if stack.litellm:
        targets.append(("LiteLLM " + stack.litellm, f"http://127.0.0.1:{p['litellm']}/v1/chat/completions",
                        {"Authorization": f"Bearer {LITELLM_KEY}"}, "litellm"))
    results = {}
    try:
        for name, url, headers, proc in targets:
            lua = lua_script(work, proc, headers)
            wrk(url, lua, 2)  # warm-up
            pid = stack.pid(proc)
            cpu_before = cpu_seconds(pid)
            load = wrk(url, lua, args.duration)
            cpu = cpu_seconds(pid) - cpu_before
            fixed = hey(url, headers, args.rate, args.duration)
            # One connection paced by one ticker: requests evenly spaced, no bursts.
            paced = hey(url, headers, args.rate, args.duration, concurrency=1)
            results[name] = dict(load, cpu_per_1k=cpu / load["requests"] * 1000 if proc != "mock" else None,
                                 rss=memory_mb(pid, "VmHWM"), fixed=fixed, paced=paced, proc=proc)
            print(f"{name}: {load['rps']:.0f} req/s, p50 {load['p50']:.2f} ms, p99 {load['p99']:.2f} ms; "
                  f"at {args.rate}/s p50 {fixed['p50']:.2f} ms p99 {fixed['p99']:.2f} ms", file=sys.stderr)
        stream = {}
        for name, url, headers in [
            ("direct (fake)", f"http://127.0.0.1:{p['fake']}/v1/chat/completions", {}),
            ("nginx proxy_pass", f"http://127.0.0.1:{p['nginx_stream']}/v1/chat/completions", {}),
            ("LISAServe", f"http://127.0.0.1:{p['lisa']}/v1/chat/completions", {"Authorization": f"Bearer {KEY}"}),
        ]:
            stream[name] = stream_timings(url, headers, "stream")
        memory = None
        if args.memory:
            lisa_url = f"http://127.0.0.1:{p['lisa']}/v1/chat/completions"
            lua = lua_script(work, "lisa", {"Authorization": f"Bearer {KEY}"})
            served = 0
            marks = {}
            while served < 1_000_000:
                served += wrk(lisa_url, lua, 10)["requests"]
                if served >= 100_000 and "100k" not in marks:
                    marks["100k"] = (served, memory_mb(stack.pid("lisa"), "VmRSS"))
            marks["1M"] = (served, memory_mb(stack.pid("lisa"), "VmRSS"))
            memory = marks
    finally:
        stack.stop()

    direct = results["direct (mock)"]
    nginx = results["nginx proxy_pass"]
    lisa = results["LiteLLM " + stack.litellm] if False else results["LISAServe"]
    lines = ["| target | req/s (64 conn) | p50 ms | p99 ms | added p50 / p99 at %d req/s, paced (ms) | same, bursts of 10 (ms) "
             "| CPU s per 1k req | peak RSS MB |" % args.rate,
             "|---|---|---|---|---|---|---|---|"]

    def added_latency(r, kind):
        if r is direct:
            return "—"
        return f"{r[kind]['p50'] - direct[kind]['p50']:+.2f} / {r[kind]['p99'] - direct[kind]['p99']:+.2f}"
    for name, r in results.items():
        added = added_latency(r, "paced") + " | " + added_latency(r, "fixed")
        cpu = "—" if r["cpu_per_1k"] is None else f"{r['cpu_per_1k']:.3f}"
        errors = f" ({r['errors']} non-2xx)" if r["errors"] else ""
        lines.append(f"| {name} | {r['rps']:.0f}{errors} | {r['p50']:.2f} | {r['p99']:.2f} | {added} | {cpu} | {r['rss']:.0f} |")
    lines += ["", "| streaming, 200 chunks | time to first chunk p50 ms | added | inter-chunk gap p50 ms | added |", "|---|---|---|---|---|"]
    base = stream["direct (fake)"]
    for name, s in stream.items():
        lines.append(f"| {name} | {s['ttfc']:.3f} | {s['ttfc'] - base['ttfc']:+.3f} | {s['gap']:.4f} | {s['gap'] - base['gap']:+.4f} |")
    ratios = [f"- LISAServe throughput = {lisa['rps'] / nginx['rps']:.2f} × nginx"]
    if stack.litellm:
        peer = results["LiteLLM " + stack.litellm]
        ratios.append(f"- LISAServe throughput = {lisa['rps'] / peer['rps']:.1f} × LiteLLM")
    ratios.append(f"- LISAServe CPU per request = {lisa['cpu_per_1k'] / nginx['cpu_per_1k']:.2f} × nginx")
    if stack.user_token:
        off = results["LISAServe, usage records off"]
        budget = results["LISAServe, user token with a budget"]
        ratios.append(f"- usage records: {lisa['rps']:.0f} req/s with, {off['rps']:.0f} without ({(lisa['rps'] / off['rps'] - 1) * 100:+.1f} %)")
        ratios.append(f"- a user's token under a budget: {budget['rps']:.0f} req/s ({(budget['rps'] / lisa['rps'] - 1) * 100:+.1f} % against the admin key)")
    ratios.append(f"- LISAServe idle RSS: {stack.lisa_idle_rss:.1f} MB")
    if memory:
        (n1, r1), (n2, r2) = memory["100k"], memory["1M"]
        ratios.append(f"- LISAServe RSS after {n1:,} requests: {r1:.1f} MB; after {n2:,}: {r2:.1f} MB ({(r2 / r1 - 1) * 100:+.1f} %)")
    table = "\n".join(lines + [""] + ratios)
    print(table)

    if args.write_doc:
        cpu = next((l.split(":", 1)[1].strip() for l in pathlib.Path("/proc/cpuinfo").read_text().splitlines()
                    if l.startswith("model name")), platform.processor())
        doc = f"""# Benchmarks

Produced by `Benchmarks/run.sh{' --memory' if args.memory else ''} --write-doc` on {time.strftime('%Y-%m-%d')}.
Machine: {os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}. The load generator,
the mock upstream and the proxy under test share these cores, so figures are for comparison
within one run, not absolute capacity. Quote ratios; rerun to see the noise.

Versions: {version(['swift', '--version'])}; {version(['nginx', '-v'])}; {version(['wrk', '-v'])};
LiteLLM {stack.litellm or 'not run'}.

Setup: the mock upstream is nginx answering a fixed chat completion (so it is not the
bottleneck); each proxy forwards `POST /v1/chat/completions` to it. Throughput and latency:
`wrk -t1 -c64 -d{args.duration}s`. Added latency: `hey` at a fixed {args.rate} req/s, the proxy's
p50/p99 minus the mock's own, twice: paced (one connection, one request every
{1000 / args.rate:g} ms) and in bursts (10 connections; hey paces each connection separately and
their ticks line up, so requests arrive 10 at a time). CPU: user+system seconds of the
proxy's processes during the wrk run, per 1,000 requests. Streaming: `lisa-fake-upstream`
sends 200 chunks with no delay; a Python client times 30 streams.

{table}
"""
        target = ROOT / "Documentation/benchmarks.md"
        marker = "<!-- notes: kept by --write-doc -->"
        if target.exists() and marker in target.read_text():
            doc += "\n" + marker + target.read_text().split(marker, 1)[1]
        target.write_text(doc)
        print("wrote Documentation/benchmarks.md", file=sys.stderr)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
