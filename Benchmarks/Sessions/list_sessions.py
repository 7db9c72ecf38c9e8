"""How long LISA Chat's sidebar takes to load: GET /session (every session's summary) for a
user with many long sessions, against the floor of reading one whole session, in one run.

    python3 Benchmarks/Sessions/list_sessions.py [--sessions 300] [--messages 40] [--bin DIR]

Starts its own LISAServe (SQLite in a temporary folder) from --bin (default .build/release,
else .build/debug) and prints medians of 20 calls each.
"""
import argparse
import concurrent.futures
import json
import os
import pathlib
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[2]
KEY = "bench-admin-key-0123456789"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=300)
    parser.add_argument("--messages", type=int, default=40)
    parser.add_argument("--bin", default=None)
    args = parser.parse_args()
    binary = pathlib.Path(args.bin) if args.bin else next(
        (ROOT / ".build" / c for c in ("release", "debug") if (ROOT / ".build" / c / "LISAServe").exists()), ROOT / ".build" / "debug")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as data:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LISA_")} | {"LISA_ADMIN_KEY": KEY}
        server = subprocess.Popen([str(binary / "LISAServe"), "--port", str(port), "--data-dir", data], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(200):
                try:
                    urllib.request.urlopen(url + "/health", timeout=1)
                    break
                except OSError:
                    time.sleep(0.05)

            def call(method, path, body=None):
                request = urllib.request.Request(url + path, method=method, data=json.dumps(body).encode() if body is not None else None,
                                                 headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
                with urllib.request.urlopen(request, timeout=60) as response:
                    return response.read()

            history = [{"type": "human" if i % 2 == 0 else "ai", "content": "word " * 400, "metadata": {}} for i in range(args.messages)]
            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda i: call("PUT", f"/session/s{i}", {"history": history, "name": f"chat {i}"}), range(args.sessions)))

            def median_ms(path):
                times = []
                for _ in range(20):
                    start = time.perf_counter()
                    call("GET", path)
                    times.append(time.perf_counter() - start)
                return statistics.median(times) * 1000

            listed = median_ms("/session")
            one = median_ms("/session/s1")
            size = len(json.dumps(history)) // 1024
            print(f"LISAServe from {binary}; {args.sessions} sessions of {args.messages} messages ({size} KiB each)")
            print(f"{'GET /session (all summaries)':34} {listed:8.1f} ms")
            print(f"{'GET /session/{id} (one, the floor)':34} {one:8.1f} ms")
            print(f"{'ratio':34} {listed / one:8.1f} x")
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
