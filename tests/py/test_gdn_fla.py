"""Gated DeltaNet against flash-linear-attention (fla 0.6) on CPU.

Oracles used (fla's Triton kernels do not run on CPU):
  * ops: `fla.ops.gated_delta_rule.naive.naive_recurrent_gated_delta_rule` and
    `naive_chunk_gated_delta_rule`, in float32 as shipped, and the recurrent one in float64
    through `mixer_oracle.in_float64` (the chunk one keeps a `.float()` cast of its decay
    mask, so in float64 it only agrees to ~1e-8 and serves as a float32 oracle). Neither supports HV > H nor cu_seqlens: for grouped value
    heads the test repeats each q/k head HV/H times (fla's kernels map value head j to
    key head j // (HV/H)); for packed batches it runs fla once per sequence.
  * layer: fla's `GatedDeltaNet` module supplies the parameters (its own init) and the
    CPU-runnable pieces: its Linear projections; its ShortConvolution weights through
    PyTorch's Conv1d forward (ShortConvolution *is* an nn.Conv1d with padding W-1) + SiLU;
    `fla.ops.gated_delta_rule.gate.naive_gdn_gate` for the decay (it computes in float32, so
    the float64 run uses its formula -exp(A_log)*softplus(a+dt_bias) after checking that it
    agrees with it to float32 precision); the naive recurrence
    above; `fla.modules.norm.layernorm.rms_norm_ref` times SiLU(g) (what the
    FusedRMSNormGated kernel computes; float32 variant: `layernorm_gated.rms_norm_ref`).
    The L2 norm and sigmoid are one-line formulas (fla's l2norm kernel: x/sqrt(Σx²+1e-6)).
"""
import json

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from conftest import F32_TOL, run
from mixer_oracle import in_float64, l2norm, rel_err, run_op, save

import fla.ops.gated_delta_rule.naive as fla_naive  # noqa: E402
naive_rec = fla_naive.naive_recurrent_gated_delta_rule
naive_chunk = fla_naive.naive_chunk_gated_delta_rule
naive_rec64, naive_chunk64 = in_float64(naive_rec), in_float64(naive_chunk)


def make_inputs(B, T, H, HV, K, V, dtype, decay=0.5, init=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)
    x = dict(q=l2norm(r(B, T, H, K)), k=l2norm(r(B, T, H, K)), v=r(B, T, HV, V),
             g=-decay * F.softplus(r(B, T, HV)), beta=torch.sigmoid(r(B, T, HV)))
    if init:
        x["initial_state"] = r(B, HV, K, V)
    return {k: v.to(dtype) for k, v in x.items()}


def fla_reference(x, fn):
    """fla naive op on hyla's inputs; q/k heads repeated for grouped value heads."""
    G = x["v"].shape[2] // x["q"].shape[2]
    q, k = (x[n].repeat_interleave(G, dim=2) for n in ("q", "k"))
    return fn(q, k, x["v"], beta=x["beta"], g=x["g"], initial_state=x.get("initial_state"),
              output_final_state=True)


SHAPES = [  # B, T, H, HV, K, V, decay, initial state
    (2, 100, 2, 2, 16, 32, 0.5, False),
    (1, 64, 1, 1, 32, 16, 0.05, True),
    (2, 1, 2, 2, 8, 8, 0.5, True),
    (1, 130, 2, 4, 16, 16, 5.0, True),   # grouped value heads (GVA)
    (2, 77, 2, 6, 8, 8, 0.2, False),     # GVA, G = 3
]


@pytest.mark.parametrize("shape", SHAPES)
def test_ops_float64_match_fla_naive(testkit_bin, tmp_path, shape):
    B, T, H, HV, K, V, decay, init = shape
    x = make_inputs(B, T, H, HV, K, V, torch.float64, decay, init)
    ref_o, ref_s = fla_reference(x, naive_rec64)
    ch_o, ch_s = fla_reference(x, naive_chunk64)
    # fla's chunk reference casts its decay mask with `.float()`, so it is float32-exact only.
    assert rel_err(ch_o, ref_o) < 1e-6
    forms = run_op(testkit_bin, tmp_path, "gated_delta", "all", **x)
    assert sorted(forms) == ["chunked", "recurrent", "step"]
    for form, (o, s) in forms.items():
        assert o.dtype == torch.float64
        assert rel_err(o, ref_o) < 1e-10, form
        assert rel_err(s, ref_s) < 1e-10, form


