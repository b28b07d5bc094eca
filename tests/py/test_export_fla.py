"""`hyla export --format fla` against flash-linear-attention's own model (fla 0.6, CPU).

A random transformers teacher (float32, `save_pretrained`) becomes a hybrid with
`hyla hybrid --dtype float32`; its GDN weights and every norm are then redrawn so that a
dropped or misnamed tensor shows in the logits. `hyla export` writes fla's checkpoint,
which fla's `GatedDeltaNetForCausalLM.from_pretrained` loads (no missing, unexpected or
mismatched keys), and its logits are compared with hyla's (`hyla_testkit lm-logits`).

fla's model runs in float64 on the CPU with fla's own computation-equivalent switches
`fuse_norm=False`, `fuse_swiglu=False`, `fuse_cross_entropy=False` (plain torch RMSNorm
and SwiGLU in the blocks). fla's Triton kernels do not run on a CPU (no Triton driver;
see the project spec's oracles.md), so ONLY these Triton-only functions are replaced, each
by a stand-in that computes the same function:
  * `fla.layers.attn.flash_attn_func` (flash-attn is on neither machine): PyTorch SDPA,
    causal, with flash-attn's bottom-right aligned causal mask and its window
    `window_size=(w-1, 0)` (keys with 0 <= q - k <= w - 1), GQA via `enable_gqa`, scale
    1/sqrt(head_dim) (flash-attn's default). oracles.md names this the accepted stand-in.
  * `fla.modules.rotary.ops.rotary_embedding` (Triton kernel): fla's own
    `rotary_embedding_ref` on the cos/sin rows at the sequence offset.
  * `fla.layers.gated_deltanet.causal_conv1d` (Triton kernel): the depthwise causal
    conv that `ShortConvolution` (an `nn.Conv1d` with padding W-1) defines, via
    `F.conv1d`, then SiLU.
  * `fla.layers.gated_deltanet.fused_recurrent_gated_delta_rule` / `chunk_gated_delta_rule`
    (Triton): fla's `naive_recurrent_gated_delta_rule` (re-bound to float64 by
    `mixer_oracle.in_float64`) on the in-kernel preprocessing the kernels do: q, k L2
    normalised as fla's l2norm kernel (x / sqrt(sum x^2 + 1e-6)), decay
    g = -exp(A_log) * softplus(a + dt_bias) (fla's `naive_gdn_gate` formula, checked
    against it), beta = sigmoid(b) (x2 with allow_neg_eigval), q/k heads repeated for
    grouped value heads (the kernels map value head j to key head j // (HV/H)).
  * `fla.modules.FusedRMSNormGated.forward` / `fla.modules.RMSNorm.forward` (the GDN
    o_norm; Triton): fla's `layernorm_gated.rms_norm_ref` (norm, then * SiLU(g)) and
    `layernorm.rms_norm_ref`.
  * `fla.modules.mlp.swiglu` (Triton even with fuse_swiglu=False): SiLU(x) * y, the
    formula in fla's SwiGLUFunction docstring.
The same checkpoint runs through the real fla kernels on the GPU in
scripts/device/check_fla_export.py.
"""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import transformers
from safetensors.torch import load_file, save_file

from conftest import F32_TOL, run
from mixer_oracle import in_float64, l2norm

import fla  # noqa: E402
import fla.layers.attn as fla_attn  # noqa: E402
import fla.layers.gated_deltanet as fla_gdn  # noqa: E402
import fla.modules.mlp as fla_mlp  # noqa: E402
import fla.modules.rotary.ops as fla_rotary  # noqa: E402
from fla.modules import FusedRMSNormGated, RMSNorm  # noqa: E402
from fla.modules.norm import layernorm, layernorm_gated  # noqa: E402
from fla.ops.gated_delta_rule.gate import naive_gdn_gate  # noqa: E402
from fla.ops.gated_delta_rule.naive import naive_recurrent_gated_delta_rule  # noqa: E402

VOCAB = 256
T = 40
# hyla in float64 vs fla in float64: measured 6-9e-7. That floor is hyla's RMSNorm, which
# takes its statistics in float32 as transformers' LlamaRMSNorm does: with fla's
# nn.RMSNorm doing the same, the difference falls to 2.6e-8, the float32 rounding of the
# logits file hyla_testkit writes.
TOL64 = 2e-6
TOL32 = F32_TOL  # hyla float32 vs fla float64 (measured 2-3e-6 on the CPU)

naive_rec64 = in_float64(naive_recurrent_gated_delta_rule)


# ------------------------------------------------------------ stand-ins for Triton code

