"""Issue 31 item 3: does a usage report slow a budgeted user's calls?

    python3 Benchmarks/Isolation/usage_reports.py [--records 200000] [--seconds 20] [--bin DIR]

Alice owns --records usage records spread over the last 24 hours (written straight into the
SQLite file while LISAServe is stopped; where the build keeps the hourly rollup, it is rebuilt
from them as the write path would have kept it). Then Alice loops
GET /usage?bucket=hour&groupBy=model,token while Bob, who has a token budget (so every call
reserves and settles in the state store), calls chat completions one after another. Prints
Bob's latency without and with the reports running, and Alice's report times.
"""
import argparse
import json
import pathlib
import random
import sqlite3
import tempfile
import threading
import time

import harness


def fill(path, count):
    db = sqlite3.connect(path)
    now = time.time()
    rows = []
    for i in range(count):
        at = now - random.random() * 86000
        status = "ok" if i % 50 else "error"
        rows.append((f"bench-{i}", at, int(at // 3600) * 3600, f"req-{i}", "alice", f"tok-{i % 4}", ",lisa-users,", f"model-{i % 3}",
                     "chat", "http://127.0.0.1/v1", "chat", 300, 120, 0, 35.0, 12.0, status, 0.0001))
    db.executemany("INSERT INTO usage_records (id, at, hour, request_id, username, token_id, groups, model, served_by, endpoint, operation,"
                   " input_tokens, output_tokens, estimated, duration_ms, ttft_ms, status, cost) VALUES"
                   " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    if db.execute("SELECT count(*) FROM sqlite_master WHERE name = 'usage_hourly'").fetchone()[0]:
        db.execute("DELETE FROM usage_hourly")
        db.execute("""INSERT INTO usage_hourly (hour, model, username, token_id, groups, requests, errors, input_tokens, output_tokens,
                      estimated, cost) SELECT hour, model, username, COALESCE(token_id, ''), groups, COUNT(*),
                      SUM(CASE WHEN status = 'ok' THEN 0 ELSE 1 END), SUM(input_tokens), SUM(output_tokens), SUM(estimated),
                      SUM(COALESCE(cost, 0)) FROM usage_records GROUP BY hour, model, username, COALESCE(token_id, ''), groups""")
    db.commit()
    db.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--bin", default=None)
    args = parser.parse_args()
    binary = harness.binaries(args.bin)
    upstream = harness.FakeUpstream(binary)
    with tempfile.TemporaryDirectory() as data:
        config = harness.model_config(upstream.port) + "budgets:\n  users:\n    bob: {period: day, tokens: 1000000000}\n"
        server = harness.Server(binary, data, config)
        alice, bob = server.token("alice"), server.token("bob")
        server.stop()
        fill(str(pathlib.Path(data) / "lisa.sqlite"), args.records)
        server = harness.Server(binary, data, config)
        try:
            chat = json.dumps({"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}).encode()

            def bob_for(seconds):
                latencies = []
                deadline = time.time() + seconds
                while time.time() < deadline:
                    elapsed, (status, body) = harness.timed(lambda: server.call("POST", "/v1/chat/completions", raw=chat, key=bob))
                    assert status == 200, (status, body[:200])
                    latencies.append(elapsed)
                return latencies

            bob_for(2)
            quiet = bob_for(args.seconds / 2)
            stop = threading.Event()
            reports = []

            def alice_loop():
                while not stop.is_set():
                    elapsed, (status, body) = harness.timed(
                        lambda: server.call("GET", "/usage?bucket=hour&groupBy=model,token", key=alice))
                    assert status == 200, (status, body[:200])
                    reports.append((elapsed, len(json.loads(body)["data"])))

            thread = threading.Thread(target=alice_loop)
            thread.start()
            busy = bob_for(args.seconds)
            stop.set()
            thread.join()
            print(f"LISAServe from {binary}; {args.records} usage records of alice")
            print(f"alice GET /usage?bucket=hour&groupBy=model,token: {harness.summary([r[0] for r in reports])}, {reports[-1][1]} rows")
            print(f"bob chat without reports: {harness.summary(quiet)}")
            print(f"bob chat with reports:    {harness.summary(busy)}")
        finally:
            server.stop()
            upstream.stop()


if __name__ == "__main__":
    main()
