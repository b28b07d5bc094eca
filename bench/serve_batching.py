"""Decode throughput of the serving engine with and without batching across sequences.

Runs `hyla serve MODEL --batch` over N greedy requests (random prompt ids, fixed
lengths, `ignore_eos`) and reports generated tokens per second of wall time, for each
binary / --max-running given. Usage:

  python bench/serve_batching.py MODEL --run new=build/hyla:16 --run alone=build/hyla:1 \
      [--requests 16 --prompt 32 --tokens 64]
"""
import argparse
import json
import random
import subprocess
import sys
import tempfile
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--run", action="append", required=True, help="LABEL=HYLA_BINARY:MAX_RUNNING")
    ap.add_argument("--requests", type=int, default=16)
    ap.add_argument("--prompt", type=int, default=32)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=1)
    a = ap.parse_args()
    rng = random.Random(0)
    reqs = [{"prompt": [1] + [rng.randrange(3, 8000) for _ in range(a.prompt - 1)], "max_tokens": a.tokens,
             "temperature": 0, "ignore_eos": True} for _ in range(a.requests)]
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        f.write("".join(json.dumps(r) + "\n" for r in reqs))
    print(f"| run | max running | requests | prompt | tokens | wall s | generated tok/s |")
    print(f"| --- | --- | --- | --- | --- | --- | --- |")
    for spec in a.run:
        label, rest = spec.split("=", 1)
        binary, running = rest.rsplit(":", 1)
        best = None
        for _ in range(a.repeat):
            t0 = time.perf_counter()
            out = subprocess.run([binary, "serve", a.model, "--batch", f.name, "--max-running", running],
                                 capture_output=True, text=True)
            dt = time.perf_counter() - t0
            if out.returncode != 0:
                sys.exit(out.stderr)
            best = dt if best is None else min(best, dt)
        n = a.requests * a.tokens
        print(f"| {label} | {running} | {a.requests} | {a.prompt} | {a.tokens} | {best:.2f} | {n / best:.1f} |", flush=True)


if __name__ == "__main__":
    main()
