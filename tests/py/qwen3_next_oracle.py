"""transformers' Qwen3NextForCausalLM as an oracle, run as its own process.

transformers binds Qwen3-Next's gated-delta-rule functions to fla's Triton kernels at
import time whenever `fla` imports, and those need a GPU (oracles.md, "transformers'
Qwen3-Next on CPU"). This process blocks `fla` (and `causal_conv1d`) before importing
transformers, so the model takes transformers' own torch path: the oracle. It is a separate
process because the other oracle tests import fla in the pytest process.

    python qwen3_next_oracle.py jobs.json results.json

jobs: a list of
  {"op": "make", "dir": D, "config": {...}, "seed": s}   random Qwen3-Next, save_pretrained
  {"op": "run", "dir": D, "name": N, "ids": [[...]], "prompt": [[...]], "new_tokens": n,
   "out": F, "dtype": "float64"}                          logits of ids -> F (.npy), greedy tokens
results: {N: {"missing": [...], "unexpected": [...], "mismatched": [...], "greedy": [...],
              "transformers": version}}
"""
import json
import sys

sys.modules["fla"] = None  # noqa: E402 - before transformers, so it takes its torch path
sys.modules["causal_conv1d"] = None

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402


def make(job):
    torch.manual_seed(job["seed"])
    model = transformers.Qwen3NextForCausalLM(transformers.Qwen3NextConfig(**job["config"])).eval()
    g = torch.Generator().manual_seed(job["seed"])
    with torch.no_grad():
        # Weights large enough that a misplaced row, a missed 1 + w or a swapped gate shows.
        for name, p in model.named_parameters():
            if name.endswith("A_log"):
                p.copy_(torch.rand(p.shape, generator=g).add(0.1).log())
            elif "norm" in name or name.endswith("dt_bias"):
                p.copy_(0.3 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.25 * torch.randn(p.shape, generator=g))
    model.save_pretrained(job["dir"])


def run(job):
    model, info = transformers.Qwen3NextForCausalLM.from_pretrained(job["dir"], output_loading_info=True)
    dtype = getattr(torch, job.get("dtype", "float64"))
    model = model.to(dtype).eval()
    out = {k: [str(x) for x in info.get(k, [])] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    with torch.no_grad():
        ids = torch.tensor(job["ids"])
        np.save(job["out"], model(input_ids=ids, use_cache=False).logits.numpy())
        prompt = torch.tensor(job["prompt"])
        gen = model.generate(prompt, max_new_tokens=job["new_tokens"], do_sample=False, min_new_tokens=job["new_tokens"],
                             pad_token_id=0)
    out["greedy"] = gen[0, prompt.shape[1]:].tolist()
    out["transformers"] = transformers.__version__
    return out


def main():
    jobs = json.load(open(sys.argv[1]))
    results = {}
    for job in jobs:
        if job["op"] == "make":
            make(job)
        else:
            results[job["name"]] = run(job)
    json.dump(results, open(sys.argv[2], "w"))


if __name__ == "__main__":
    main()
