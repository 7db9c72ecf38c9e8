"""Issue 31 item 2: does reading one's own large stored response stall other users?

    python3 Benchmarks/Isolation/stored_responses.py [--items 150000] [--reads 4] [--cap BYTES] [--bin DIR]

Alice stores one response of --items tiny input items through POST /v1/responses, then reads
it back --reads times (GET, input_items, DELETE last); meanwhile Bob calls chat completions
one after another. Prints Bob's latency while Alice reads (and, apart, while she stores), and
Alice's own times. --cap sets quotas.maxStoredResponseBytes (builds that know it).
"""
import argparse
import json
import tempfile
import threading
import time

import harness


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=150_000)
    parser.add_argument("--reads", type=int, default=4)
    parser.add_argument("--cap", type=int, default=None)
    parser.add_argument("--bin", default=None)
    args = parser.parse_args()
    binary = harness.binaries(args.bin)
    upstream = harness.FakeUpstream(binary)
    with tempfile.TemporaryDirectory() as data:
        config = harness.model_config(upstream.port)
        if args.cap:
            config += f"quotas:\n  maxStoredResponseBytes: {args.cap}\n"
        server = harness.Server(binary, data, config)
        try:
            alice, bob = server.token("alice"), server.token("bob")
            chat = json.dumps({"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}).encode()
            for _ in range(20):
                server.call("POST", "/v1/chat/completions", raw=chat, key=bob)
            phase = {"name": "idle"}
            latencies = {"idle": [], "store": [], "read": []}
            stop = threading.Event()

            def bob_loop():
                while not stop.is_set():
                    name = phase["name"]
                    elapsed, (status, _) = harness.timed(lambda: server.call("POST", "/v1/chat/completions", raw=chat, key=bob))
                    assert status == 200, status
                    if phase["name"] == name:
                        latencies[name].append(elapsed)

            thread = threading.Thread(target=bob_loop)
            thread.start()
            time.sleep(2)
            body = json.dumps({"model": "chat", "input": [{"role": "user", "content": "x"} for _ in range(args.items)]}).encode()
            phase["name"] = "store"
            stored_ms, (status, answer) = harness.timed(lambda: server.call("POST", "/v1/responses", raw=body, key=alice))
            print(f"LISAServe from {binary}; request {len(body) / 1e6:.1f} MB, {args.items} input items")
            print(f"alice POST /v1/responses: {status} in {stored_ms:.0f} ms {answer[:160]!r}" if status != 200 else
                  f"alice POST /v1/responses: 200 in {stored_ms:.0f} ms")
            reads = []
            if status == 200:
                response_id = json.loads(answer)["id"]
                phase["name"] = "read"
                for _ in range(args.reads):
                    elapsed, (status, got) = harness.timed(lambda: server.call("GET", f"/v1/responses/{response_id}", key=alice))
                    reads.append(("GET", status, elapsed, len(got)))
                elapsed, (status, got) = harness.timed(
                    lambda: server.call("GET", f"/v1/responses/{response_id}/input_items?limit=100", key=alice))
                reads.append(("GET input_items", status, elapsed, len(got)))
                elapsed, (status, got) = harness.timed(lambda: server.call("DELETE", f"/v1/responses/{response_id}", key=alice))
                reads.append(("DELETE", status, elapsed, len(got)))
            phase["name"] = "done"
            stop.set()
            thread.join()
            for method, status, elapsed, size in reads:
                print(f"alice {method:16} {status} {elapsed:8.0f} ms ({size} bytes)")
            print(f"bob chat while idle:         {harness.summary(latencies['idle'])}")
            print(f"bob chat while alice stores: {harness.summary(latencies['store'])}")
            print(f"bob chat while alice reads:  {harness.summary(latencies['read'])}")
        finally:
            server.stop()
            upstream.stop()


if __name__ == "__main__":
    main()
