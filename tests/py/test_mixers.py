"""DSLA and HypeNet (Lightning attention) mixers against outside references on CPU.

Oracles:
  * ops: fla's `fla.ops.gla.naive.naive_recurrent_gla` (per-key-dim gates, DSLA's states)
    and `fla.ops.simple_gla.naive.naive_recurrent_simple_gla` / `naive_chunk_simple_gla`
    (scalar decay, Lightning's g_gamma = -slope), all float32 as fla ships them.
  * DSLA layer: the reference layer (utnslab/DSLA-Serve src/layer.py, dsla.md) written
    out below with torch ops and fla's naive GLA for its two states.
  * HypeNet layer: HALO's LightningAttention (methods.md §6.1) written out below with
    transformers' Qwen3RMSNorm, Qwen3RotaryEmbedding and apply_rotary_pos_emb, fla's naive
    simple-GLA recurrence, and ALiBi slopes as HALO computes them.
"""
import json

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from conftest import F32_TOL, run
from mixer_oracle import alibi_slopes, rel_err, run_op, save

import fla.ops.gla.naive as gla_naive
import fla.ops.simple_gla.naive as sgla_naive


@pytest.mark.parametrize("shape", [(2, 100, 2, 16, 32, 0.1), (1, 64, 3, 8, 8, 50.0), (2, 1, 2, 8, 4, 1.0)])
def test_gla_ops_match_fla_naive(testkit_bin, tmp_path, shape):
    B, T, H, K, V, scale = shape
    torch.manual_seed(5)
    q, k, v = torch.randn(B, T, H, K), torch.randn(B, T, H, K) / K ** 0.5, torch.randn(B, T, H, V)
    gk = (-scale * F.softplus(torch.randn(B, T, H, K))).clamp_min(-50)
    s0 = torch.randn(B, H, K, V)
    ref_o, ref_s = gla_naive.naive_recurrent_gla(q, k, v, gk, initial_state=s0, output_final_state=True)
    for form, (o, s) in run_op(testkit_bin, tmp_path, "gated_linear", "all",
                               q=q, k=k, v=v, g=gk, initial_state=s0).items():
        assert rel_err(o, ref_o) < F32_TOL, form
        assert rel_err(s, ref_s) < F32_TOL, form


@pytest.mark.parametrize("shape", [(2, 150, 4, 16, 16), (1, 63, 16, 8, 8), (1, 1, 2, 8, 8)])
def test_simple_gla_ops_match_fla_naive(testkit_bin, tmp_path, shape):
    B, T, H, K, V = shape
    torch.manual_seed(6)
    q, k, v = torch.randn(B, T, H, K), torch.randn(B, T, H, K), torch.randn(B, T, H, V)
    g = -torch.tensor(alibi_slopes(H), dtype=torch.float32).expand(B, T, H).contiguous()
    s0 = torch.randn(B, H, K, V)
    ref_o, ref_s = sgla_naive.naive_recurrent_simple_gla(q, k, v, g, initial_state=s0, output_final_state=True)
    ch_o, ch_s = sgla_naive.naive_chunk_simple_gla(q, k, v, g, initial_state=s0, output_final_state=True)
    assert rel_err(ch_o, ref_o) < F32_TOL
    for form, (o, s) in run_op(testkit_bin, tmp_path, "gated_linear", "all", q=q, k=k, v=v, g=g,
                               initial_state=s0).items():
        assert rel_err(o, ref_o) < F32_TOL, form
        assert rel_err(s, ref_s) < F32_TOL, form


def run_mixer(testkit, tmp_path, kind, cfg, weights, x, cu=None, decode_from=0):
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    save(tmp_path / "w.safetensors", **weights)
    save(tmp_path / "x.safetensors", x=x, cu_seqlens=cu)
    run([testkit, "mix-mixer", "--kind", kind, "--config", tmp_path / "cfg.json",
         "--weights", tmp_path / "w.safetensors", "--in", tmp_path / "x.safetensors",
         "--out", tmp_path / "y.safetensors", "--decode-from", decode_from])
    return load_file(str(tmp_path / "y.safetensors"))


# ---------------------------------------------------------------- DSLA

def dsla_weights(d, H, Dh, seed):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g) * 0.3
    return {"q_proj.weight": r(H * Dh, d), "k_proj.weight": r(H * Dh, d), "v_proj.weight": r(H * Dh, d),
            "o_proj.weight": r(d, H * Dh), "gk_proj.weight": r(H * Dh, d), "gk_proj.bias": r(H * Dh),
            "gk_proj2.weight": r(H * Dh, d), "gk_proj2.bias": r(H * Dh), "alpha_list": torch.rand(2, generator=g)}


def dsla_reference(w, x, H, Dh, s1=None, s2=None):
    """DualStateLinearAttention.forward (DSLA-Serve src/layer.py) with fla's naive GLA."""
    B, T, _ = x.shape
    lin = lambda n, b=None: F.linear(x, w[n + ".weight"], w.get(n + ".bias"))
    q, k, v = (lin(n).view(B, T, H, Dh) for n in ("q_proj", "k_proj", "v_proj"))
    gk1 = torch.clamp_min(F.logsigmoid(lin("gk_proj")) / 16, -50).view(B, T, H, Dh)
    gk2 = torch.clamp_min(F.logsigmoid(lin("gk_proj2")) / 16, -50).view(B, T, H, Dh)
    o1, s1 = gla_naive.naive_recurrent_gla(q, k, v, gk1, initial_state=s1, output_final_state=True)
    o2, s2 = gla_naive.naive_recurrent_gla(q, k, v, gk2, initial_state=s2, output_final_state=True)
    a = F.softmax(w["alpha_list"], 0)
    return F.linear((a[0] * o1 + a[1] * o2).reshape(B, T, H * Dh), w["o_proj.weight"]), s1, s2


