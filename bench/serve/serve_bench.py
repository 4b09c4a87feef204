#!/usr/bin/env python3
"""Aggregate decode tokens/s and time to first token of `mlxd serve` under 1, 4, 8 and 16 concurrent streams.

Each level is reported beside the 1-stream figure of the same run (ratio = level / 1 stream). Levels run in the
order 1 4 8 16 16 8 4 1 (ROUNDS times), so drift on a shared machine hits both ends alike; the figures are medians
over the repetitions of a level. Every stream asks for exactly --tokens tokens (the end-of-text token is banned
with logit_bias) from a distinct prompt, streamed with stream_options.include_usage.

Usage: bench/serve/serve_bench.py [--build build] [--model DIR] [--threads 2] [--tokens 64] [--rounds 1]
                                  [--workers N]   (serve over N local worker processes, each with --threads)
Without --model it serves a ~6M-parameter Llama (bench/serve/model.json, seeded random weights made by
`mlxd init`) with the byte-level test tokenizer. Prints one JSON object.
"""
import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
LEVELS = [1, 4, 8, 16]


def start_workers(args, work):
    """--workers N local `mlxd worker` processes, each with all the threads; their addresses."""
    addresses = []
    for i in range(args.workers):
        port_file = os.path.join(work, f"worker{i}.port")
        args.worker_procs.append(subprocess.Popen(
            [args.mlxd, "--threads", str(args.threads), "worker", "--host", "127.0.0.1", "--port", "0",
             "--port-file", port_file], stdout=subprocess.DEVNULL))
        deadline = time.time() + 30
        while not os.path.exists(port_file) and time.time() < deadline:
            time.sleep(0.05)
        addresses.append("127.0.0.1:" + open(port_file).read().strip())
    return addresses


def start_server(args, work):
    model = args.model
    if not model:
        model = os.path.join(work, "model")
        subprocess.run([args.mlxd, "init", "--config", os.path.join(HERE, "model.json"), "--seed", "1", "--out", model],
                       check=True, stdout=subprocess.DEVNULL)
        tok = os.path.join(ROOT, "tests", "apps", "data", "tiny_byte_tokenizer")
        for f in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(os.path.join(tok, f), model)
    port_file = os.path.join(work, "port")
    command = [args.mlxd, "--threads", str(args.threads), "serve", "--model", model, "--port", "0",
               "--port-file", port_file, "--max-running", "16"]
    if args.workers:
        command += ["--workers", ",".join(start_workers(args, work))]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit("mlxd serve exited")
        if os.path.exists(port_file):
            port = int(open(port_file).read())
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                c.request("GET", "/health")
                if c.getresponse().status == 200:
                    return proc, port
            except OSError:
                pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("mlxd serve did not become healthy")


def eos_ids(port):
    c = http.client.HTTPConnection("127.0.0.1", port)
    c.request("POST", "/tokenize", json.dumps({"prompt": "<|endoftext|>", "add_special_tokens": False}),
              {"Content-Type": "application/json"})
    ids = json.loads(c.getresponse().read())["tokens"]
    return ids if len(ids) == 1 else []


def one_stream(port, prompt, tokens, bias, out):
    body = {"prompt": prompt, "max_tokens": tokens, "temperature": 0.8, "seed": 1, "logit_bias": bias,
            "stream": True, "stream_options": {"include_usage": True}}
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    start = time.perf_counter()
    c.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
    r = c.getresponse()
    first = None
    usage = None
    for line in r:
        if not line.startswith(b"data: ") or line.strip() == b"data: [DONE]":
            continue
        chunk = json.loads(line[6:])
        if first is None and chunk.get("choices") and chunk["choices"][0].get("text"):
            first = time.perf_counter()
        if chunk.get("usage"):
            usage = chunk["usage"]
    end = time.perf_counter()
    out.append({"ttft": (first or end) - start, "tokens": usage["completion_tokens"] if usage else 0, "end": end})


def level(port, streams, tokens, bias):
    results, threads = [], []
    start = time.perf_counter()
    for i in range(streams):
        t = threading.Thread(target=one_stream, args=(port, "story %d:" % i, tokens, bias, results))
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    wall = max(r["end"] for r in results) - start
    total = sum(r["tokens"] for r in results)
    if total != streams * tokens:
        raise SystemExit("expected %d tokens, got %d" % (streams * tokens, total))
    return {"tokens_per_s": total / wall, "ttft": [r["ttft"] for r in results]}


def percentile(values, q):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--build", default=os.path.join(ROOT, "build"))
    p.add_argument("--model", default="")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--tokens", type=int, default=64)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--workers", type=int, default=0, help="serve over this many local worker processes")
    args = p.parse_args()
    args.worker_procs = []
    args.mlxd = os.path.join(args.build, "bin", "mlxd")
    work = tempfile.mkdtemp()
    proc = None
    try:
        load_before = os.getloadavg()[0]
        proc, port = start_server(args, work)
        bias = {str(i): -100 for i in eos_ids(port)}
        level(port, 1, 8, bias)  # warm-up
        runs = {n: [] for n in LEVELS}
        for _ in range(args.rounds):
            for n in LEVELS + LEVELS[::-1]:
                runs[n].append(level(port, n, args.tokens, bias))
        base = statistics.median(r["tokens_per_s"] for r in runs[1])
        out = []
        for n in LEVELS:
            tps = statistics.median(r["tokens_per_s"] for r in runs[n])
            ttft = [t for r in runs[n] for t in r["ttft"]]
            out.append({"streams": n, "tokens_per_s": round(tps, 1), "one_stream_tokens_per_s": round(base, 1),
                        "ratio_vs_one_stream": round(tps / base, 2),
                        "ttft_p50_ms": round(1000 * percentile(ttft, 0.5), 1),
                        "ttft_p95_ms": round(1000 * percentile(ttft, 0.95), 1)})
        print(json.dumps({"model": args.model or "bench/serve/model.json (random weights)", "threads": args.threads,
                          "workers": args.workers,
                          "tokens_per_stream": args.tokens, "repetitions_per_level": 2 * args.rounds,
                          "load_average_before_after": [load_before, os.getloadavg()[0]], "cores": os.cpu_count(),
                          "levels": out}, indent=1))
    finally:
        for q in ([proc] if proc else []) + args.worker_procs:
            q.terminate()
            q.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
