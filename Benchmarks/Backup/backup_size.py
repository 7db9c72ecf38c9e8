#!/usr/bin/env python3
"""Backup size and time for a data directory with 100k usage records and 10k chunks.

Builds the data directory with a real LISAServe (real chats write the first usage records, a real
ingestion writes the first chunks), then stops it and multiplies those rows with sqlite3 to the
target counts (100k calls through a debug build would take the better part of an hour): the usage
records copy real rows with new ids and times, the chunks are ~1,000-character texts with
384-dimensional float32 embeddings (all-MiniLM-L6-v2's size) in one collection. Then it starts
LISAServe on the directory again and times `POST /admin/backup` (the archive streamed to a file)
three times, and `lisactl admin restore` of the archive three times; prints the medians.

    LISA_BIN_DIR=$(swift build -c release --show-bin-path) python3 Benchmarks/Backup/backup_size.py
    python3 Benchmarks/Backup/backup_size.py --usage 100000 --chunks 10000 --dimensions 384
"""
import argparse
import json
import os
import pathlib
import random
import shutil
import signal
import socket
import sqlite3
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(os.environ.get("LISA_BIN_DIR", ROOT / ".build" / "debug"))
ADMIN_KEY = "bench-admin-key-0123456789"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url, process, timeout=120):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(url)


def call(base, method, path, body=None, key=ADMIN_KEY, content_type="application/json", data=None):
    if body is not None:
        data = json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method,
                                     headers={"Authorization": f"Bearer {key}", "Content-Type": content_type})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read() or b"null")


class Server:
    def __init__(self, upstream, data_dir, log):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = data_dir.parent / "lisa.yaml"
        config.write_text(f"""
models:
  - {{modelId: chat-small, modelName: m, modelType: textgen, inferenceContainer: vllm, modelUrl: "{upstream}"}}
  - {{modelId: embedder, modelName: e, modelType: embedding, inferenceContainer: tei, modelUrl: "{upstream}"}}
budgets:
  user: {{period: month, tokens: 100000000}}
""")
        env = {k: v for k, v in os.environ.items() if not k.startswith("LISA_")}
        env["LISA_ADMIN_KEY"] = ADMIN_KEY
        self.process = subprocess.Popen([str(BIN / "LISAServe"), "--config", str(config), "--port", str(self.port),
                                         "--data-dir", str(data_dir)], env=env, stdout=log, stderr=subprocess.STDOUT)
        wait_healthy(self.url + "/health", self.process)

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(60)


def seed(server):
    for index in range(20):
        call(server.url, "POST", "/v1/chat/completions", {"model": "chat-small", "messages": [{"role": "user", "content": f"q {index}"}]})
    call(server.url, "POST", "/repository", {"repositoryId": "bench", "embeddingModelId": "embedder"})
    boundary = "benchboundary"
    text = " ".join(f"Sentence {i} of the seed document." for i in range(200))
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"seed.txt\"\r\n"
            f"Content-Type: text/plain\r\n\r\n{text}\r\n--{boundary}--\r\n").encode()
    job = call(server.url, "POST", "/repository/bench/upload", data=body, content_type=f"multipart/form-data; boundary={boundary}")
    end = time.monotonic() + 120
    while call(server.url, "GET", f"/repository/bench/jobs/{job['jobId']}")["status"] not in ("COMPLETED", "FAILED"):
        assert time.monotonic() < end
        time.sleep(0.1)
    end = time.monotonic() + 60
    while call(server.url, "GET", "/usage?bucket=none")["totals"]["requests"] < 20:
        assert time.monotonic() < end
        time.sleep(0.1)


