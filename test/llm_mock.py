#!/usr/bin/env python3
"""test/llm_mock.py: a mock of an OpenAI-compatible LLM server for the tests
and benchmarks of the LLM reasoning step (test/tap/llm.t, bench/bench_llm.sh).

It answers POST /v1/chat/completions and POST /v1/embeddings like the real
API, deterministically from the request: a chat answer echoes the words of
the synthetic data set's group vocabulary (src/core/synth.c) found in the
prompt, most frequent first, so descriptions written through it carry the
planted groups; an embedding is a hashed bag of the text's words.  It can
misbehave on purpose, also deterministically (from the request and how many
times it was seen): HTTP 500, 429 with Retry-After, stalling past the
client's timeout, malformed JSON, a truncated body.  GET /stats returns the
counts of what it did.  Standard library only.

    python3 test/llm_mock.py --port 0 --port-file F [--fail 0.3] [--rate429 0.1]
        [--stall 0.05] [--malformed 0.05] [--truncate 0.05] [--delay-ms 0]
        [--api-key KEY]
"""
import argparse
import hashlib
import json
import math
import os
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# the topic words of each planted group, as in src/core/synth.c
TOPICS = [
    ["hiking", "trail", "backpack", "tent", "compass", "summit", "canyon", "lantern"],
    ["jazz", "saxophone", "vinyl", "trumpet", "swing", "blues", "melody", "quartet"],
    ["baking", "flour", "oven", "pastry", "dough", "croissant", "yeast", "whisk"],
    ["skincare", "serum", "moisturizer", "retinol", "cleanser", "sunscreen", "toner", "hydrating"],
    ["chess", "opening", "gambit", "endgame", "bishop", "knight", "rook", "tactics"],
    ["gardening", "seeds", "compost", "tulip", "pruning", "greenhouse", "soil", "orchid"],
    ["cycling", "bicycle", "helmet", "pedal", "derailleur", "saddle", "sprint", "peloton"],
    ["astronomy", "telescope", "nebula", "galaxy", "comet", "orbit", "eclipse", "planetarium"],
    ["knitting", "yarn", "needles", "wool", "sweater", "stitch", "crochet", "pattern"],
    ["photography", "camera", "lens", "aperture", "tripod", "portrait", "exposure", "shutter"],
    ["coffee", "espresso", "grinder", "roast", "barista", "arabica", "latte", "brewing"],
    ["fishing", "lure", "reel", "angler", "trout", "tackle", "bait", "river"],
]
VOCAB = {w for group in TOPICS for w in group}
WORD = re.compile(r"[a-z]+[0-9]*")


def group_words(text):
    """The vocabulary words of text (with a group suffix), most frequent first."""
    counts = {}
    first = {}
    for i, tok in enumerate(WORD.findall(text.lower())):
        if tok.rstrip("0123456789") in VOCAB:
            counts[tok] = counts.get(tok, 0) + 1
            first.setdefault(tok, i)
    return sorted(counts, key=lambda w: (-counts[w], first[w]))


def unit(*parts):
    """A number in [0, 1) from a hash of the parts."""
    h = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(h[:8], "big") / 2.0**64


def embed(text, dim):
    v = [0.0] * dim
    for tok in WORD.findall(text.lower()):
        h = hashlib.sha256(tok.encode()).digest()
        v[int.from_bytes(h[:4], "big") % dim] += 1.0 if h[4] & 1 else -1.0
    n = math.sqrt(sum(x * x for x in v)) or 1.0
    return [round(x / n, 6) for x in v]


