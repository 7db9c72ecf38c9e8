"""What translation costs: the same answer through LISAServe as chat completions (pass-through,
the floor), Anthropic Messages and OpenAI Responses (translated), chat completions to an
upstream that speaks Anthropic Messages (translated both ways) and Messages passed through
to it, and straight from the fake upstream in both dialects, in one run. Sequential requests on keep-alive connections; medians and p99 in ms.

Then what one streamed delta costs LISAServe: the same long streamed answer (--deltas words,
one chunk each) through each path, LISAServe's CPU time per delta (all its threads, from
/proc schedstat, less a one-word answer's), median of --rounds rounds, and its ratio to the
plain chat relay's.

    swift build -c release --product LISAServe && swift build -c release --product lisa-fake-upstream
    .venv/bin/python Benchmarks/dialects.py --bin "$(swift build -c release --show-bin-path)" [--requests 2000]
"""
import argparse
import pathlib
import socket
import statistics
import subprocess
import tempfile
import time

import httpx

KEY = "bench-admin-key-0123456789"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(url):
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise TimeoutError(url)


def measure(client, url, body, headers, requests, stream):
    times = []
    for index in range(requests + requests // 10):
        start = time.perf_counter()
        if stream:
            with client.stream("POST", url, json=body, headers=headers) as response:
                assert response.status_code == 200, response.read()
                for _ in response.iter_bytes():
                    pass
        else:
            response = client.post(url, json=body, headers=headers)
            assert response.status_code == 200, response.text
        if index >= requests // 10:  # the first tenth warms up
            times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99) - 1]


def cpu_ns(pid):
    """The CPU time of every thread of `pid` so far, in ns (schedstat: exact, not ticks)."""
    total = 0
    for task in pathlib.Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


def stream_cpu(client, pid, url, body, headers, requests):
    """LISAServe's CPU ns per streamed request of `body`."""
    start = cpu_ns(pid)
    for _ in range(requests):
        with client.stream("POST", url, json={**body, "stream": True}, headers=headers) as response:
            assert response.status_code == 200, response.read()
            for _ in response.iter_bytes():
                pass
    return (cpu_ns(pid) - start) / requests


