"""Load test for `hyla serve`: N concurrent streaming clients on loopback, mixed prompt
lengths, half the prompts sharing a system prefix. Reports failed requests, p50/p99 time
to first token and inter-token latency, and throughput (generated tokens / wall time).

    python bench/serve_load.py --url http://127.0.0.1:8000 --clients 16 --requests 64
    python bench/serve_load.py --hyla build/hyla --model assets/teacher-tiny   # starts a server
    python bench/serve_load.py --hyla build/hyla --model TEACHER --rising 1,4,16 \
        --server-args "--adaptive CHAIN --adaptive-up-waiting 4 --adaptive-cooldown 1"

--rising runs one phase per client count (each --requests requests) and reports the
highest adaptive level (lowest hybrid ratio) /metrics showed during each: DSLA-Serve's
rising-load run.

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


def metrics(url):
    u = urllib.parse.urlparse(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    c.close()
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"^hyla_(\w+) (\S+)$", text, re.M)}


def rising(url, counts, requests, max_tokens, seed):
    rows = []
    for i, n in enumerate(counts):
        # /metrics sampled during the phase: the highest level (lowest ratio) it reached.
        seen, done = [], threading.Event()

        def sample():
            while not done.is_set():
                seen.append(metrics(url))
                done.wait(0.1)
        t = threading.Thread(target=sample)
        t.start()
        res = run(url, n, requests, max_tokens, seed + i)
        done.set()
        t.join()
        m = metrics(url)
        peak = max(seen + [m], key=lambda x: x.get("adaptive_level", 0))
        res.update(level=peak.get("adaptive_level", 0), hybrid_attention_ratio=peak.get("hybrid_attention_ratio", 1),
                   switches_up=m.get("adaptive_switches_up_total", 0),
                   switches_down=m.get("adaptive_switches_down_total", 0))
        rows.append(res)
        print(f"clients {n}: {res['tokens_per_s']:.1f} tok/s, failed {res['failed']}, peak level {res['level']:.0f}, "
              f"attention ratio {res['hybrid_attention_ratio']:.2f}, TTFT p50 {res['ttft_p50_s']:.3f} s", flush=True)
    return rows


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
    ap.add_argument("--rising", help="comma-separated client counts: one phase each (adaptive serving)")
    a = ap.parse_args()
    proc = None
    url = a.url
    if a.hyla:
        proc, url = start_server(a.hyla, a.model, a.server_args.split())
    try:
        if a.rising:
            res = rising(url, [int(n) for n in a.rising.split(",")], a.requests, a.max_tokens, a.seed)
        else:
            res = run(url, a.clients, a.requests, a.max_tokens, a.seed)
    finally:
        if proc:
            proc.kill()
            proc.wait()
    print(json.dumps(res, indent=1))
    failed = sum(r["failed"] for r in res) if isinstance(res, list) else res["failed"]
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