class State:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.seen = {}
        self.stats = {}

    def count(self, what):
        with self.lock:
            self.stats[what] = self.stats.get(what, 0) + 1

    def attempt(self, key):
        with self.lock:
            n = self.seen.get(key, 0)
            self.seen[key] = n + 1
            return n


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "llm_mock/1"
    disable_nagle_algorithm = True  # headers and body go out at once

    def log_message(self, fmt, *args):
        pass

    def send_json(self, status, obj, headers=None):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/stats":
            with STATE.lock:
                self.send_json(200, dict(STATE.stats))
        else:
            self.send_json(404, {"error": {"message": "not found"}})

    def do_POST(self):
        a = STATE.args
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if a.api_key and self.headers.get("Authorization") != "Bearer " + a.api_key:
            STATE.count("unauthorized")
            self.send_json(401, {"error": {"message": "invalid API key", "type": "invalid_request_error"}})
            return
        try:
            req = json.loads(raw)
            model = req["model"]
        except (ValueError, KeyError, TypeError):
            STATE.count("bad_request")
            self.send_json(400, {"error": {"message": "bad request"}})
            return
        if model == "missing-model":
            STATE.count("missing_model")
            self.send_json(404, {"error": {"message": "model 'missing-model' not found"}})
            return
        if self.path.endswith("/chat/completions"):
            kind = "chat"
        elif self.path.endswith("/embeddings"):
            kind = "embeddings"
        else:
            self.send_json(404, {"error": {"message": "no such endpoint"}})
            return
        STATE.count(kind)

        # misbehave deterministically: by the request and how often it was seen
        key = hashlib.sha256(raw).hexdigest()
        u = unit(key, STATE.attempt(key))
        if a.delay_ms:
            time.sleep(a.delay_ms / 1000.0)
        for mode, rate in (("fail500", a.fail), ("r429", a.rate429), ("stall", a.stall),
                           ("malformed", a.malformed), ("truncated", a.truncate)):
            if u < rate:
                break
            u -= rate
        else:
            mode = "ok"
        STATE.count(mode)
        if mode == "fail500":
            self.send_json(500, {"error": {"message": "mock failure", "type": "server_error"}})
            return
        if mode == "r429":
            self.send_json(429, {"error": {"message": "rate limited"}}, {"Retry-After": str(a.retry_after)})
            return
        if mode == "stall":
            time.sleep(a.stall_seconds)

        if kind == "chat":
            prompt = "\n".join(m.get("content", "") for m in req.get("messages", []) if m.get("role") == "user")
            words = ", ".join(group_words(prompt)[:6] or ["nothing in particular"])
            question = prompt.strip().split("\n")[-1].lower()
            if "dislike" in question:
                text = "People who do not care for " + words + " would dislike it."
            elif "keywords" in question:
                text = words
            else:
                text = "People who enjoy " + words + " would like it."
            obj = {"id": "chatcmpl-" + key[:12], "object": "chat.completion", "created": 0, "model": model,
                   "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                "finish_reason": "stop"}],
                   "usage": {"prompt_tokens": len(prompt.split()), "completion_tokens": len(text.split()),
                             "total_tokens": len(prompt.split()) + len(text.split())}}
        else:
            inputs = req.get("input")
            if isinstance(inputs, str):
                inputs = [inputs]
            data = [{"object": "embedding", "index": i, "embedding": embed(t, a.dim)}
                    for i, t in enumerate(inputs)]
            data.reverse()  # the index field, not the order, says which is which
            obj = {"object": "list", "data": data, "model": model,
                   "usage": {"prompt_tokens": sum(len(t.split()) for t in inputs),
                             "total_tokens": sum(len(t.split()) for t in inputs)}}
        body = json.dumps(obj).encode()
        try:
            if mode == "malformed":
                self.send_response(200)
                bad = body[: len(body) // 2] + b"}}]]"
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(bad)))
                self.end_headers()
                self.wfile.write(bad)
            elif mode == "truncated":
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
            else:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file")
    p.add_argument("--fail", type=float, default=0.0, help="share of requests answered 500")
    p.add_argument("--rate429", type=float, default=0.0, help="share answered 429 with Retry-After")
    p.add_argument("--retry-after", type=int, default=1)
    p.add_argument("--stall", type=float, default=0.0, help="share that stall --stall-seconds first")
    p.add_argument("--stall-seconds", type=float, default=5.0)
    p.add_argument("--malformed", type=float, default=0.0, help="share answered with malformed JSON")
    p.add_argument("--truncate", type=float, default=0.0, help="share whose body is cut short")
    p.add_argument("--delay-ms", type=float, default=0.0, help="latency of every request")
    p.add_argument("--dim", type=int, default=32, help="embedding dimension")
    p.add_argument("--api-key")
    args = p.parse_args()

    global STATE
    STATE = State(args)
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.allow_reuse_address = True
    ThreadingHTTPServer.request_queue_size = 128
    srv = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as f:
            f.write(str(srv.server_address[1]))
        os.replace(args.port_file + ".tmp", args.port_file)
    print("llm_mock listening on 127.0.0.1:%d" % srv.server_address[1], file=sys.stderr, flush=True)
    srv.serve_forever()


STATE = None

if __name__ == "__main__":
    main()