def sdpa_flash_attn(q, k, v, causal=True, window_size=(-1, -1), **kw):
    """flash_attn_func(q, k, v [B, T, H, D]) through SDPA, same mask and scale."""
    assert causal and not kw.get("softmax_scale") and not kw.get("dropout_p")
    tq, tk = q.shape[1], k.shape[1]
    qpos = torch.arange(tq).unsqueeze(1) + (tk - tq)  # flash-attn aligns causal masks bottom-right
    dist = qpos - torch.arange(tk).unsqueeze(0)
    mask = dist >= 0
    if window_size[0] >= 0:
        mask &= dist <= window_size[0]
    o = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=mask,
                                       enable_gqa=True)
    return o.transpose(1, 2)


def rotary_ref(x, cos, sin, interleaved=False, inplace=False, seqlen_offsets=0, cu_seqlens=None, **kw):
    assert isinstance(seqlen_offsets, int) and cu_seqlens is None
    t = x.shape[1]
    return fla_rotary.rotary_embedding_ref(x, cos[seqlen_offsets:seqlen_offsets + t],
                                           sin[seqlen_offsets:seqlen_offsets + t], interleaved)


def causal_conv1d_ref(x, weight, bias=None, residual=None, initial_state=None, output_final_state=False,
                      activation=None, cu_seqlens=None, **kw):
    assert residual is None and initial_state is None and not output_final_state and cu_seqlens is None
    width, t = weight.shape[-1], x.shape[1]
    y = F.conv1d(x.transpose(1, 2), weight.unsqueeze(1), bias, padding=width - 1, groups=x.shape[-1])[..., :t]
    y = y.transpose(1, 2)
    return (F.silu(y) if activation in ("silu", "swish") else y), None


def gated_delta_rule_ref(q, k, v, g, beta, initial_state=None, output_final_state=False, cu_seqlens=None,
                         use_qk_l2norm_in_kernel=False, use_gate_in_kernel=False, use_beta_sigmoid_in_kernel=False,
                         allow_neg_eigval=False, A_log=None, dt_bias=None, scale=None, **kw):
    assert use_qk_l2norm_in_kernel and use_gate_in_kernel and use_beta_sigmoid_in_kernel
    assert initial_state is None and not output_final_state and cu_seqlens is None and scale is None
    decay = naive_gdn_gate(g, A_log, dt_bias, output_dtype=g.dtype)  # computes in float32
    if g.dtype == torch.float64:  # the same formula in float64
        decay64 = -A_log.double().exp() * F.softplus(g + dt_bias.double())
        assert (decay - decay64).norm() <= 1e-6 * decay64.norm()
        decay = decay64
    b = torch.sigmoid(beta) * (2 if allow_neg_eigval else 1)
    group = v.shape[2] // q.shape[2]
    q, k = (l2norm(x).repeat_interleave(group, dim=2) for x in (q, k))
    naive = naive_rec64 if v.dtype == torch.float64 else naive_recurrent_gated_delta_rule
    o, _ = naive(q, k, v, beta=b, g=decay)
    return o.to(v.dtype), None


def rms_norm_gated_ref(self, x, g, residual=None, prenorm=False, residual_in_fp32=False):
    assert residual is None and not prenorm and self.activation in ("swish", "silu")
    return layernorm_gated.rms_norm_ref(x, self.weight, None, z=g, eps=self.eps, norm_before_gate=True,
                                        upcast=x.dtype != torch.float64)


def rms_norm_ref(self, x, residual=None, prenorm=False, residual_in_fp32=False):
    assert residual is None and not prenorm
    return layernorm.rms_norm_ref(x, self.weight, self.bias, eps=self.eps, upcast=x.dtype != torch.float64)


@pytest.fixture
def fla_on_cpu(monkeypatch):
    monkeypatch.setattr(fla_attn, "flash_attn_func", sdpa_flash_attn)
    monkeypatch.setattr(fla_rotary, "rotary_embedding", rotary_ref)
    monkeypatch.setattr(fla_gdn, "causal_conv1d", causal_conv1d_ref)
    monkeypatch.setattr(fla_gdn, "fused_recurrent_gated_delta_rule", gated_delta_rule_ref)
    monkeypatch.setattr(fla_gdn, "chunk_gated_delta_rule", gated_delta_rule_ref)
    monkeypatch.setattr(FusedRMSNormGated, "forward", rms_norm_gated_ref)
    monkeypatch.setattr(RMSNorm, "forward", rms_norm_ref)
    monkeypatch.setattr(fla_mlp, "swiglu", lambda x, y: F.silu(x) * y)


