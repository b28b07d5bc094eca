"""Decode speed: `hyla bench generate` against transformers' generate on the same random
~100M-parameter Llama (hidden 768, 12 layers, 12 heads, 4 KV heads, vocab 32000), bf16,
prompt 512, 256 new tokens, batch 1 and 16, greedy. Run on the device:
    python3 bench/generate_vs_hf.py --hyla build-cuda/hyla [--out results.json]
Prints a markdown table; paste it into bench/RESULTS.md with device, date and command."""
import argparse
import json
import subprocess
import tempfile
import time

import torch
import transformers


def hf_decode(model, batch, prompt_len, new_tokens, repeats=2):
    ids = torch.randint(0, model.config.vocab_size, (batch, prompt_len), device="cuda",
                        generator=torch.Generator(device="cuda").manual_seed(0))
    kw = dict(do_sample=False, eos_token_id=None, pad_token_id=0)
    model.generate(ids, max_new_tokens=8, min_new_tokens=8, **kw)  # warm-up
    best = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        model.generate(ids, max_new_tokens=1, min_new_tokens=1, **kw)
        torch.cuda.synchronize()
        t_prefill = time.perf_counter() - t0
        t0 = time.perf_counter()
        model.generate(ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, **kw)
        torch.cuda.synchronize()
        total = time.perf_counter() - t0
        best.append((total - t_prefill) / (new_tokens - 1))
    step = sorted(best)[len(best) // 2]
    return {"step_ms": step * 1e3, "tokens_per_s": batch / step}


def run_hyla(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        print(f"FAILED: {' '.join(cmd)}\n{r.stderr[-3000:]}")
        return {"tokens_per_s": float("nan"), "step_ms": float("nan")}
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hyla", required=True)
    ap.add_argument("--out")
    ap.add_argument("--prompt-len", type=int, default=512)
    ap.add_argument("--new-tokens", type=int, default=256)
    args = ap.parse_args()
    cfg = transformers.LlamaConfig(vocab_size=32000, hidden_size=768, intermediate_size=2048,
                                   num_hidden_layers=12, num_attention_heads=12, num_key_value_heads=4,
                                   max_position_embeddings=2048, bos_token_id=None, eos_token_id=None)
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(cfg).to(torch.bfloat16).cuda().eval()
    n_params = sum(p.numel() for p in model.parameters())
    rows = []
    with tempfile.TemporaryDirectory() as d:
        model.save_pretrained(d)
        for batch in (1, 16):
            hf = hf_decode(model, batch, args.prompt_len, args.new_tokens)
            base = [args.hyla, "bench", "generate", d, "--dtype", "bfloat16", "--batch", str(batch),
                    "--prompt-len", str(args.prompt_len), "--new-tokens", str(args.new_tokens)]
            hy = run_hyla(base)
            hy_eager = run_hyla(base + ["--no-graph"])
            rows.append({"batch": batch, "hf": hf, "hyla": hy, "hyla_eager": hy_eager})
    weight_bytes = n_params * 2
    floor_ms = weight_bytes / 3.0e12 * 1e3  # one read of the weights at ~3 TB/s (measured copy rate)
    print(f"model: {n_params/1e6:.1f}M params, bf16 weights {weight_bytes/1e6:.0f} MB; "
          f"HBM floor per step ~{floor_ms:.3f} ms; transformers {transformers.__version__}, torch {torch.__version__}, "
          f"{torch.cuda.get_device_name()}")
    print("| batch | transformers tok/s | hyla eager tok/s | hyla graph tok/s | speed-up | hyla step ms | floor ms |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['batch']} | {r['hf']['tokens_per_s']:.1f} | {r['hyla_eager']['tokens_per_s']:.1f} | "
              f"{r['hyla']['tokens_per_s']:.1f} | {r['hyla']['tokens_per_s'] / r['hf']['tokens_per_s']:.1f}x | "
              f"{r['hyla']['step_ms']:.3f} | {floor_ms:.3f} |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"rows": rows, "params": n_params, "floor_ms": floor_ms}, f, indent=1)


if __name__ == "__main__":
    main()
