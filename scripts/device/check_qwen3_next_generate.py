"""Greedy text of `hyla generate` vs transformers' `generate` on a hyla student exported
to the Qwen3-Next layout (docs/qwen3-next.md "On the GPU"), bfloat16, on the GPU.

Both steps run ON THE DEVICE (scripts/device/check_qwen3_next.sh, after the CUDA build):
    python3 scripts/device/check_qwen3_next_generate.py --prepare /tmp/q3n_check --hyla build-cuda/hyla
  writes two models of assets/teacher-small in the Qwen3-Next layout (bfloat16): the
  teacher itself with --attention-qk-norm (all attention) and a 25%-attention GDN student.
    python3 scripts/device/check_qwen3_next_generate.py --check /tmp/q3n_check --hyla build-cuda/hyla \
        --out $OUT/q3n_generate.json [--fla-site DIR]
  runs `hyla generate --device cuda --dtype bfloat16` and transformers'
  Qwen3NextForCausalLM.generate in bfloat16 on CUDA: once with fla blocked (transformers'
  torch path) and, when --fla-site holds fla, with fla's Triton kernels, the path
  transformers takes by default when fla is installed. Prints a table and writes JSON.
"""
import argparse
import json
import os
import subprocess
import sys
import time

PROMPTS = ["Once upon a time", "The old man looked at the", "In the morning, the children"]
NEW_TOKENS = 48


def prepare(out, hyla, teacher, also=()):
    """also: NAME=DIR pairs, students made elsewhere (a calibrated one, say), exported too."""
    os.makedirs(out, exist_ok=True)
    runs = os.path.join(out, "tmp")
    jobs = {"teacher-qknorm": ["--layer-types", ",".join(["full_attention"] * 8)],
            "student-gdn": ["--attention-every", "4"]}
    for name, args in jobs.items():
        src = os.path.join(runs, name)
        subprocess.run([hyla, "hybrid", teacher, "--out", src, "--attention-qk-norm", "--mixer", "gdn", *args],
                       check=True, capture_output=True)
        subprocess.run([hyla, "export", src, "--format", "qwen3-next", "--out", os.path.join(out, name),
                        "--dtype", "bfloat16"], check=True)
    names = list(jobs)
    for pair in also:
        name, src = pair.split("=", 1)
        subprocess.run([hyla, "export", src, "--format", "qwen3-next", "--out", os.path.join(out, name),
                        "--dtype", "bfloat16"], check=True)
        names.append(name)
    subprocess.run(["rm", "-rf", runs], check=True)
    json.dump({"prompts": PROMPTS, "new_tokens": NEW_TOKENS, "models": names},
              open(os.path.join(out, "plan.json"), "w"))


def transformers_worker(model_dir, prompts, new_tokens, use_fla):
    """Runs in its own process: fla blocked or importable decides the kernels at import."""
    if not use_fla:
        sys.modules["fla"] = None
        sys.modules["causal_conv1d"] = None
    import torch
    import transformers
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    model = transformers.Qwen3NextForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16).cuda().eval()
    out = []
    for p in prompts:
        ids = torch.tensor([tok.encode(p, add_special_tokens=True).ids], device="cuda")
        t0 = time.time()
        with torch.no_grad():
            gen = model.generate(ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                                 pad_token_id=0)
        new = gen[0, ids.shape[1]:].tolist()
        out.append({"ids": new, "text": tok.decode(new, skip_special_tokens=True), "seconds": time.time() - t0})
    fla_loaded = "fla" in sys.modules and sys.modules["fla"] is not None
    return {"runs": out, "fla_loaded": fla_loaded, "transformers": transformers.__version__,
            "torch": torch.__version__}


def hyla_generate(hyla, model_dir, prompt, new_tokens):
    r = subprocess.run([hyla, "generate", model_dir, "-p", prompt, "-n", str(new_tokens), "--device", "cuda",
                        "--dtype", "bfloat16", "--ignore-eos", "--no-stream"], capture_output=True, text=True)
    if r.returncode != 0:
        return {"error": r.stderr.strip()}
    text = r.stdout.rstrip("\n")
    return {"text": text[len(prompt):] if text.startswith(prompt) else text}


def check(src, hyla, out, fla_site):
    plan = json.load(open(os.path.join(src, "plan.json")))
    result = {"models": {}}
    for name in plan["models"]:
        model_dir = os.path.join(src, name)
        rows = {"hyla": [hyla_generate(hyla, model_dir, p, plan["new_tokens"]) for p in plan["prompts"]]}
        for mode in (["torch", "fla"] if fla_site else ["torch"]):
            env = dict(os.environ)
            if mode == "fla":
                env["PYTHONPATH"] = fla_site + (":" + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
            r = subprocess.run([sys.executable, __file__, "--worker", model_dir, "--fla", str(mode == "fla")],
                               capture_output=True, text=True, env=env)
            rows[mode] = json.loads(r.stdout.strip().splitlines()[-1]) if r.returncode == 0 else {"error": r.stderr[-2000:]}
        result["models"][name] = rows
        for mode in ("torch", "fla"):
            if mode not in rows:
                continue
            if "error" in rows[mode]:
                print(f"{name} transformers ({mode}): ERROR {rows[mode]['error'][-400:]}")
                continue
            for i, p in enumerate(plan["prompts"]):
                h, t = rows["hyla"][i], rows[mode]["runs"][i]
                same = h.get("text") == t["text"]
                print(f"{name:15s} {mode:5s} prompt {i}: {'SAME' if same else 'DIFFERENT'} text "
                      f"({plan['new_tokens']} tokens; fla loaded: {rows[mode]['fla_loaded']})")
                if not same:
                    a, b = h.get("text", ""), t["text"]
                    k = next((j for j in range(min(len(a), len(b))) if a[j] != b[j]), min(len(a), len(b)))
                    print(f"   first {k} characters agree")
                    print(f"   hyla:         {h.get('text', h.get('error'))!r}\n   transformers: {t['text']!r}")
    json.dump(result, open(out, "w"), indent=1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prepare")
    ap.add_argument("--check")
    ap.add_argument("--worker")
    ap.add_argument("--fla", default="False")
    ap.add_argument("--hyla")
    ap.add_argument("--teacher", default="assets/teacher-small")
    ap.add_argument("--out", default="q3n_generate.json")
    ap.add_argument("--fla-site")
    ap.add_argument("--also", action="append", default=[], help="NAME=DIR: export this student too")
    a = ap.parse_args()
    if a.worker:
        plan = json.load(open(os.path.join(os.path.dirname(a.worker.rstrip("/")), "plan.json")))
        print(json.dumps(transformers_worker(a.worker, plan["prompts"], plan["new_tokens"], a.fla == "True")))
    elif a.prepare:
        prepare(a.prepare, a.hyla, a.teacher, a.also)
    else:
        check(a.check, a.hyla, a.out, a.fla_site)


if __name__ == "__main__":
    main()