def multiply(data_dir, usage, chunks, dimensions):
    state = sqlite3.connect(data_dir / "lisa.sqlite")
    columns = [row[1] for row in state.execute("PRAGMA table_info(usage_records)")]
    real = state.execute("SELECT * FROM usage_records").fetchall()
    have = len(real)
    now = time.time()
    rows = []
    for index in range(usage - have):
        row = dict(zip(columns, real[index % have]))
        row["id"] = f"bench-{index:08d}"
        row["request_id"] = f"req-bench-{index:08d}"
        row["at"] = now - index * 25.0  # 100k calls over ~29 days
        row["hour"] = int(row["at"] // 3600)
        rows.append(tuple(row[c] for c in columns))
    state.executemany(f"INSERT INTO usage_records ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})", rows)
    state.commit()
    total = state.execute("SELECT count(*) FROM usage_records").fetchone()[0]
    state.close()

    vectors = sqlite3.connect(data_dir / "vectors" / "vectors.sqlite")
    have_chunks = vectors.execute("SELECT count(*) FROM chunks").fetchone()[0]
    vectors.execute("INSERT INTO collections (name, dimension, metric) VALUES ('bench_384', ?, 'cosine')", (dimensions,))
    random.seed(7)
    words = "the of and to in is that for it as with was on be by this are from at or an which".split()
    batch = []
    for index in range(chunks - have_chunks):
        text = " ".join(random.choice(words) for _ in range(200))[:1000]
        vector = [random.gauss(0, 1) for _ in range(dimensions)]
        norm = sum(v * v for v in vector) ** 0.5
        blob = struct.pack(f"<{dimensions}f", *(v / norm for v in vector))
        metadata = json.dumps({"documentName": f"doc-{index // 20}.txt", "chunk": index % 20, "username": "alice"})
        batch.append(("bench_384", f"doc-{index // 20}-{index % 20}", f"doc-{index // 20}", text, metadata, blob))
    vectors.executemany("INSERT INTO chunks (collection, id, document_id, text, metadata, embedding) VALUES (?, ?, ?, ?, ?, ?)", batch)
    vectors.commit()
    total_chunks = vectors.execute("SELECT count(*) FROM chunks").fetchone()[0]
    vectors.close()
    return total, total_chunks


def directory_size(path):
    return sum(f.stat().st_size for f in pathlib.Path(path).rglob("*") if f.is_file())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--usage", type=int, default=100_000)
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--dimensions", type=int, default=384)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    work = pathlib.Path(tempfile.mkdtemp(prefix="lisa-backup-bench-"))
    log = open(work / "log.txt", "w")
    upstream_port = free_port()
    upstream = subprocess.Popen([str(BIN / "lisa-fake-upstream"), "--port", str(upstream_port)], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_healthy(f"http://127.0.0.1:{upstream_port}/health", upstream)
        upstream_url = f"http://127.0.0.1:{upstream_port}/v1"
        data = work / "data"
        server = Server(upstream_url, data, log)
        seed(server)
        server.stop()
        usage, chunks = multiply(data, args.usage, args.chunks, args.dimensions)
        server = Server(upstream_url, data, log)
        try:
            on_disk = directory_size(data)
            times, size = [], 0
            for run in range(args.runs):
                archive = work / f"backup-{run}.tar"
                started = time.monotonic()
                request = urllib.request.Request(server.url + "/admin/backup", data=b"{}", method="POST",
                                                 headers={"Authorization": f"Bearer {ADMIN_KEY}", "Content-Type": "application/json"})
                with urllib.request.urlopen(request, timeout=600) as response, open(archive, "wb") as out:
                    shutil.copyfileobj(response, out, 1 << 20)
                times.append(time.monotonic() - started)
                size = archive.stat().st_size
        finally:
            server.stop()
        restores = []
        for run in range(args.runs):
            started = time.monotonic()
            subprocess.run([str(BIN / "lisactl"), "admin", "restore", str(work / f"backup-{run}.tar"), "--data-dir",
                            str(work / f"restored-{run}")], check=True, capture_output=True)
            restores.append(time.monotonic() - started)
        manifest = json.loads(subprocess.run([str(BIN / "lisactl"), "--output", "json", "admin", "verify-backup", str(work / "backup-0.tar")],
                                             check=True, capture_output=True, text=True).stdout)
        print(f"binaries: {BIN}")
        print(f"data directory: {usage} usage records, {chunks} chunks of {args.dimensions} dimensions, {on_disk / 1e6:.1f} MB on disk")
        for file in manifest["files"]:
            print(f"  {file['path']}: {file['size'] / 1e6:.1f} MB")
        print(f"archive: {size / 1e6:.1f} MB; gzip -1 of it: ", end="", flush=True)
        gz = subprocess.run(f"gzip -1 -c {work / 'backup-0.tar'} | wc -c", shell=True, capture_output=True, text=True).stdout.strip()
        print(f"{int(gz) / 1e6:.1f} MB")
        print(f"backup (POST /admin/backup, streamed to a file): median {statistics.median(times):.2f} s of {[round(t, 2) for t in times]}")
        print(f"restore (lisactl admin restore, verified): median {statistics.median(restores):.2f} s of {[round(t, 2) for t in restores]}")
    finally:
        upstream.terminate()
        upstream.wait()
        log.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
