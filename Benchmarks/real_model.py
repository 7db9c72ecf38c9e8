"""What LISA adds in front of a real model server: time to first token and tokens per second,
straight to the server and through LISAServe, side by side in one run. Sequential streamed
chat requests; medians (and p90) of each.

    swift build -c release --product LISAServe && swift build -c release --product lisa-fake-upstream
    .venv/bin/python Benchmarks/real_model.py --bin "$(swift build -c release --show-bin-path)" \\
        [--upstream http://127.0.0.1:8080/v1 --model qwen2.5-0.5b] [--requests 30] [--max-tokens 64]

Without --upstream it measures the fake upstream (20 ms between chunks), which checks the
script and gives LISA's added time over a server with no compute; with a real vLLM,
llama.cpp, TGI or Ollama it gives the figure users see. An API key for the server can be
passed in UPSTREAM_API_KEY.
"""
import argparse
import os
import pathlib
import socket
import statistics
import subprocess
import tempfile
import time

import httpx

KEY = "bench-admin-key-0123456789"
PROMPT = "Write a short paragraph about lighthouses."


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


def stream_once(client, url, model, headers, max_tokens):
    """(time to first content chunk, content chunks per second after it) of one streamed answer."""
    body = {"model": model, "stream": True, "max_tokens": max_tokens, "temperature": 0,
            "messages": [{"role": "user", "content": PROMPT}]}
    start = time.perf_counter()
    first, chunks = None, 0
    with client.stream("POST", url, json=body, headers=headers) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if line.startswith("data: {") and '"content"' in line:
                chunks += 1
                if first is None:
                    first = time.perf_counter()
    end = time.perf_counter()
    assert first is not None, "the answer had no content"
    rate = (chunks - 1) / (end - first) if chunks > 1 and end > first else float("nan")
    return (first - start) * 1000, rate


def summarize(samples):
    ttft = sorted(sample[0] for sample in samples)
    rates = sorted(sample[1] for sample in samples)
    return statistics.median(ttft), ttft[int(len(ttft) * 0.9) - 1], statistics.median(rates)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True)
    parser.add_argument("--upstream", help="an OpenAI-compatible base URL, such as http://127.0.0.1:8080/v1")
    parser.add_argument("--model", default="echo", help="the model name the upstream serves")
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()
    binary = pathlib.Path(args.bin)
    work = pathlib.Path(tempfile.mkdtemp(prefix="lisa-real-"))
    processes = []
    try:
        upstream = args.upstream
        if not upstream:
            port = free_port()
            processes.append(subprocess.Popen([binary / "lisa-fake-upstream", "--port", str(port), "--chunk-delay-ms", "20"],
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            upstream = f"http://127.0.0.1:{port}/v1"
            wait(f"http://127.0.0.1:{port}/health")
        api_key = os.environ.get("UPSTREAM_API_KEY")
        lisa_port = free_port()
        key_line = f"\n        apiKey: {api_key}" if api_key else ""
        (work / "lisa.yaml").write_text(f"""models:
  - modelId: real
    modelName: {args.model}
    modelType: textgen
    endpoints:
      - url: {upstream}{key_line}
rateLimits: {{enabled: false}}
""")
        processes.append(subprocess.Popen(
            [binary / "LISAServe", "--config", str(work / "lisa.yaml"), "--port", str(lisa_port), "--data-dir", str(work / "data")],
            env={"LISA_ADMIN_KEY": KEY, "PATH": "/usr/bin:/bin"}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait(f"http://127.0.0.1:{lisa_port}/health")
        direct_headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        paths = [("upstream directly", upstream + "/chat/completions", args.model, direct_headers),
                 ("through LISA", f"http://127.0.0.1:{lisa_port}/v1/chat/completions", "real", {"Authorization": f"Bearer {KEY}"})]
        results = {name: [] for name, *_ in paths}
        with httpx.Client(timeout=120) as client:
            for name, url, model, headers in paths:  # warm both paths (connections, caches)
                for _ in range(3):
                    stream_once(client, url, model, headers, args.max_tokens)
            for _ in range(args.requests):  # interleaved, so drift in the server hits both alike
                for name, url, model, headers in paths:
                    results[name].append(stream_once(client, url, model, headers, args.max_tokens))
        print(f"upstream {upstream} model {args.model}: {args.requests} streamed requests each, max_tokens {args.max_tokens}")
        print(f"{'':22} {'TTFT p50 ms':>12} {'p90':>8} {'chunks/s p50':>13}")
        summary = {name: summarize(samples) for name, samples in results.items()}
        for name, (p50, p90, rate) in summary.items():
            print(f"{name:22} {p50:12.2f} {p90:8.2f} {rate:13.1f}")
        (d50, d90, drate), (l50, l90, lrate) = summary["upstream directly"], summary["through LISA"]
        print(f"{'LISA adds':22} {l50 - d50:+12.2f} {l90 - d90:+8.2f} {lrate - drate:+13.1f}")
    finally:
        for process in processes:
            process.terminate()
            process.wait()


if __name__ == "__main__":
    main()
