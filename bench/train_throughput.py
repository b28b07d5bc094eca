"""Training throughput: hyla pretrain against the same model trained by PyTorch from
Python (eager, and torch.compile), in one run. ~125M-parameter Llama (hidden 768, 12
layers, 12 heads, 4 KV heads, vocab 32000), sequence 2048, bf16 autocast, fused AdamW.
Run on the device:
    python3 bench/train_throughput.py --hyla build-cuda/hyla --data data/teacher
Prints a markdown table of tokens/s and model FLOPs utilisation (MFU, against the
measured bf16 matmul rate of the card, ~790 TFLOP/s; the 989 datasheet figure is given too)."""
import argparse
import json
import os
import subprocess
import tempfile
import time

import torch
import transformers

CFG = dict(vocab_size=32000, hidden_size=768, intermediate_size=2048, num_hidden_layers=12,
           num_attention_heads=12, num_key_value_heads=4, max_position_embeddings=2048)
SEQ, BATCH = 2048, 8


def flops_per_token(n_params_no_embed, layers, d, seq):
    # 6N for the matmuls (forward + backward) plus attention scores/values: 6·L·d·T·(causal 1/2)·2
    return 6 * n_params_no_embed + 6 * layers * d * seq


def python_run(compile_model, steps=30, warm=10):
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(**CFG, attn_implementation="sdpa")
    model = transformers.LlamaForCausalLM(cfg).cuda().train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1, fused=True)
    fwd = torch.compile(model) if compile_model else model
    x = torch.randint(0, 8192, (BATCH, SEQ + 1), device="cuda")
    times = []
    for i in range(steps):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = fwd(input_ids=x[:, :-1]).logits
        loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.size(-1)), x[:, 1:].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    t = sorted(times[warm:])[len(times[warm:]) // 2]
    n = sum(p.numel() for p in model.parameters())
    del model, opt
    torch.cuda.empty_cache()
    return BATCH * SEQ / t, n


def hyla_run(hyla, data, steps=40):
    recipe = f"""
[run]
name = "bench-125m"
out_dir = "{tempfile.mkdtemp()}"
log_every = 1
eval_every = 0
save_every = 0
[model]
model_type = "llama"
vocab_size = {CFG['vocab_size']}
hidden_size = {CFG['hidden_size']}
intermediate_size = {CFG['intermediate_size']}
num_hidden_layers = {CFG['num_hidden_layers']}
num_attention_heads = {CFG['num_attention_heads']}
num_key_value_heads = {CFG['num_key_value_heads']}
max_position_embeddings = {CFG['max_position_embeddings']}
[data]
dir = "{data}"
seq_len = {SEQ}
batch_size = {BATCH}
[optim]
lr = 1e-4
warmup_steps = 0
steps = {steps}
"""
    path = os.path.join(tempfile.mkdtemp(), "r.toml")
    with open(path, "w") as f:
        f.write(recipe)
    out_dir = recipe.split('out_dir = "')[1].split('"')[0]
    subprocess.run([hyla, "pretrain", path], check=True, capture_output=True, text=True)
    rows = [json.loads(l) for l in open(os.path.join(out_dir, "metrics.jsonl")) if l.strip()]
    # tokens_per_s is cumulative from the start; the rate between steps 10 and the last:
    a, b = rows[9], rows[-1]
    t_a, t_b = a["tokens"] / a["tokens_per_s"], b["tokens"] / b["tokens_per_s"]
    return (b["tokens"] - a["tokens"]) / (t_b - t_a)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hyla", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out")
    args = ap.parse_args()
    eager, n = python_run(False)
    compiled, _ = python_run(True)
    hyla = hyla_run(args.hyla, args.data)
    n_embed = CFG["vocab_size"] * CFG["hidden_size"]
    fpt = flops_per_token(n - n_embed, CFG["num_hidden_layers"], CFG["hidden_size"], SEQ) + 6 * n_embed
    print(f"model {n/1e6:.1f}M params, seq {SEQ}, batch {BATCH}, {torch.cuda.get_device_name()}, torch {torch.__version__}")
    print("| trainer | tokens/s | MFU (vs 790 TFLOP/s measured) | MFU (vs 989 datasheet) |")
    print("|---|---|---|---|")
    res = {}
    for name, tps in [("PyTorch eager (Python)", eager), ("PyTorch torch.compile", compiled), ("hyla pretrain", hyla)]:
        res[name] = tps
        print(f"| {name} | {tps:,.0f} | {tps * fpt / 790e12:.1%} | {tps * fpt / 989e12:.1%} |")
    if args.out:
        json.dump(res, open(args.out, "w"))


if __name__ == "__main__":
    main()
