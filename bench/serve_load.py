"""Load test for `hyla serve`: N concurrent streaming clients on loopback, mixed prompt
lengths, half the prompts sharing a system prefix. Reports failed requests, p50/p99 time
to first token and inter-token latency, and throughput (generated tokens / wall time).

    python bench/serve_load.py --url http://127.0.0.1:8000 --clients 16 --requests 64
    python bench/serve_load.py --hyla build/hyla --model assets/teacher-tiny   # starts a server

Bounded: every request has a timeout, and the run ends after --requests requests.
Uses only the standard library (http.client), so it measures the server, not a client SDK.
"""
import argparse
import http.client
import json
import random
import re
import statistics
import subprocess
import threading
import time
import urllib.parse

WORDS = ("the a little dog cat ran home under tree bright morning river quiet story old friend found "
         "small house garden window light").split()


def percentile(xs, q):
    if not xs:
        return 0.0
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]


def make_prompts(n, seed):
    rng = random.Random(seed)
    system = "You are a helpful storyteller. " + " ".join(rng.choice(WORDS) for _ in range(60)) + ". "
    prompts = []
    for i in range(n):
        body = " ".join(rng.choice(WORDS) for _ in range(rng.choice([4, 20, 80, 200])))
        prompts.append(system + body if i % 2 == 0 else body)
    return prompts


def one_request(host, port, prompt, max_tokens, timeout):
    """Streams one completion; returns (ttft, [gaps between text events], tokens) or raises."""
    c = http.client.HTTPConnection(host, port, timeout=timeout)
    body = json.dumps({"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": True,
                       "ignore_eos": True, "stream_options": {"include_usage": True}})
    t0 = time.perf_counter()
    c.request("POST", "/v1/completions", body=body, headers={"Content-Type": "application/json"})
    r = c.getresponse()
    if r.status != 200:
        raise RuntimeError(f"HTTP {r.status}: {r.read()[:200]!r}")
    ttft, last, gaps, chunks, done = None, None, [], 0, False
    for raw in r:
        line = raw.decode().strip()
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            done = True
            break
        ev = json.loads(data)
        if "error" in ev:
            raise RuntimeError(ev["error"])
        if ev.get("usage"):
            chunks = ev["usage"]["completion_tokens"]
            continue
        if ev["choices"] and ev["choices"][0].get("text"):
            now = time.perf_counter()
            if ttft is None:
                ttft = now - t0
            else:
                gaps.append(now - last)
            last = now
    c.close()
    if not done or ttft is None:
        raise RuntimeError("stream ended without [DONE] or without text")
    return ttft, gaps, chunks


def run(url, clients=8, requests=32, max_tokens=16, seed=0, timeout=120):
    u = urllib.parse.urlparse(url)
    prompts = make_prompts(requests, seed)
    lock = threading.Lock()
    ttfts, gaps, failures, tokens = [], [], [], [0]
    next_i = [0]

    def worker():
        while True:
            with lock:
                if next_i[0] >= len(prompts):
                    return
                i = next_i[0]
                next_i[0] += 1
            try:
                t, g, n = one_request(u.hostname, u.port, prompts[i], max_tokens, timeout)
                with lock:
                    ttfts.append(t)
                    gaps.extend(g)
                    tokens[0] += n
            except Exception as e:  # noqa: BLE001 - counted and reported
                with lock:
                    failures.append(repr(e))

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return {"clients": clients, "requests": requests, "completed": len(ttfts), "failed": len(failures),
            "errors": failures[:3], "ttft_p50_s": percentile(ttfts, 50), "ttft_p99_s": percentile(ttfts, 99),
            "itl_p50_s": percentile(gaps, 50), "itl_p99_s": percentile(gaps, 99),
            "itl_mean_s": statistics.fmean(gaps) if gaps else 0.0, "tokens_per_s": tokens[0] / wall,
            "wall_s": wall}


def start_server(hyla, model, extra):
    p = subprocess.Popen([hyla, "serve", model, "--port", "0", *extra], stdout=subprocess.PIPE, text=True)
    m = re.search(r"http://[\d.]+:\d+", p.stdout.readline())
    if not m:
        p.kill()
        raise SystemExit("server did not start")
    return p, m.group(0)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url")
    ap.add_argument("--hyla", help="start `HYLA serve MODEL` on a free port instead of --url")
    ap.add_argument("--model")
    ap.add_argument("--server-args", default="", help="extra `hyla serve` arguments")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=32)
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    proc = None
    url = a.url
    if a.hyla:
        proc, url = start_server(a.hyla, a.model, a.server_args.split())
    try:
        res = run(url, a.clients, a.requests, a.max_tokens, a.seed)
    finally:
        if proc:
            proc.kill()
            proc.wait()
    print(json.dumps(res, indent=1))
    raise SystemExit(1 if res["failed"] else 0)


if __name__ == "__main__":
    main()