def load_fla(path):
    from fla.models import GatedDeltaNetForCausalLM
    model, info = GatedDeltaNetForCausalLM.from_pretrained(
        path, output_loading_info=True, fuse_norm=False, fuse_swiglu=False, fuse_cross_entropy=False)
    for key in ("missing_keys", "unexpected_keys", "mismatched_keys"):
        assert not info.get(key), f"{key}: {info[key]}"
    return model.eval()


# ------------------------------------------------------------ checkpoints

def _common(**kw):
    base = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=4,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                initializer_range=0.25, rms_norm_eps=1e-6, bos_token_id=1, eos_token_id=2, pad_token_id=None)
    base.update(kw)
    return base


TEACHERS = {
    "llama_gqa": (transformers.LlamaConfig, transformers.LlamaForCausalLM, _common(rope_theta=5000.0)),
    "llama_tied": (transformers.LlamaConfig, transformers.LlamaForCausalLM, _common(tie_word_embeddings=True)),
    # Qwen2: q/k/v bias, sliding window on layers >= max_window_layers.
    "qwen2_sliding": (transformers.Qwen2Config, transformers.Qwen2ForCausalLM,
                      _common(use_sliding_window=True, sliding_window=8, max_window_layers=2,
                              tie_word_embeddings=False)),
    "qwen3": (transformers.Qwen3Config, transformers.Qwen3ForCausalLM, _common(head_dim=16)),
    "llama_o_bias": (transformers.LlamaConfig, transformers.LlamaForCausalLM, _common(attention_bias=True)),
    "llama3_rope": (transformers.LlamaConfig, transformers.LlamaForCausalLM,
                    _common(rope_parameters=dict(rope_type="llama3", rope_theta=500000.0, factor=8.0,
                                                 low_freq_factor=1.0, high_freq_factor=4.0,
                                                 original_max_position_embeddings=32))),
}


def make_teacher(name, path):
    cfg_cls, model_cls, kw = TEACHERS[name]
    torch.manual_seed(sum(map(ord, name)))
    model = model_cls(cfg_cls(**kw)).eval()
    model.save_pretrained(path)
    return path


def make_hybrid(hyla_bin, tmp_path, teacher, *args):
    out = tmp_path / f"hybrid-{teacher}"
    run([hyla_bin, "hybrid", make_teacher(teacher, tmp_path / teacher), "--out", out, "--dtype", "float32", *args])
    return out


def redraw_weights(path, seed=0):
    """Non-trivial GDN weights and norms (hyla's fresh init leaves o_norm at 1 and the
    projections at std 0.02), so that a missed tensor changes the logits."""
    g = torch.Generator().manual_seed(seed)
    st = path / "model.safetensors"
    tensors = load_file(str(st))
    for name, t in tensors.items():
        if "linear_attn" in name and (name.endswith("proj.weight") or "conv1d" in name):
            tensors[name] = torch.randn(t.shape, generator=g) * 0.3
        elif "norm" in name:
            tensors[name] = 1 + 0.3 * torch.randn(t.shape, generator=g)
        elif name.endswith("A_log"):
            tensors[name] = torch.rand(t.shape, generator=g).add(0.1).log()
    save_file(tensors, str(st), metadata={"format": "pt"})


def export(hyla_bin, src, out, *args, check=True):
    return run([hyla_bin, "export", src, "--format", "fla", "--out", out, *args], check=check)


def hyla_logits(testkit_bin, path, ids, dtype, tmp_path):
    out = tmp_path / f"hyla-{dtype}.f32"
    arg = ";".join(",".join(str(int(t)) for t in row) for row in ids)
    run([testkit_bin, "lm-logits", "--model", path, "--ids", arg, "--out", out, "--dtype", dtype])
    return np.fromfile(out, dtype=np.float32).reshape(ids.shape[0], ids.shape[1], -1)


def rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


# ------------------------------------------------------------ tests

PARITY = {  # teacher, hybrid arguments, expected attn spec layers and windows
    "llama_gqa": ("llama_gqa", ["--attention-every", "2", "--mixer", "gdn"], {None: [0, 2]}),
    "llama_tied": ("llama_tied", ["--attention-every", "3", "--mixer", "gdn"], {None: [0, 3]}),
    # Grouped value heads, wider value heads, beta in (0, 2), no output gate, full + sliding.
    "qwen2_sliding_gva": ("qwen2_sliding", ["--attention-layers", "0,2", "--mixer", "gdn", "--linear-config",
                                            json.dumps({"gdn": {"num_heads": 2, "num_v_heads": 4, "head_k_dim": 16,
                                                                "head_v_dim": 24, "allow_neg_eigval": True,
                                                                "use_gate": False, "conv_size": 3}})],
                          {None: [0], 8: [2]}),
    # A teacher as it is: every layer attention, the GDN fields unused.
    "teacher_only": ("llama_gqa", None, {None: [0, 1, 2, 3]}),
}


