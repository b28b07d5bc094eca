"""Decode speed and cache memory: a hybrid (1 attention layer in 4, the others Gated
DeltaNet) against its all-attention teacher, both in hyla with CUDA-graph decoding, at
growing prompt lengths. The teacher is a random 124.7M Llama (the shape of
generate_vs_hf.py); the hybrid is `hyla hybrid --attention-every 4 --mixer gdn` of it.

usage: python3 bench/hybrid_decode.py --hyla build-cuda/hyla [--reference] [--out hybrid_decode.json]

--reference adds the hybrid with the LibTorch reference GDN decode step
(HYLA_GDN_DECODE=reference) beside the fused CUDA kernel (the default).
"""
import argparse
import json
import os
import subprocess
import tempfile

import torch
import transformers


def hyla(cmd, env=None):
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stderr}")
    return r.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hyla", required=True)
    ap.add_argument("--out")
    ap.add_argument("--prompts", default="512,4096,16384")
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--reference", action="store_true", help="also time the LibTorch reference GDN step")
    args = ap.parse_args()
    cfg = transformers.LlamaConfig(vocab_size=32000, hidden_size=768, intermediate_size=2048,
                                   num_hidden_layers=12, num_attention_heads=12, num_key_value_heads=4,
                                   max_position_embeddings=65536, bos_token_id=None, eos_token_id=None)
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(cfg).to(torch.bfloat16).eval()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        teacher, hybrid = f"{d}/teacher", f"{d}/hybrid"
        model.save_pretrained(teacher)
        print(hyla([args.hyla, "hybrid", teacher, "--out", hybrid, "--mixer", "gdn", "--attention-every", "4"]).strip())
        info = {n: json.loads(hyla([args.hyla, "info", p, "--json"])) for n, p in (("teacher", teacher), ("hybrid", hybrid))}
        for batch in map(int, args.batches.split(",")):
            for plen in map(int, args.prompts.split(",")):
                row = {"batch": batch, "prompt_len": plen}
                runs = [("teacher", teacher, None), ("hybrid", hybrid, None)]
                if args.reference:
                    runs.append(("hybrid_ref", hybrid, dict(os.environ, HYLA_GDN_DECODE="reference")))
                for name, path, env in runs:
                    out = hyla([args.hyla, "bench", "generate", path, "--dtype", "bfloat16", "--batch", str(batch),
                                "--prompt-len", str(plen), "--new-tokens", str(args.new_tokens), "--repeats", "2"],
                               env)
                    row[name] = json.loads(out)
                    i = info["teacher" if name == "teacher" else "hybrid"]
                    # Decode cache at the end of generation, for the whole batch.
                    row[name]["cache_mib"] = batch * (i["kv_cache_bytes_per_token"] * (plen + args.new_tokens)
                                                      + i["state_bytes_per_sequence"]) / 2**20
                rows.append(row)
                print(json.dumps(row), flush=True)
    print(f"\n{torch.cuda.get_device_name()}, torch {torch.__version__}; 124.7M Llama teacher (12 layers) vs hybrid "
          f"(layers 0, 4, 8 attention, 9 GDN), bf16, CUDA graphs, {args.new_tokens} new tokens")
    ref_head = " hybrid (reference step) ms | hybrid (reference) / teacher |" if args.reference else ""
    print("| batch | prompt | teacher step ms | hybrid step ms | teacher tok/s | hybrid tok/s | hybrid / teacher |"
          f"{ref_head} teacher cache MiB | hybrid cache MiB |")
    print("|---|---|---|---|---|---|---|" + ("---|---|" if args.reference else "") + "---|---|")
    for r in rows:
        t, h = r["teacher"], r["hybrid"]
        ref = ""
        if args.reference:
            hr = r["hybrid_ref"]
            ref = f" {hr['step_ms']:.3f} | {hr['tokens_per_s'] / t['tokens_per_s']:.2f}x |"
        print(f"| {r['batch']} | {r['prompt_len']} | {t['step_ms']:.3f} | {h['step_ms']:.3f} | {t['tokens_per_s']:.0f} | "
              f"{h['tokens_per_s']:.0f} | {h['tokens_per_s'] / t['tokens_per_s']:.2f}x |{ref} {t['cache_mib']:.0f} | "
              f"{h['cache_mib']:.0f} |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
