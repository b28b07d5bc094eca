"""`hyla export --format fla` through fla's REAL GatedDeltaNetForCausalLM on the GPU.

Two halves, so that the device needs no hyla build:
  HERE (CPU):   python scripts/device/check_fla_export.py --prepare .carry/fla_check \
                    --hyla build/hyla --testkit build/hyla_testkit
  DEVICE:       PYTHONPATH=/tmp/fla-site python3 scripts/device/check_fla_export.py \
                    --check .carry/fla_check --out $OUT/fla_export.json
(run_all.sh step `fla` installs the carried fla wheels and runs the device half; with
--hyla/--testkit and no --prepare/--check, both halves run on the device in a temp dir.)

Prepare, per case: a random transformers teacher (save_pretrained) -> `hyla hybrid` -> GDN
weights and norms redrawn (so a dropped tensor shows) -> `hyla export --format fla`, plus
token ids and hyla's logits on them (`hyla_testkit lm-logits`, CPU) in float64 (the
reference), float32 and bfloat16. T=48 takes fla's fused_recurrent path (T <= 64), T=200
its chunk path.

Check: fla runs on CUDA with its Triton kernels and the exported config (fuse_norm,
fuse_swiglu on), in float32 and bfloat16. The one stand-in: `fla.layers.attn.flash_attn_func`
(flash-attn is not installed) by PyTorch SDPA with flash-attn's causal mask and window
(w-1, 0), as oracles.md allows. Prints a table (dtype, max abs / max rel / norm-wise rel
logits error, argmax agreement; hyla's own float32 and bfloat16 runs for scale) and exits 1
if an fla error exceeds its bound (FP32_BOUND, BF16_FACTOR).
"""
import argparse
import copy
import json
import pathlib
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F
import transformers
from safetensors.torch import load_file, save_file

# Norm-wise relative error vs hyla float64 that fla may have: in float32, 5e-3 (Triton's
# float32 dots run in tf32); in bfloat16, twice what hyla's own bfloat16 run of the same
# model has (a few % through these random models: the rounding of bf16 weights and
# activations, not the export, sets it).
FP32_BOUND, BF16_FACTOR = 5e-3, 2.0
VOCAB = 256
LENGTHS = (48, 200)


def common(**kw):
    base = dict(vocab_size=VOCAB, hidden_size=128, intermediate_size=256, num_hidden_layers=4,
                num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=1024,
                initializer_range=0.08, rms_norm_eps=1e-6, bos_token_id=1, eos_token_id=2, pad_token_id=None)
    base.update(kw)
    return base


CASES = {  # head_dim 64 everywhere, as fla's kernels are used in practice
    "llama_gqa": (transformers.LlamaConfig, transformers.LlamaForCausalLM, common(),
                  ["--attention-every", "3", "--mixer", "gdn"]),
    # q/k/v bias, full (layer 0) + sliding (layer 3) attention, grouped and wider value
    # heads, beta in (0, 2).
    "qwen2_sliding_gva": (transformers.Qwen2Config, transformers.Qwen2ForCausalLM,
                          common(use_sliding_window=True, sliding_window=32, max_window_layers=3),
                          ["--attention-layers", "0,3", "--mixer", "gdn", "--linear-config",
                           json.dumps({"gdn": {"num_heads": 2, "num_v_heads": 4, "head_k_dim": 64,
                                               "head_v_dim": 128, "allow_neg_eigval": True}})]),
}


def sh(cmd):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"FAILED: {' '.join(map(str, cmd))}\n{r.stderr[-3000:]}")
    return r.stdout


def redraw_weights(path, hidden, seed=0):
    g = torch.Generator().manual_seed(seed)
    st = path / "model.safetensors"
    tensors = load_file(str(st))
    for name, t in tensors.items():
        if "linear_attn" in name and (name.endswith("proj.weight") or "conv1d" in name):
            tensors[name] = torch.randn(t.shape, generator=g) * (1 / hidden ** 0.5 if "proj" in name else 0.3)
        elif "norm" in name:
            tensors[name] = 1 + 0.3 * torch.randn(t.shape, generator=g)
        elif name.endswith("A_log"):
            tensors[name] = torch.rand(t.shape, generator=g).add(0.1).log()
    save_file(tensors, str(st), metadata={"format": "pt"})


def hyla_logits(testkit, path, ids, dtype, tmp):
    out = tmp / f"hyla-{dtype}-{ids.shape[1]}.f32"
    arg = ";".join(",".join(str(int(t)) for t in row) for row in ids)
    sh([testkit, "lm-logits", "--model", path, "--ids", arg, "--out", out, "--dtype", dtype])
    return np.fromfile(out, dtype=np.float32).reshape(ids.shape[0], ids.shape[1], -1)


def prepare(root, hyla, testkit):
    """Writes root/<case>/fla (the export) and root/<case>/hyla_T<T>.npz (ids, logits)."""
    with tempfile.TemporaryDirectory() as d:
        tmp = pathlib.Path(d)
        for case, (cfg_cls, model_cls, kw, hybrid_args) in CASES.items():
            torch.manual_seed(0)
            model_cls(cfg_cls(**kw)).save_pretrained(tmp / f"{case}-teacher")
            hybrid = tmp / f"{case}-hybrid"
            sh([hyla, "hybrid", tmp / f"{case}-teacher", "--out", hybrid, "--dtype", "float32", *hybrid_args])
            redraw_weights(hybrid, kw["hidden_size"])
            print(sh([hyla, "export", hybrid, "--format", "fla", "--out", root / case / "fla"]).strip())
            for T in LENGTHS:
                ids = torch.randint(0, VOCAB, (2, T), generator=torch.Generator().manual_seed(T))
                logits = {dt: hyla_logits(testkit, hybrid, ids, dt, tmp) for dt in ("float64", "float32", "bfloat16")}
                np.savez(root / case / f"hyla_T{T}.npz", ids=ids.numpy(), **logits)


