"""Prefix caching benchmark: time to first token and hit rate of `hyla serve` with and
without the prefix cache, for shared prefixes shorter and longer than a KV block.

Each case sends R requests one after another (streaming, max_tokens 1): a shared prefix
of P token ids, then 12 ids of its own. The first request fills the cache; TTFT is the
median over the others. Hit rate = prompt tokens restored / prompt tokens (/metrics).

    python bench/prefix_cache.py --hyla build/hyla --model assets/teacher-tiny [--model HYBRID ...]
"""
import argparse
import http.client
import json
import random
import re
import statistics
import subprocess
import time


def start(hyla, model, extra):
    p = subprocess.Popen([hyla, "serve", model, "--port", "0", *extra], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True)
    m = re.search(r":(\d+) ", p.stdout.readline())
    if not m:
        p.kill()
        raise SystemExit(f"{model}: server did not start")
    return p, int(m.group(1))


def ttft(port, ids):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    t0 = time.perf_counter()
    c.request("POST", "/v1/completions", json.dumps({"prompt": ids, "max_tokens": 1, "stream": True,
                                                      "temperature": 0, "ignore_eos": True}),
              {"Content-Type": "application/json"})
    r = c.getresponse()
    first = None
    for line in r:
        if line.startswith(b"data:") and first is None:
            first = time.perf_counter() - t0
    c.close()
    return first


def metric(port, name):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    return float(re.search(rf"^hyla_{name} (\S+)$", text, re.M).group(1))


def case(hyla, model, extra, prefix_len, requests, seed):
    rng = random.Random(seed)
    prefix = [1] + [rng.randrange(3, 8000) for _ in range(prefix_len - 1)]
    p, port = start(hyla, model, extra)
    try:
        times = [ttft(port, prefix + [rng.randrange(3, 8000) for _ in range(12)]) for _ in range(requests)]
        return statistics.median(times[1:]), metric(port, "prefix_cache_hit_rate")
    finally:
        p.kill()
        p.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hyla", required=True)
    ap.add_argument("--model", action="append", required=True)
    ap.add_argument("--prefix", type=int, action="append", help="shared prefix lengths (default 8 and 400)")
    ap.add_argument("--requests", type=int, default=8)
    ap.add_argument("--server-args", default="--block-size 16 --prefill-chunk 64")
    a = ap.parse_args()
    extra = a.server_args.split()
    print(f"| model | shared prefix (tokens) | TTFT no cache (ms) | TTFT cache (ms) | hit rate | server args |")
    print("| --- | --- | --- | --- | --- | --- |")
    for model in a.model:
        for plen in a.prefix or [8, 400]:
            cold, _ = case(a.hyla, model, extra + ["--no-prefix-cache"], plen, a.requests, plen)
            warm, hit = case(a.hyla, model, extra, plen, a.requests, plen)
            print(f"| {model} | {plen} | {cold * 1e3:.1f} | {warm * 1e3:.1f} | {hit:.2f} | {' '.join(extra)} |",
                  flush=True)


if __name__ == "__main__":
    main()