@pytest.mark.parametrize("shape", SHAPES)
def test_ops_float32_match_fla_naive(testkit_bin, tmp_path, shape):
    B, T, H, HV, K, V, decay, init = shape
    x = make_inputs(B, T, H, HV, K, V, torch.float32, decay, init, seed=1)
    forms = run_op(testkit_bin, tmp_path, "gated_delta", "all", **x)
    for name, fn in (("recurrent", naive_rec), ("chunked", naive_chunk)):
        ref_o, ref_s = fla_reference(x, fn)
        o, s = forms[name]
        assert rel_err(o, ref_o) < F32_TOL, name
        assert rel_err(s, ref_s) < F32_TOL, name


def test_ops_packed_sequences_match_fla_per_sequence(testkit_bin, tmp_path):
    lens = [37, 64, 1, 100, 5]
    T = sum(lens)
    x = make_inputs(1, T, 2, 4, 16, 16, torch.float64, 0.5, seed=2)
    s0 = torch.randn(len(lens), 4, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(12))
    cu = torch.tensor([0] + list(torch.tensor(lens).cumsum(0)), dtype=torch.int64)
    outs, states, start = [], [], 0
    for n, L in enumerate(lens):
        one = {k: v[:, start:start + L] for k, v in x.items()}
        one["initial_state"] = s0[n:n + 1]
        o, s = fla_reference(one, naive_rec64)
        outs.append(o)
        states.append(s)
        start += L
    ref_o, ref_s = torch.cat(outs, 1), torch.cat(states, 0)
    forms = run_op(testkit_bin, tmp_path, "gated_delta", "all", cu_seqlens=cu, initial_state=s0, **x)
    assert sorted(forms) == ["chunked", "recurrent"]
    for form, (o, s) in forms.items():
        assert rel_err(o, ref_o) < 1e-10, form
        assert rel_err(s, ref_s) < 1e-10, form


# ---------------------------------------------------------------- the full layer

def build_fla_layer(hidden, H, HV, K, expand_v, neg, seed):
    from fla.layers.gated_deltanet import GatedDeltaNet
    torch.manual_seed(seed)
    layer = GatedDeltaNet(hidden_size=hidden, expand_v=expand_v, head_dim=K, num_heads=H,
                          num_v_heads=HV, allow_neg_eigval=neg, norm_eps=1e-6, layer_idx=0)
    with torch.no_grad():  # non-trivial weights: the module's own init leaves o_norm at 1
        for name, p in layer.named_parameters():
            if name.endswith("proj.weight") or "conv1d" in name:
                p.normal_(0, 0.3)
            elif name == "o_norm.weight":
                p.uniform_(0.5, 1.5)
    return layer.double()


def fla_layer_reference(layer, x, float32=False):
    """fla's GatedDeltaNet forward on CPU, composed from fla's CPU-runnable parts."""
    from fla.modules.norm import layernorm, layernorm_gated
    from fla.ops.gated_delta_rule.gate import naive_gdn_gate
    B, T, _ = x.shape
    H, HV, K, V = layer.num_heads, layer.num_v_heads, layer.head_k_dim, layer.head_v_dim

    def conv(proj, conv1d):  # ShortConvolution = nn.Conv1d(groups=C, padding=W-1) + SiLU
        y = torch.nn.Conv1d.forward(conv1d, proj(x).transpose(1, 2))[..., :T]
        return F.silu(y.transpose(1, 2))
    q = l2norm(conv(layer.q_proj, layer.q_conv1d).view(B, T, H, K))
    k = l2norm(conv(layer.k_proj, layer.k_conv1d).view(B, T, H, K))
    v = conv(layer.v_proj, layer.v_conv1d).view(B, T, HV, V)
    a = layer.a_proj(x)
    g = naive_gdn_gate(a, layer.A_log, layer.dt_bias, output_dtype=x.dtype)
    if not float32:  # naive_gdn_gate computes in float32; the same formula in float64:
        g64 = -layer.A_log.exp() * F.softplus(a + layer.dt_bias)
        assert rel_err(g, g64) < 1e-6
        g = g64
    beta = torch.sigmoid(layer.b_proj(x)) * (2 if layer.allow_neg_eigval else 1)
    ins = dict(q=q, k=k, v=v, g=g, beta=beta)
    o, state = fla_reference(ins, naive_rec if float32 else naive_rec64)
    o = o.to(x.dtype)
    gate = layer.g_proj(x).view(B, T, HV, V)
    if float32:
        o = layernorm_gated.rms_norm_ref(o, layer.o_norm.weight, None, z=gate, eps=layer.o_norm.eps)
    else:
        o = layernorm.rms_norm_ref(o, layer.o_norm.weight, None, eps=layer.o_norm.eps) * F.silu(gate)
    return layer.o_proj(o.reshape(B, T, HV * V)), state