def test_dsla_layer_matches_reference(testkit_bin, tmp_path):
    d, H, Dh = 32, 4, 8
    w = dsla_weights(d, H, Dh, seed=7)
    x = torch.randn(2, 90, d, generator=torch.Generator().manual_seed(17))
    cfg = {"hidden_size": d, "num_attention_heads": H, "head_dim": Dh}
    ref, s1, s2 = dsla_reference(w, x, H, Dh)
    out = run_mixer(testkit_bin, tmp_path, "dsla", cfg, w, x)
    assert rel_err(out["y"], ref) < F32_TOL
    assert rel_err(out["state.S1"], s1) < F32_TOL and rel_err(out["state.S2"], s2) < F32_TOL
    dec = run_mixer(testkit_bin, tmp_path, "dsla", cfg, w, x, decode_from=85)
    assert rel_err(dec["y"], ref) < F32_TOL
    # packed: two sequences, each from a zero state
    cu = torch.tensor([0, 30, 90], dtype=torch.int64)
    xp = x[:1]
    refp = torch.cat([dsla_reference(w, xp[:, 0:30], H, Dh)[0], dsla_reference(w, xp[:, 30:90], H, Dh)[0]], 1)
    outp = run_mixer(testkit_bin, tmp_path, "dsla", cfg, w, xp, cu=cu)
    assert rel_err(outp["y"], refp) < F32_TOL


# ---------------------------------------------------------------- HypeNet

def hypenet_weights(d, H, KV, Dh, seed):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g) * 0.3
    return {"q_proj.weight": r(H * Dh, d), "k_proj.weight": r(KV * Dh, d), "v_proj.weight": r(KV * Dh, d),
            "o_proj.weight": r(d, H * Dh), "z_proj.weight": r(H * Dh, d),
            "q_norm.weight": 1 + r(Dh), "k_norm.weight": 1 + r(Dh), "o_norm.weight": 1 + r(H * Dh)}


def hypenet_reference(w, x, H, KV, Dh, theta, eps=1e-6):
    """HALO's LightningAttention.forward (lightning_attn.py) with transformers' Qwen3 parts."""
    from transformers import Qwen3Config
    from transformers.models.qwen3.modeling_qwen3 import (Qwen3RMSNorm, Qwen3RotaryEmbedding,
                                                          apply_rotary_pos_emb)
    B, T, d = x.shape
    norm = lambda n, dim: _with_weight(Qwen3RMSNorm(dim, eps=eps), w[n])
    q = F.linear(x, w["q_proj.weight"]).view(B, T, H, Dh)
    k = F.linear(x, w["k_proj.weight"]).view(B, T, KV, Dh)
    v = F.linear(x, w["v_proj.weight"]).view(B, T, KV, Dh)
    q, k = norm("q_norm.weight", Dh)(q), norm("k_norm.weight", Dh)(k)
    cfg = Qwen3Config(hidden_size=d, num_attention_heads=H, num_key_value_heads=KV, head_dim=Dh,
                      rope_theta=theta, max_position_embeddings=4096)
    rot = Qwen3RotaryEmbedding(cfg)
    cos, sin = rot(x, torch.arange(T)[None].expand(B, T))
    q, k = apply_rotary_pos_emb(q, k, cos, sin, unsqueeze_dim=2)
    k, v = k.repeat_interleave(H // KV, 2), v.repeat_interleave(H // KV, 2)
    g = -torch.tensor(alibi_slopes(H), dtype=torch.float32).expand(B, T, H)
    o, s = sgla_naive.naive_recurrent_simple_gla(q.float(), k.float(), v.float(), g, scale=Dh ** -0.5,
                                                 output_final_state=True)
    o = norm("o_norm.weight", H * Dh)(o.reshape(B, T, H * Dh).to(x.dtype))
    o = o * torch.sigmoid(F.linear(x, w["z_proj.weight"]))
    return F.linear(o, w["o_proj.weight"]), s


def _with_weight(m, wt):
    with torch.no_grad():
        m.weight.copy_(wt)
    return m


@pytest.mark.parametrize("H,KV", [(4, 2), (6, 6)])
def test_hypenet_layer_matches_reference(testkit_bin, tmp_path, H, KV):
    d, Dh, theta = 32, 8, 1e6
    w = hypenet_weights(d, H, KV, Dh, seed=8)
    x = torch.randn(2, 80, d, generator=torch.Generator().manual_seed(18))
    cfg = {"hidden_size": d, "num_attention_heads": H, "head_dim": Dh, "rope_theta": theta,
           "rms_norm_eps": 1e-6, "linear_config": {"hypenet": {"num_kv_heads": KV}}}
    with torch.no_grad():
        ref, s = hypenet_reference(w, x, H, KV, Dh, theta)
    out = run_mixer(testkit_bin, tmp_path, "hypenet", cfg, w, x)
    assert rel_err(out["y"], ref) < F32_TOL
    assert rel_err(out["state.S"], s) < F32_TOL
    dec = run_mixer(testkit_bin, tmp_path, "hypenet", cfg, w, x, decode_from=70)
    assert rel_err(dec["y"], ref) < F32_TOL
