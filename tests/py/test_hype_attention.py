"""HypeNet's attention layers as published (methods.md §6.1; HALO's Qwen3Attention in
halo/modeling/hypenet/modeling_qwen3.py): no RoPE, HALO's sigmoid output gate
o_proj(attn ⊙ σ(o_gate x)), and the query logit scale switch: none, a constant c (training
and inference), or s_t = ln(t + a)/ln(a) at inference only (HALO trains with the scale off
and turns it on for inference).

Oracle: transformers' Llama in float64 with every layer's mixer replaced: HypeNet
(Lightning) layers by the reference test_mixers trusts, attention layers by the formula
written out below in float64.
"""
import json
import math

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from conftest import run
from mixer_oracle import rel_err
from test_hybrid import HEAD_DIM, HEADS, KV_HEADS, VOCAB, _Mixer, hyla_logits, make_hybrid, make_teacher, oracle_model

LAYERS = ["full_attention", "hypenet", "full_attention", "hypenet"]
BASE = 8.0  # a small a, so that s_t moves far from 1 within the test's 60 tokens


def hype_attention(w, x, scale):
    """NoPE softmax attention, queries times `scale` ([T] or a number), sigmoid output gate."""
    B, T, _ = x.shape
    q = F.linear(x, w["q_proj.weight"]).view(B, T, HEADS, HEAD_DIM)
    k = F.linear(x, w["k_proj.weight"]).view(B, T, KV_HEADS, HEAD_DIM).repeat_interleave(HEADS // KV_HEADS, 2)
    v = F.linear(x, w["v_proj.weight"]).view(B, T, KV_HEADS, HEAD_DIM).repeat_interleave(HEADS // KV_HEADS, 2)
    q = q * (scale.view(1, T, 1, 1) if torch.is_tensor(scale) else scale)
    logits = torch.einsum("bthd,bshd->bhts", q, k) / math.sqrt(HEAD_DIM)
    logits = logits.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf"))
    o = torch.einsum("bhts,bshd->bthd", logits.softmax(-1), v).reshape(B, T, HEADS * HEAD_DIM)
    return F.linear(o * torch.sigmoid(F.linear(x, w["o_gate.weight"])), w["o_proj.weight"])


def position_scale(T, a):
    t = torch.arange(T, dtype=torch.float64)
    return torch.log(t + a) / math.log(a)


def oracle(teacher, hybrid, scale_fn):
    model = oracle_model(teacher, hybrid)
    t = {k: v.double() for k, v in load_file(hybrid / "model.safetensors").items()}
    for i, kind in enumerate(LAYERS):
        if kind == "full_attention":
            p = f"model.layers.{i}.self_attn."
            w = {k[len(p):]: v for k, v in t.items() if k.startswith(p)}
            model.model.layers[i].self_attn = _Mixer(lambda x, w=w: hype_attention(w, x, scale_fn(x.shape[1])))
    return model


def set_scale(hybrid, **fields):
    cfg = json.loads((hybrid / "config.json").read_text())
    cfg.update(fields)
    (hybrid / "config.json").write_text(json.dumps(cfg))


def test_hype_student_gets_the_gate_and_its_init(tmp_path, hyla_bin):
    teacher = tmp_path / "teacher"
    make_teacher(teacher, seed=2, num_hidden_layers=len(LAYERS))
    t = load_file(teacher / "model.safetensors")
    for init in ("neutral", "halo"):
        out = make_hybrid(hyla_bin, teacher, tmp_path / init, layers=LAYERS,
                          extra=["--hype", "--attention-gate-init", init])
        cfg = json.loads((out / "config.json").read_text())
        assert cfg["attention_output_gate"] and cfg["attention_logit_scale"] == "position"
        assert cfg["attention_logn_base"] == 500
        s = load_file(out / "model.safetensors")
        gate, o = s["model.layers.0.self_attn.o_gate.weight"], s["model.layers.0.self_attn.o_proj.weight"]
        assert gate.shape == (HEADS * HEAD_DIM, 64) and "model.layers.0.self_attn.o_gate.bias" not in s
        if init == "neutral":  # σ(0) = 1/2 and o_proj × 2: the layer computes the teacher's output
            assert not gate.any() and torch.equal(o, 2 * t["model.layers.0.self_attn.o_proj.weight"])
        else:  # HALO: N(0, 0.02), o_proj unchanged
            assert abs(gate.std().item() - 0.02) < 0.002 and torch.equal(o, t["model.layers.0.self_attn.o_proj.weight"])


def test_neutral_gate_leaves_the_model_bit_exact(tmp_path, hyla_bin, testkit_bin):
    teacher = tmp_path / "teacher"
    make_teacher(teacher, seed=3, num_hidden_layers=2)
    gated = tmp_path / "gated"
    run([hyla_bin, "hybrid", teacher, "--out", gated, "--layer-types", "full_attention,full_attention",
         "--attention-output-gate", "on", "--dtype", "float32"])
    ids = torch.randint(0, VOCAB, (2, 30), generator=torch.Generator().manual_seed(1))
    assert torch.equal(hyla_logits(testkit_bin, gated, ids, tmp_path, "float32"),
                       hyla_logits(testkit_bin, teacher, ids, tmp_path, "float32"))


def test_logit_scale_switch_matches_float64(tmp_path, hyla_bin, testkit_bin):
    teacher = tmp_path / "teacher"
    make_teacher(teacher, seed=4, num_hidden_layers=len(LAYERS))
    hybrid = make_hybrid(hyla_bin, teacher, tmp_path / "hype", layers=LAYERS,
                         extra=["--hype", "--hype-base", str(BASE), "--attention-gate-init", "halo"])
    st = hybrid / "model.safetensors"
    t = load_file(st)
    g = torch.Generator().manual_seed(5)
    for name in t:
        if ".o_gate." in name:  # a gate far from 1/2, so that a dropped gate shows
            t[name] = 0.5 * torch.randn(t[name].shape, generator=g)
    save_file(t, st, metadata={"format": "pt"})
    ids = torch.randint(0, VOCAB, (2, 60), generator=torch.Generator().manual_seed(6))
    scales = {"position": lambda T: position_scale(T, BASE), "none": lambda T: 1.0, "constant": lambda T: 1.7}
    refs = {}
    for name, fn in scales.items():
        with torch.no_grad():
            refs[name] = oracle(teacher, hybrid, fn)(ids).logits
    # Eval (inference): s_t; training mode: none, as HALO trains.
    eval_err = rel_err(hyla_logits(testkit_bin, hybrid, ids, tmp_path), refs["position"])
    train = run_train_mode(testkit_bin, hybrid, ids, tmp_path)
    train_err = rel_err(train, refs["none"])
    set_scale(hybrid, attention_logit_scale="constant", attention_logit_scale_constant=1.7)
    const_err = rel_err(hyla_logits(testkit_bin, hybrid, ids, tmp_path), refs["constant"])
    const_train_err = rel_err(run_train_mode(testkit_bin, hybrid, ids, tmp_path), refs["constant"])
    set_scale(hybrid, attention_logit_scale="none")
    none_err = rel_err(hyla_logits(testkit_bin, hybrid, ids, tmp_path), refs["none"])
    gap = rel_err(refs["position"], refs["none"])
    print(f"HyPE attention vs float64: position (eval) {eval_err:.1e}, position in training = none {train_err:.1e}, "
          f"constant {const_err:.1e} / training {const_train_err:.1e}, none {none_err:.1e}; "
          f"position vs none differ by {gap:.2f}")
    # Float32-limited as in test_hybrid (RoPE cos/sin and the Lightning reference in float32).
    for e in (eval_err, train_err, const_err, const_train_err, none_err):
        assert e < 1e-5
    assert gap > 1e-2


def run_train_mode(testkit, model, ids, tmp_path):
    out = tmp_path / "train.bin"
    run([testkit, "lm-logits", "--model", model, "--ids", ";".join(",".join(map(str, r.tolist())) for r in ids),
         "--out", out, "--dtype", "float64", "--out-dtype", "float64", "--train-mode"])
    return torch.from_numpy(np.fromfile(out, dtype=np.float64).reshape(ids.shape[0], ids.shape[1], -1))


def test_position_scale_decodes_like_the_reference(tmp_path, hyla_bin, testkit_bin):
    # Greedy decoding (static cache): the scale of each new token is that of its absolute position.
    teacher = tmp_path / "teacher"
    make_teacher(teacher, seed=7, num_hidden_layers=len(LAYERS))
    hybrid = make_hybrid(hyla_bin, teacher, tmp_path / "hype", layers=LAYERS, extra=["--hype", "--hype-base", str(BASE)])
    ids = torch.randint(0, VOCAB, (1, 16), generator=torch.Generator().manual_seed(8))
    got = json.loads(run([testkit_bin, "lm-generate", "--model", hybrid, "--ids", ",".join(map(str, ids[0].tolist())),
                          "-n", "10", "--dtype", "float64"]).stdout)[0]
    seq = ids
    model = oracle(teacher, hybrid, lambda T: position_scale(T, BASE))
    with torch.no_grad():
        for _ in range(10):  # no cache: a full forward per token
            seq = torch.cat([seq, model(seq).logits[:, -1].argmax(-1, keepdim=True)], 1)
    assert got == seq[0, 16:].tolist()