def run_layer(testkit, tmp_path, layer, x, cu=None, decode_from=0):
    cfg = {"hidden_size": layer.hidden_size, "num_attention_heads": layer.num_heads,
           "rms_norm_eps": layer.o_norm.eps,
           "linear_config": {"gdn": {"num_heads": layer.num_heads, "num_v_heads": layer.num_v_heads,
                                     "head_k_dim": layer.head_k_dim, "head_v_dim": layer.head_v_dim,
                                     "conv_size": layer.conv_size,
                                     "allow_neg_eigval": layer.allow_neg_eigval,
                                     "norm_eps": layer.o_norm.eps}}}
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    save(tmp_path / "w.safetensors", **{k: v.detach().to(x.dtype) for k, v in layer.state_dict().items()})
    save(tmp_path / "x.safetensors", x=x, cu_seqlens=cu)
    run([testkit, "mix-mixer", "--kind", "gdn", "--config", tmp_path / "cfg.json",
         "--weights", tmp_path / "w.safetensors", "--in", tmp_path / "x.safetensors",
         "--out", tmp_path / "y.safetensors", "--decode-from", decode_from])
    return load_file(str(tmp_path / "y.safetensors"))


LAYERS = [  # hidden, H, HV, K, expand_v, allow_neg_eigval, B, T
    (32, 2, 2, 8, 2.0, False, 2, 70),
    (48, 2, 4, 8, 1.0, True, 1, 130),   # GVA + negative eigenvalues
    (32, 4, 4, 8, 0.5, False, 2, 9),
]


@pytest.mark.parametrize("spec", LAYERS)
def test_layer_matches_fla_gated_deltanet(testkit_bin, tmp_path, spec):
    hidden, H, HV, K, ev, neg, B, T = spec
    layer = build_fla_layer(hidden, H, HV, K, ev, neg, seed=3)
    x = torch.randn(B, T, hidden, dtype=torch.float64, generator=torch.Generator().manual_seed(13))
    with torch.no_grad():
        ref, ref_state = fla_layer_reference(layer, x)
        out = run_layer(testkit_bin, tmp_path, layer, x)
        assert rel_err(out["y"], ref) < 1e-10
        assert rel_err(out["state.S"], ref_state) < 1e-10  # K×V (fla's layer caches V×K)
        # Prefill then token-by-token decode through the cache gives the same outputs.
        dec = run_layer(testkit_bin, tmp_path, layer, x, decode_from=max(1, T - 5))
        assert rel_err(dec["y"], ref) < 1e-10
        # float32 against fla's float32 references.
        l32 = layer.float()
        ref32, _ = fla_layer_reference(l32, x.float(), float32=True)
        out32 = run_layer(testkit_bin, tmp_path, l32, x.float())
        assert rel_err(out32["y"], ref32) < F32_TOL


def test_layer_packed_sequences(testkit_bin, tmp_path):
    layer = build_fla_layer(32, 2, 4, 8, 1.0, False, seed=4)
    lens = [5, 64, 1, 33]
    x = torch.randn(1, sum(lens), 32, dtype=torch.float64, generator=torch.Generator().manual_seed(14))
    cu = torch.tensor([0, 5, 69, 70, 103], dtype=torch.int64)
    with torch.no_grad():
        ref = torch.cat([fla_layer_reference(layer, x[:, a:b])[0] for a, b in zip(cu[:-1], cu[1:])], 1)
        out = run_layer(testkit_bin, tmp_path, layer, x, cu=cu)
    assert rel_err(out["y"], ref) < 1e-10
    assert out["state.S"].shape == (4, 4, 8, 8)
    assert out["state.conv_q"].shape == (4, 16, 3)