@pytest.mark.parametrize("case", list(PARITY))
def test_fla_loads_export_and_logits_match(case, tmp_path, hyla_bin, testkit_bin, fla_on_cpu):
    teacher, args, windows = PARITY[case]
    hybrid = make_hybrid(hyla_bin, tmp_path, teacher, *args) if args else make_teacher(teacher, tmp_path / teacher)
    redraw_weights(hybrid)
    out = tmp_path / "fla"
    export(hyla_bin, hybrid, out)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model_type"] == "gated_deltanet" and cfg["architectures"] == ["GatedDeltaNetForCausalLM"]
    specs = cfg["attn"] if isinstance(cfg["attn"], list) else [cfg["attn"]]
    assert {s["window_size"]: s["layers"] for s in specs} == windows
    assert (out / "tokenizer.json").exists() == (hybrid / "tokenizer.json").exists()
    tensors = load_file(str(out / "model.safetensors"))
    assert ("lm_head.weight" in tensors) == (not cfg["tie_word_embeddings"])

    model = load_fla(out).double()
    if cfg["tie_word_embeddings"]:
        assert model.lm_head.weight.data_ptr() == model.model.embeddings.weight.data_ptr()
    ids = torch.randint(0, VOCAB, (2, T), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref = model(input_ids=ids, use_cache=False).logits.numpy()
    got64 = hyla_logits(testkit_bin, hybrid, ids, "float64", tmp_path)
    got32 = hyla_logits(testkit_bin, hybrid, ids, "float32", tmp_path)
    e64, e32 = rel(got64, ref), rel(got32, ref)
    maxrel = float(np.abs(got32 - ref).max() / np.abs(ref).max())
    print(f"{case}: logits rel. error vs fla float64: hyla float64 {e64:.2e}, hyla float32 {e32:.2e} "
          f"(max |diff| / max |ref| {maxrel:.2e}; fla {fla.__version__}, transformers {transformers.__version__})")
    assert e64 <= TOL64 and e32 <= TOL32
    assert (got32.argmax(-1) == ref.argmax(-1)).all()


def test_export_in_bfloat16(tmp_path, hyla_bin):
    hybrid = make_hybrid(hyla_bin, tmp_path, "llama_gqa", "--attention-every", "2")
    export(hyla_bin, hybrid, tmp_path / "fla", "--dtype", "bfloat16")
    cfg = json.loads((tmp_path / "fla" / "config.json").read_text())
    assert cfg["dtype"] == "bfloat16"
    src = load_file(str(hybrid / "model.safetensors"))
    out = load_file(str(tmp_path / "fla" / "model.safetensors"))
    assert all(t.dtype == torch.bfloat16 for t in out.values())
    assert torch.equal(out["model.layers.1.attn.A_log"], src["model.layers.1.linear_attn.A_log"].bfloat16())
    assert torch.equal(out["model.embeddings.weight"], src["model.embed_tokens.weight"].bfloat16())


REFUSALS = {  # teacher, hybrid arguments, what the message must name
    "dsla_layer": ("llama_gqa", ["--attention-every", "2", "--mixer", "dsla"], ["layer 1 (dsla)", "dsla"]),
    "qwen3_qk_norm": ("qwen3", ["--attention-every", "2"], ["layer 0 (full_attention)", "qk_norm"]),
    "o_proj_bias": ("llama_o_bias", ["--attention-every", "2"], ["layer 0 (full_attention)", "o_proj bias"]),
    "rope_scaling": ("llama3_rope", ["--attention-every", "2"], ["layer 0 (full_attention)", "llama3"]),
    "hype": ("llama_gqa", ["--attention-every", "2", "--hype"], ["layer 0 (full_attention)", "attention_nope"]),
    "gdn_conv_bias": ("llama_gqa", ["--attention-every", "2", "--linear-config", '{"conv_bias": true}'],
                      ["layer 1 (gdn)", "conv_bias"]),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_inexpressible_models_are_refused(case, tmp_path, hyla_bin):
    teacher, args, needles = REFUSALS[case]
    hybrid = make_hybrid(hyla_bin, tmp_path, teacher, *args)
    out = tmp_path / "fla"
    r = export(hyla_bin, hybrid, out, check=False)
    print(f"{case}: {r.stderr.strip()}")
    assert r.returncode != 0
    for n in needles:
        assert n in r.stderr, (n, r.stderr)
    assert not (out / "config.json").exists() and not (out / "model.safetensors").exists()
