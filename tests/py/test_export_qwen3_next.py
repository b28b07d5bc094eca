"""`hyla export --format qwen3-next`, and hyla reading Qwen3-Next checkpoints, against
transformers' own Qwen3NextForCausalLM (5.x) on its torch path.

Random transformers teachers (float32, `save_pretrained`) become GDN hybrids with
`hyla hybrid --dtype float32`; every norm, GDN weight, gate and bias is then redrawn so
that a dropped, misplaced or mis-centred tensor shows in the logits. The norms are drawn
in [0.5, 1.5], where w - 1 and (w - 1) + 1 are exact in binary floating point, so the
round trip through the layout can be asserted bit for bit. `hyla export` writes the
Qwen3-Next checkpoint; transformers' `Qwen3NextForCausalLM.from_pretrained` loads it (no
missing, unexpected or mismatched keys) and its float64 logits and greedy tokens are
compared with hyla's on the original hybrid (`hyla_testkit lm-logits`, `lm-generate`).

The oracle runs in a separate process that blocks `fla` before importing transformers
(qwen3_next_oracle.py; oracles.md "transformers' Qwen3-Next on CPU"): with fla importable,
transformers binds Qwen3-Next's gated delta rule to fla's Triton kernels, which need a GPU.
Its torch path computes the GDN recurrence, the L2 norms and its RMSNorm statistics in
float32 even in a float64 model, so agreement is float32-limited, as in the fla test.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import transformers
from safetensors.torch import load_file, save_file

from conftest import run

VOCAB, T = 256, 40
HERE = os.path.dirname(os.path.abspath(__file__))
# Tolerances of the fla export test (test_export_fla.py): hyla float64 / float32 vs the
# oracle in float64, norm-wise relative.
TOL64 = 2e-6
TOL32 = 1e-5


def _common(**kw):
    base = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=4, num_attention_heads=4,
                num_key_value_heads=2, max_position_embeddings=128, initializer_range=0.25, rms_norm_eps=1e-6,
                bos_token_id=1, eos_token_id=2, pad_token_id=None)
    base.update(kw)
    return base


GVA = json.dumps({"gdn": {"num_heads": 2, "num_v_heads": 4, "head_k_dim": 16, "head_v_dim": 24}})
# name: (config class, model class, config, `hyla hybrid` arguments)
CASES = {
    # GQA, untied head, grouped and wider GDN value heads.
    "qwen3_gqa": (transformers.Qwen3Config, transformers.Qwen3ForCausalLM, _common(head_dim=16, rope_theta=5000.0),
                  ["--attention-every", "2", "--linear-config", GVA]),
    # Tied embeddings, q/k/v/o biases, and HALO's output gate (with its bias) carried as
    # Qwen3-Next's gate rows instead of zeros.
    "qwen3_tied_bias_gate": (transformers.Qwen3Config, transformers.Qwen3ForCausalLM,
                             _common(head_dim=16, tie_word_embeddings=True, attention_bias=True),
                             ["--attention-layers", "1,2", "--attention-output-gate", "on", "--attention-gate-init",
                              "halo"]),
    # Llama: no QK-norm of its own; llama3 RoPE scaling passes through rope_parameters.
    "llama_qk_norm": (transformers.LlamaConfig, transformers.LlamaForCausalLM,
                      _common(rope_parameters=dict(rope_type="llama3", rope_theta=500000.0, factor=8.0,
                                                   low_freq_factor=1.0, high_freq_factor=4.0,
                                                   original_max_position_embeddings=16)),
                      ["--attention-every", "2", "--attention-qk-norm"]),
    # Qwen2: q/k/v bias without an o_proj bias (written as zeros), tied head.
    "qwen2_qk_norm": (transformers.Qwen2Config, transformers.Qwen2ForCausalLM, _common(tie_word_embeddings=True),
                      ["--attention-every", "3", "--attention-qk-norm"]),
}
# A Qwen3-Next hybrid written by transformers: dense MLPs (every layer in mlp_only_layers,
# num_experts left at its default), q/k/v/o biases, partial rotary at the default 0.25.
WRITTEN = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=4, num_attention_heads=4,
               num_key_value_heads=2, head_dim=16, max_position_embeddings=128, rms_norm_eps=1e-6, attention_bias=True,
               layer_types=["linear_attention", "full_attention", "linear_attention", "full_attention"],
               linear_num_key_heads=2, linear_num_value_heads=4, linear_key_head_dim=16, linear_value_head_dim=8,
               linear_conv_kernel_dim=4, mlp_only_layers=[0, 1, 2, 3], bos_token_id=1, eos_token_id=2)


def make_teacher(name, path):
    cfg_cls, model_cls, kw, _ = CASES[name]
    torch.manual_seed(sum(map(ord, name)))
    model_cls(cfg_cls(**kw)).eval().save_pretrained(path)
    return path


def redraw(path, seed=0):
    g = torch.Generator().manual_seed(seed)
    st = path / "model.safetensors"
    t = load_file(str(st))
    for name, v in t.items():
        if "norm" in name:
            t[name] = 0.5 + torch.rand(v.shape, generator=g)
        elif name.endswith("A_log"):
            t[name] = torch.rand(v.shape, generator=g).add(0.1).log()
        elif "linear_attn" in name and not name.endswith("dt_bias") or "o_gate" in name:
            t[name] = 0.3 * torch.randn(v.shape, generator=g)
        elif name.endswith("bias") and "self_attn" in name:
            t[name] = 0.1 * torch.randn(v.shape, generator=g)
    save_file(t, str(st), metadata={"format": "pt"})


def ids_arg(ids):
    return ";".join(",".join(str(int(x)) for x in row) for row in ids)


def hyla_logits(testkit, path, ids, dtype, tmp):
    out = tmp / f"logits-{path.name}-{dtype}.bin"
    run([testkit, "lm-logits", "--model", path, "--ids", ids_arg(ids), "--out", out, "--dtype", dtype, "--out-dtype",
         dtype])
    raw = np.fromfile(out, dtype=np.float64 if dtype == "float64" else np.float32)
    return raw.reshape(ids.shape[0], ids.shape[1], -1)


def hyla_greedy(testkit, path, prompt, n):
    r = run([testkit, "lm-generate", "--model", path, "--ids", ids_arg(prompt), "-n", str(n), "--dtype", "float64"])
    return json.loads(r.stdout)[0]


def rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def export(hyla_bin, src, out, check=True):
    return run([hyla_bin, "export", src, "--format", "qwen3-next", "--out", out], check=check)


IDS = torch.randint(0, VOCAB, (2, T), generator=torch.Generator().manual_seed(3))
PROMPT = torch.randint(3, VOCAB, (1, 12), generator=torch.Generator().manual_seed(4))
NEW = 8


@pytest.fixture(scope="module")
def world(tmp_path_factory, hyla_bin):
    """Every hybrid exported, a transformers-written Qwen3-Next made, and the oracle run on
    all of them in one process."""
    d = tmp_path_factory.mktemp("q3n")
    jobs = []
    for name, (_, _, _, args) in CASES.items():
        hybrid = d / f"hybrid-{name}"
        run([hyla_bin, "hybrid", make_teacher(name, d / name), "--out", hybrid, "--dtype", "float32", *args])
        redraw(hybrid)
        export(hyla_bin, hybrid, d / f"q3n-{name}")
        jobs.append({"op": "run", "name": name, "dir": str(d / f"q3n-{name}"), "ids": IDS.tolist(),
                     "prompt": PROMPT.tolist(), "new_tokens": NEW, "out": str(d / f"ref-{name}.npy")})
    jobs.append({"op": "make", "dir": str(d / "written"), "config": WRITTEN, "seed": 7})
    jobs.append({"op": "run", "name": "written", "dir": str(d / "written"), "ids": IDS.tolist(),
                 "prompt": PROMPT.tolist(), "new_tokens": NEW, "out": str(d / "ref-written.npy")})
    (d / "jobs.json").write_text(json.dumps(jobs))
    r = subprocess.run([sys.executable, os.path.join(HERE, "qwen3_next_oracle.py"), d / "jobs.json", d / "results.json"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return d, json.loads((d / "results.json").read_text())


@pytest.mark.parametrize("case", list(CASES))
def test_transformers_loads_export_and_logits_match(case, world, testkit_bin, tmp_path):
    d, results = world
    res = results[case]
    for key in ("missing_keys", "unexpected_keys", "mismatched_keys"):
        assert not res[key], (key, res[key])
    cfg = json.loads((d / f"q3n-{case}" / "config.json").read_text())
    assert cfg["model_type"] == "qwen3_next" and cfg["architectures"] == ["Qwen3NextForCausalLM"]
    assert cfg["mlp_only_layers"] == list(range(4)) and cfg["rope_parameters"]["partial_rotary_factor"] == 1.0
    ref = np.load(d / f"ref-{case}.npy")
    hybrid = d / f"hybrid-{case}"
    got64 = hyla_logits(testkit_bin, hybrid, IDS, "float64", tmp_path)
    got32 = hyla_logits(testkit_bin, hybrid, IDS, "float32", tmp_path)
    e64, e32 = rel(got64, ref), rel(got32, ref)
    print(f"{case}: logits rel. error vs transformers Qwen3-Next float64: hyla float64 {e64:.2e}, "
          f"hyla float32 {e32:.2e} (transformers {res['transformers']})")
    assert e64 <= TOL64 and e32 <= TOL32
    assert (got32.argmax(-1) == ref.argmax(-1)).all()
    assert hyla_greedy(testkit_bin, hybrid, PROMPT, NEW) == res["greedy"]


@pytest.mark.parametrize("case", list(CASES))
def test_round_trip_is_bit_exact(case, world, hyla_bin, testkit_bin, tmp_path):
    # hyla reads the export back: float32 logits equal the hybrid's bit for bit, and
    # exporting what it read writes the same tensors and config again.
    d, _ = world
    q3n = d / f"q3n-{case}"
    assert np.array_equal(hyla_logits(testkit_bin, q3n, IDS, "float32", tmp_path),
                          hyla_logits(testkit_bin, d / f"hybrid-{case}", IDS, "float32", tmp_path))
    export(hyla_bin, q3n, tmp_path / "again")
    a, b = load_file(str(q3n / "model.safetensors")), load_file(str(tmp_path / "again" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((tmp_path / "again" / "config.json").read_text()) == json.loads((q3n / "config.json").read_text())


def test_attention_is_carried_exactly(world):
    # A Qwen3 teacher's attention without a gate: zero gate rows (σ(0) = 1/2) and o_proj × 2.
    d, _ = world
    src = load_file(str(d / "hybrid-qwen3_gqa" / "model.safetensors"))
    out = load_file(str(d / "q3n-qwen3_gqa" / "model.safetensors"))
    q = out["model.layers.0.self_attn.q_proj.weight"].view(4, 2, 16, 64)
    assert torch.equal(q[:, 0].reshape(64, 64), src["model.layers.0.self_attn.q_proj.weight"])
    assert not q[:, 1].any()
    assert torch.equal(out["model.layers.0.self_attn.o_proj.weight"], 2 * src["model.layers.0.self_attn.o_proj.weight"])
    assert torch.equal(out["model.layers.0.input_layernorm.weight"], src["model.layers.0.input_layernorm.weight"] - 1)
    assert torch.equal(out["model.layers.1.linear_attn.norm.weight"], src["model.layers.1.linear_attn.o_norm.weight"])


def test_transformers_written_checkpoint_is_read_exactly(world, hyla_bin, testkit_bin, tmp_path):
    d, results = world
    ref = np.load(d / "ref-written.npy")
    got64 = hyla_logits(testkit_bin, d / "written", IDS, "float64", tmp_path)
    got32 = hyla_logits(testkit_bin, d / "written", IDS, "float32", tmp_path)
    e64, e32 = rel(got64, ref), rel(got32, ref)
    print(f"transformers-written Qwen3-Next read by hyla: rel. error hyla float64 {e64:.2e}, float32 {e32:.2e}")
    assert e64 <= TOL64 and e32 <= TOL32
    assert (got32.argmax(-1) == ref.argmax(-1)).all()
    assert hyla_greedy(testkit_bin, d / "written", PROMPT, NEW) == results["written"]["greedy"]
    # Written back by hyla: transformers' own tensors, bit for bit.
    export(hyla_bin, d / "written", tmp_path / "again")
    a, b = load_file(str(d / "written" / "model.safetensors")), load_file(str(tmp_path / "again" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


REFUSALS = {  # teacher, hybrid arguments, what the message must name
    "no_qk_norm": ("llama_qk_norm", ["--attention-every", "2"], ["layer 0 (full_attention)", "QK-norm",
                                                                "--attention-qk-norm"]),
    "dsla_layer": ("qwen3_gqa", ["--attention-every", "2", "--mixer", "dsla"], ["layer 1 (dsla)"]),
    "hypenet_layer": ("qwen3_gqa", ["--attention-every", "2", "--mixer", "hypenet"], ["layer 1 (hypenet)"]),
    "hype": ("qwen3_gqa", ["--attention-every", "2", "--hype"], ["layer 0 (full_attention)", "attention_nope"]),
    "no_short_conv": ("qwen3_gqa", ["--attention-every", "2", "--linear-config", '{"use_short_conv": false}'],
                      ["layer 1 (gdn)", "use_short_conv"]),
    "neg_eigval": ("qwen3_gqa", ["--attention-every", "2", "--linear-config", '{"allow_neg_eigval": true}'],
                   ["layer 1 (gdn)", "allow_neg_eigval"]),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_inexpressible_models_are_refused(case, tmp_path, hyla_bin):
    teacher, args, needles = REFUSALS[case]
    hybrid = tmp_path / "hybrid"
    run([hyla_bin, "hybrid", make_teacher(teacher, tmp_path / "teacher"), "--out", hybrid, "--dtype", "float32", *args])
    out = tmp_path / "q3n"
    r = export(hyla_bin, hybrid, out, check=False)
    print(f"{case}: {r.stderr.strip()}")
    assert r.returncode != 0 and r.stderr.count("\n") == 1
    for n in needles:
        assert n in r.stderr, (n, r.stderr)
    assert not out.exists() or not any(out.iterdir())


def test_moe_checkpoints_are_refused(tmp_path, hyla_bin):
    cfg = dict(WRITTEN, model_type="qwen3_next", mlp_only_layers=[0, 2], num_experts=8)
    (tmp_path / "moe").mkdir()
    (tmp_path / "moe" / "config.json").write_text(json.dumps(cfg))
    r = run([hyla_bin, "info", tmp_path / "moe"], check=False)
    print(r.stderr.strip())
    assert r.returncode != 0 and "layer 1" in r.stderr and "mixture-of-experts" in r.stderr