def sdpa_flash_attn(q, k, v, causal=True, window_size=(-1, -1), **kw):
    """flash_attn_func(q, k, v [B, T, H, D]) through SDPA: same mask (bottom-right causal,
    window (w-1, 0)), scale 1/sqrt(D), grouped KV heads."""
    assert causal and not kw.get("softmax_scale") and not kw.get("dropout_p")
    tq, tk = q.shape[1], k.shape[1]
    qpos = torch.arange(tq, device=q.device).unsqueeze(1) + (tk - tq)
    dist = qpos - torch.arange(tk, device=q.device).unsqueeze(0)
    mask = dist >= 0
    if window_size[0] >= 0:
        mask &= dist <= window_size[0]
    o = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=mask,
                                       enable_gqa=True)
    return o.transpose(1, 2)


def errors(got, ref):
    got, ref = got.astype(np.float64), ref.astype(np.float64)
    d = np.abs(got - ref)
    return {"max_abs": float(d.max()), "max_rel": float(d.max() / np.abs(ref).max()),
            "rel": float(np.linalg.norm(got - ref) / np.linalg.norm(ref)),
            "argmax": float((got.argmax(-1) == ref.argmax(-1)).mean())}


def check(root):
    try:
        import fla
        import fla.layers.attn as fla_attn
    except ImportError as e:
        sys.exit(f"fla is not importable ({e}); install the carried wheels (run_all.sh step fla)")
    fla_attn.flash_attn_func = sdpa_flash_attn  # before any Attention is built (it checks)
    from fla.models import GatedDeltaNetForCausalLM
    print(f"fla {fla.__version__}, torch {torch.__version__}, transformers {transformers.__version__}, "
          f"{torch.cuda.get_device_name()}")
    rows = []
    for case in CASES:
        model, info = GatedDeltaNetForCausalLM.from_pretrained(root / case / "fla", output_loading_info=True)
        bad = {k: v for k, v in info.items() if k != "error_msgs" and v}
        if bad:
            sys.exit(f"{case}: fla did not load the export cleanly: {bad}")
        models = {"float32": model.cuda().eval(), "bfloat16": copy.deepcopy(model).to(torch.bfloat16).eval()}
        for T in LENGTHS:
            saved = np.load(root / case / f"hyla_T{T}.npz")
            ref, ids = saved["float64"], torch.from_numpy(saved["ids"])
            bound = {}
            for dtype in ("float32", "bfloat16"):
                e = errors(saved[dtype], ref)
                rows.append(dict(case=case, T=T, model="hyla cpu", dtype=dtype, **e))
                bound[dtype] = FP32_BOUND if dtype == "float32" else BF16_FACTOR * e["rel"]
            for dtype in ("float32", "bfloat16"):
                with torch.no_grad():
                    got = models[dtype](input_ids=ids.cuda(), use_cache=False).logits
                e = errors(got.float().cpu().numpy(), ref)
                ok = e["rel"] <= bound[dtype] and np.isfinite(e["max_abs"])
                rows.append(dict(case=case, T=T, model="fla cuda", dtype=dtype, bound=bound[dtype], ok=bool(ok), **e))
    print("\nlogits vs hyla float64 (CPU); max rel = max|diff| / max|ref|, rel(norm) = ||diff|| / ||ref||")
    print(f"{'case':<18} {'T':>4} {'model':<9} {'dtype':<9} {'max abs':>9} {'max rel':>9} {'rel(norm)':>9} "
          f"{'argmax':>7}  bound")
    for r in rows:
        verdict = "" if "ok" not in r else f"{r['bound']:.1e} {'ok' if r['ok'] else 'FAIL'}"
        print(f"{r['case']:<18} {r['T']:>4} {r['model']:<9} {r['dtype']:<9} {r['max_abs']:>9.2e} {r['max_rel']:>9.2e} "
              f"{r['rel']:>9.2e} {r['argmax']:>7.4f}  {verdict}")
    return {"fla": fla.__version__, "torch": torch.__version__, "device": torch.cuda.get_device_name(), "rows": rows}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prepare", type=pathlib.Path, help="write exports and hyla logits here (needs --hyla, --testkit)")
    ap.add_argument("--check", type=pathlib.Path, help="run fla on what --prepare wrote")
    ap.add_argument("--hyla")
    ap.add_argument("--testkit")
    ap.add_argument("--out", help="results as JSON")
    args = ap.parse_args()
    if args.prepare:
        if not (args.hyla and args.testkit):
            ap.error("--prepare needs --hyla and --testkit")
        prepare(args.prepare, args.hyla, args.testkit)
        return
    if args.check:
        result = check(args.check)
    elif args.hyla and args.testkit:
        with tempfile.TemporaryDirectory() as d:
            prepare(pathlib.Path(d), args.hyla, args.testkit)
            result = check(pathlib.Path(d))
    else:
        ap.error("give --prepare DIR, --check DIR, or --hyla and --testkit")
    if args.out:
        pathlib.Path(args.out).write_text(json.dumps(result, indent=1))
    sys.exit(0 if all(r.get("ok", True) for r in result["rows"]) else 1)


if __name__ == "__main__":
    main()