def per_delta(client, pid, cases, words, requests, rounds):
    """Per case: the median over rounds of (CPU of a `words`-delta stream - CPU of a one-word stream) / words, in ns."""
    long_text = " ".join(f"w{index}" for index in range(words))
    results = {}
    for name, url, body_of, headers in cases:
        stream_cpu(client, pid, url, body_of("w"), headers, requests)  # warm up
        samples = []
        for _ in range(rounds):
            short = stream_cpu(client, pid, url, body_of("w"), headers, requests)
            long = stream_cpu(client, pid, url, body_of(long_text), headers, requests)
            samples.append((long - short) / words)
        results[name] = statistics.median(samples)
    return results


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--deltas", type=int, default=2000, help="words (streamed deltas) of the per-delta answer")
    parser.add_argument("--delta-requests", type=int, default=20, help="streams per round of the per-delta figures")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only-deltas", action="store_true", help="skip the latency table")
    args = parser.parse_args()
    binary = pathlib.Path(args.bin)
    work = pathlib.Path(tempfile.mkdtemp(prefix="lisa-dialects-"))
    upstream_port, lisa_port = free_port(), free_port()
    upstream = subprocess.Popen([binary / "lisa-fake-upstream", "--port", str(upstream_port), "--chunk-delay-ms", "0"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    config = work / "lisa.yaml"
    config.write_text(f"""models:
  - modelId: m
    modelName: m
    modelType: textgen
    modelUrl: http://127.0.0.1:{upstream_port}/v1
  - modelId: claude
    modelName: m
    modelType: textgen
    upstreamAPI: anthropic
    modelUrl: http://127.0.0.1:{upstream_port}/v1
  - modelId: gpt
    modelName: m
    modelType: textgen
    upstreamAPI: openai-responses
    modelUrl: http://127.0.0.1:{upstream_port}/v1
  - modelId: burst
    modelName: burst
    modelType: textgen
    modelUrl: http://127.0.0.1:{upstream_port}/v1
rateLimits: {{enabled: false}}
""")
    lisa = subprocess.Popen([binary / "LISAServe", "--config", str(config), "--port", str(lisa_port), "--data-dir", str(work / "data")],
                            env={"LISA_ADMIN_KEY": KEY, "PATH": "/usr/bin:/bin"}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait(f"http://127.0.0.1:{upstream_port}/health")
        wait(f"http://127.0.0.1:{lisa_port}/health")
        lisa_url = f"http://127.0.0.1:{lisa_port}"
        auth = {"Authorization": f"Bearer {KEY}"}
        text = "hello there, how are you today"
        cases = [
            ("upstream directly (chat)", f"http://127.0.0.1:{upstream_port}/v1/chat/completions",
             {"model": "m", "messages": [{"role": "user", "content": text}]}, {}),
            ("LISA chat completions (pass-through)", lisa_url + "/v1/chat/completions",
             {"model": "m", "messages": [{"role": "user", "content": text}]}, auth),
            ("LISA Anthropic Messages (translated)", lisa_url + "/v1/messages",
             {"model": "m", "max_tokens": 64, "messages": [{"role": "user", "content": text}]}, {"x-api-key": KEY}),
            ("LISA Responses, store: false (translated)", lisa_url + "/v1/responses",
             {"model": "m", "input": text, "store": False}, auth),
            ("LISA Responses, stored (translated + SQLite write)", lisa_url + "/v1/responses", {"model": "m", "input": text}, auth),
            ("upstream directly (Anthropic Messages)", f"http://127.0.0.1:{upstream_port}/v1/messages",
             {"model": "m", "max_tokens": 64, "messages": [{"role": "user", "content": text}]}, {"anthropic-version": "2023-06-01"}),
            ("LISA Messages to Messages (pass-through)", lisa_url + "/v1/messages",
             {"model": "claude", "max_tokens": 64, "messages": [{"role": "user", "content": text}]}, {"x-api-key": KEY}),
            ("LISA chat to Messages upstream (translated)", lisa_url + "/v1/chat/completions",
             {"model": "claude", "messages": [{"role": "user", "content": text}]}, auth),
            ("upstream directly (Responses)", f"http://127.0.0.1:{upstream_port}/v1/responses",
             {"model": "m", "input": text, "store": False}, {}),
            ("LISA Responses to Responses, store: false (pass-through)", lisa_url + "/v1/responses",
             {"model": "gpt", "input": text, "store": False}, auth),
            ("LISA chat to Responses upstream (translated)", lisa_url + "/v1/chat/completions",
             {"model": "gpt", "messages": [{"role": "user", "content": text}]}, auth),
        ]
        print(f"{'':58} {'buffered p50':>12} {'p99':>8} {'streamed p50':>13} {'p99':>8}   (ms, {args.requests} sequential requests)")
        with httpx.Client(timeout=30) as client:
            for name, url, body, headers in ([] if args.only_deltas else cases):
                p50, p99 = measure(client, url, body, headers, args.requests, stream=False)
                s50, s99 = measure(client, url, {**body, "stream": True}, headers, args.requests, stream=True)
                print(f"{name:58} {p50:12.3f} {p99:8.3f} {s50:13.3f} {s99:8.3f}")
            delta_cases = [
                ("chat completions (pass-through relay)", lisa_url + "/v1/chat/completions",
                 lambda t: {"model": "m", "messages": [{"role": "user", "content": t}]}, auth),
                ("Anthropic Messages from chat (translated)", lisa_url + "/v1/messages",
                 lambda t: {"model": "m", "max_tokens": 64, "messages": [{"role": "user", "content": t}]}, {"x-api-key": KEY}),
                ("Responses from chat, store: false (translated)", lisa_url + "/v1/responses",
                 lambda t: {"model": "m", "input": t, "store": False}, auth),
                ("chat, the upstream's chunks in one read (pass-through)", lisa_url + "/v1/chat/completions",
                 lambda t: {"model": "burst", "messages": [{"role": "user", "content": t}]}, auth),
                ("Anthropic Messages, chunks in one read (translated)", lisa_url + "/v1/messages",
                 lambda t: {"model": "burst", "max_tokens": 64, "messages": [{"role": "user", "content": t}]}, {"x-api-key": KEY}),
                ("Responses, chunks in one read (translated)", lisa_url + "/v1/responses",
                 lambda t: {"model": "burst", "input": t, "store": False}, auth),
                ("chat from a Messages upstream (translated)", lisa_url + "/v1/chat/completions",
                 lambda t: {"model": "claude", "messages": [{"role": "user", "content": t}]}, auth),
                ("chat from a Responses upstream (translated)", lisa_url + "/v1/chat/completions",
                 lambda t: {"model": "gpt", "messages": [{"role": "user", "content": t}]}, auth),
            ]
            costs = per_delta(client, lisa.pid, delta_cases, args.deltas, args.delta_requests, args.rounds)
            print(f"\n{'LISAServe CPU per streamed delta':58} {'ns':>12} {'× relay':>8}   ({args.deltas} deltas, "
                  f"{args.delta_requests} streams per round, median of {args.rounds} rounds)")
            for name, cost in costs.items():
                # Each against the pass-through relay of the same arrival: a chunk per read, or all in one.
                floor = costs[delta_cases[3 if "one read" in name else 0][0]]
                print(f"{name:58} {cost:12.0f} {cost / floor:8.2f}")
    finally:
        lisa.terminate()
        upstream.terminate()
        lisa.wait()
        upstream.wait()


if __name__ == "__main__":
    main()
