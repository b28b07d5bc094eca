"""The hybrid model end to end: `hyla hybrid` builds a student from a transformers teacher,
the checkpoint round-trips, its logits match an outside oracle, and a mixed cache (KV for
attention, constant state for the linear layers) decodes to the same logits as a full
forward pass.

Oracle for the whole hybrid: transformers' own LlamaForCausalLM loaded with the hybrid's
tensors, with the `self_attn` of each linear layer swapped for the layer references the
mixer tests already trust: fla's GatedDeltaNet composed from fla's CPU reference pieces
(test_gdn_fla.fla_layer_reference), DSLA-Serve's layer with fla's naive GLA
(test_mixers.dsla_reference), HALO's Lightning attention with transformers' Qwen3 parts
and fla's naive simple GLA (test_mixers.hypenet_reference). Everything runs in float64.
"""
import json

import numpy as np
import pytest
import torch
import transformers
from safetensors.torch import load_file, save_file

from conftest import DEVICE, F32_TOL, run
from mixer_oracle import rel_err

from test_gdn_fla import fla_layer_reference  # noqa: E402
from test_mixers import dsla_reference, hypenet_reference  # noqa: E402

HIDDEN, HEADS, KV_HEADS, HEAD_DIM, VOCAB = 64, 4, 2, 16, 320
LAYERS = ["full_attention", "gdn", "dsla", "hypenet", "gdn", "full_attention"]
# Every tensor a linear mixer owns, by kind (the documented checkpoint layout, docs/hybrid.md).
MIXER_TENSORS = {
    "gdn": {"q_proj.weight", "k_proj.weight", "v_proj.weight", "a_proj.weight", "b_proj.weight", "A_log",
            "dt_bias", "q_conv1d.weight", "k_conv1d.weight", "v_conv1d.weight", "g_proj.weight",
            "o_norm.weight", "o_proj.weight"},
    "dsla": {"q_proj.weight", "k_proj.weight", "v_proj.weight", "o_proj.weight", "gk_proj.weight", "gk_proj.bias",
             "gk_proj2.weight", "gk_proj2.bias", "alpha_list"},
    "hypenet": {"q_proj.weight", "k_proj.weight", "v_proj.weight", "o_proj.weight", "z_proj.weight",
                "q_norm.weight", "k_norm.weight", "o_norm.weight"},
}


def make_teacher(path, seed=0, **kw):
    cfg = dict(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=128, num_hidden_layers=len(LAYERS),
               num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, head_dim=HEAD_DIM,
               max_position_embeddings=256, initializer_range=0.2, rms_norm_eps=1e-6, bos_token_id=None,
               eos_token_id=None, pad_token_id=None)
    cfg.update(kw)
    torch.manual_seed(seed)
    model = transformers.LlamaForCausalLM(transformers.LlamaConfig(**cfg)).eval()
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "norm" in n:
                p.add_(0.2 * torch.randn_like(p))
    model.save_pretrained(path)
    return model


def make_hybrid(hyla_bin, teacher, out, layers=LAYERS, extra=()):
    run([hyla_bin, "hybrid", teacher, "--out", out, "--layer-types", ",".join(layers), "--dtype", "float32",
         "--seed", "5", *extra])
    # The fresh init (std 0.02, unit norms) makes linear layers nearly silent; give them
    # weights large enough that a wrong state, gate or position shows in the logits.
    st = out / "model.safetensors"
    t = load_file(st)
    g = torch.Generator().manual_seed(11)
    for name, v in t.items():
        if ".linear_attn." not in name or name.endswith(("A_log", "dt_bias")):
            continue
        if name.endswith("norm.weight"):
            t[name] = torch.rand(v.shape, generator=g) + 0.5
        elif name.endswith("alpha_list"):
            t[name] = torch.rand(v.shape, generator=g)
        else:
            t[name] = torch.randn(v.shape, generator=g) * 0.15
    save_file(t, st, metadata={"format": "pt"})
    return out


def ids_arg(ids):
    return ";".join(",".join(str(int(x)) for x in row) for row in ids)


def hyla_logits(testkit, model, ids, tmp_path, dtype="float64", **mode):
    out = tmp_path / "logits.bin"
    cmd = [testkit, "lm-logits", "--model", model, "--ids", ids_arg(ids), "--out", out, "--dtype", dtype,
           "--out-dtype", dtype]
    if mode:
        cmd += ["--mode", "decode", "--chunks", ",".join(map(str, mode["chunks"]))]
    run(cmd)
    raw = np.fromfile(out, dtype=np.float64 if dtype == "float64" else np.float32)
    return torch.from_numpy(raw.reshape(ids.shape[0], ids.shape[1], -1))


class _Mixer(torch.nn.Module):
    """Stands in for a Llama layer's self_attn: same call, the reference mixer's output."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, hidden_states, **kwargs):
        return self.fn(hidden_states), None


def oracle_model(teacher_dir, hybrid_dir):
    """transformers' Llama with the hybrid's weights and reference linear mixers, float64."""
    cfg = json.loads((hybrid_dir / "config.json").read_text())
    model = transformers.LlamaForCausalLM.from_pretrained(teacher_dir, attn_implementation="eager").double().eval()
    t = {k: v.double() for k, v in load_file(hybrid_dir / "model.safetensors").items()}
    shared = {k: v for k, v in t.items() if ".linear_attn." not in k and ".o_gate." not in k}  # gates: HyPE tests
    missing, unexpected = model.load_state_dict(shared, strict=False)
    assert not unexpected
    # The only tensors the hybrid lacks are the softmax attention of its linear layers,
    # which are swapped out below; anything else missing would keep the teacher's value.
    linear = [i for i, kind in enumerate(cfg["layer_types"]) if kind != "full_attention"]
    expected_missing = {k for k in model.state_dict()
                        if any(k.startswith(f"model.layers.{i}.self_attn.") for i in linear)}
    assert set(missing) == expected_missing, sorted(set(missing) ^ expected_missing)
    eps = cfg["rms_norm_eps"]
    theta = cfg["rope_parameters"]["rope_theta"]
    for i, kind in enumerate(cfg["layer_types"]):
        if kind == "full_attention":
            continue
        p = f"model.layers.{i}.linear_attn."
        w = {k[len(p):]: v for k, v in t.items() if k.startswith(p)}
        assert set(w) == MIXER_TENSORS[kind], (i, kind, sorted(w))
        if kind == "gdn":
            from fla.layers.gated_deltanet import GatedDeltaNet
            layer = GatedDeltaNet(hidden_size=HIDDEN, expand_v=1.0, head_dim=HEAD_DIM, num_heads=HEADS,
                                  num_v_heads=HEADS, norm_eps=eps, layer_idx=i).double()
            layer.load_state_dict(w, strict=True)
            fn = lambda x, layer=layer: fla_layer_reference(layer, x)[0]
        elif kind == "dsla":
            fn = lambda x, w=w: dsla_reference(w, x, HEADS, HEAD_DIM)[0]
        else:
            fn = lambda x, w=w: hypenet_reference(w, x, HEADS, HEADS, HEAD_DIM, theta, eps)[0]
        model.model.layers[i].self_attn = _Mixer(fn)
    return model


@pytest.fixture(scope="module")
def hybrid(tmp_path_factory, hyla_bin):
    d = tmp_path_factory.mktemp("hybrid")
    make_teacher(d / "teacher")
    make_hybrid(hyla_bin, d / "teacher", d / "hybrid")
    return d


def test_checkpoint_layout_and_teacher_tensors(hybrid):
    cfg = json.loads((hybrid / "hybrid" / "config.json").read_text())
    assert cfg["model_type"] == "hyla_hybrid" and cfg["architectures"] == ["HylaHybridForCausalLM"]
    assert cfg["layer_types"] == LAYERS
    teacher = load_file(hybrid / "teacher" / "model.safetensors")
    student = load_file(hybrid / "hybrid" / "model.safetensors")
    for name, v in student.items():
        if ".linear_attn." in name:
            continue
        assert torch.equal(v, teacher[name]), name  # embeddings, norms, MLPs, kept attention
    for i, kind in enumerate(LAYERS):
        mine = {k.split(".linear_attn.")[1] for k in student if k.startswith(f"model.layers.{i}.linear_attn.")}
        attn = {k for k in student if k.startswith(f"model.layers.{i}.self_attn.")}
        if kind == "full_attention":
            assert not mine and attn
        else:
            assert mine == MIXER_TENSORS[kind] and not attn


def test_save_load_round_trip(hybrid, hyla_bin, testkit_bin, tmp_path):
    # Loading the hybrid and writing it again (every layer keeps its kind) changes nothing.
    again = tmp_path / "again"
    run([hyla_bin, "hybrid", hybrid / "hybrid", "--out", again, "--layer-types", ",".join(LAYERS), "--dtype",
         "float32"])
    a = load_file(hybrid / "hybrid" / "model.safetensors")
    b = load_file(again / "model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((again / "config.json").read_text()) == json.loads((hybrid / "hybrid" / "config.json").read_text())
    ids = torch.randint(0, VOCAB, (1, 12), generator=torch.Generator().manual_seed(1))
    assert torch.equal(hyla_logits(testkit_bin, hybrid / "hybrid", ids, tmp_path),
                       hyla_logits(testkit_bin, again, ids, tmp_path))


def test_logits_match_reference_model(hybrid, testkit_bin, tmp_path):
    ids = torch.randint(0, VOCAB, (2, 83), generator=torch.Generator().manual_seed(2))  # > one 64-token chunk
    model = oracle_model(hybrid / "teacher", hybrid / "hybrid")
    with torch.no_grad():
        ref = model(ids).logits
    got = hyla_logits(testkit_bin, hybrid / "hybrid", ids, tmp_path)
    err = rel_err(got, ref)
    print(f"hybrid logits vs reference model (float64): rel err {err:.2e}")
    # transformers computes RoPE's cos/sin in float32 even in a float64 model (so does the
    # HypeNet reference, and fla's naive GLA casts to float32): agreement is float32-limited
    # (~5e-7 here, as for the all-attention teacher alone), while a misplaced weight, state
    # or residual shows at O(1).
    assert err < F32_TOL


@pytest.mark.parametrize("dtype,tol", [("float64", 1e-10), ("float32", F32_TOL)])
def test_prefill_then_decode_matches_full_forward(hybrid, testkit_bin, tmp_path, dtype, tol):
    # Chunked prefill in pieces that straddle the 64-token chunk, then 1-token steps: the
    # attention layers read their KV cache, the linear ones their state and conv tails.
    ids = torch.randint(0, VOCAB, (2, 100), generator=torch.Generator().manual_seed(3))
    full = hyla_logits(testkit_bin, hybrid / "hybrid", ids, tmp_path, dtype)
    dec = hyla_logits(testkit_bin, hybrid / "hybrid", ids, tmp_path, dtype, chunks=[3, 70, 17])
    err = rel_err(dec, full)
    print(f"{dtype}: prefill 3+70+17 then 10 decode steps vs full forward: rel err {err:.2e}")
    assert err < tol


def test_hype_hybrid_decodes_like_full_forward(tmp_path, hyla_bin, testkit_bin):
    # HyPE: NoPE + log-length query scaling in attention, RoPE in every linear layer; the
    # scale depends on absolute positions, which the cache must carry across chunks.
    make_teacher(tmp_path / "teacher", seed=1)
    make_hybrid(hyla_bin, tmp_path / "teacher", tmp_path / "hype", extra=["--hype", "--hype-base", "8"])
    cfg = json.loads((tmp_path / "hype" / "config.json").read_text())
    assert cfg["attention_nope"] and cfg["attention_logn_base"] == 8 and cfg["linear_config"]["use_rope"]
    ids = torch.randint(0, VOCAB, (1, 90), generator=torch.Generator().manual_seed(4))
    full = hyla_logits(testkit_bin, tmp_path / "hype", ids, tmp_path)
    dec = hyla_logits(testkit_bin, tmp_path / "hype", ids, tmp_path, chunks=[65, 5])
    assert rel_err(dec, full) < 1e-10


def test_greedy_generation_matches_reference(hybrid, testkit_bin, tmp_path):
    ids = torch.randint(0, VOCAB, (1, 20), generator=torch.Generator().manual_seed(5))
    r = run([testkit_bin, "lm-generate", "--model", hybrid / "hybrid", "--ids", ids_arg(ids), "-n", "12",
             "--dtype", "float64"])
    got = json.loads(r.stdout)[0]
    model = oracle_model(hybrid / "teacher", hybrid / "hybrid")
    seq = ids
    with torch.no_grad():
        for _ in range(12):  # the oracle has no cache: a full forward per token
            nxt = model(seq).logits[:, -1].argmax(-1, keepdim=True)
            seq = torch.cat([seq, nxt], 1)
    assert got == seq[0, 20:].tolist()


def test_info_reports_hybrid_decode_memory(hybrid, hyla_bin):
    info = json.loads(run([hyla_bin, "info", hybrid / "hybrid", "--json"]).stdout)
    n_attn = LAYERS.count("full_attention")
    kv_tok = n_attn * 2 * KV_HEADS * HEAD_DIM * 2  # K and V, bf16
    # Constant state per sequence, float32 states; GDN conv tails (W-1 = 3 steps) in bf16.
    gdn = HEADS * HEAD_DIM * HEAD_DIM * 4 + 3 * (3 * HEADS * HEAD_DIM) * 2
    dsla = 2 * HEADS * HEAD_DIM * HEAD_DIM * 4
    hypenet = HEADS * HEAD_DIM * HEAD_DIM * 4
    state = 2 * gdn + dsla + hypenet
    assert info["kv_cache_bytes_per_token"] == kv_tok
    assert info["state_bytes_per_sequence"] == state
    assert info["attention_layers"] == n_attn
    for ctx in (4096, 32768, 131072):
        assert info["decode_cache_bytes"][str(ctx)] == kv_tok * ctx + state
        assert info["teacher_decode_cache_bytes"][str(ctx)] == len(LAYERS) * 2 * KV_HEADS * HEAD_DIM * 2 * ctx


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_static_and_graph_decode_equal_eager(hybrid, testkit_bin, dtype):
    """The hybrid's static-shape decode (fixed KV cache, in-place recurrent states, one
    CUDA graph replayed per step on a GPU) gives the eager growing-cache path's tokens."""
    ids = torch.randint(0, VOCAB, (4, 15), generator=torch.Generator().manual_seed(6))
    gen = lambda *extra: run([testkit_bin, "lm-generate", "--model", hybrid / "hybrid", "--ids", ids_arg(ids),
                              "-n", "40", "--dtype", dtype, *extra])
    fast, eager = gen(), gen("--eager")
    want_path = "static+cuda-graph" if DEVICE.startswith("cuda") else "static"
    assert f"decode path: {want_path} on {DEVICE}" in fast.stderr, fast.stderr
    assert json.loads(fast.stdout) == json.loads(eager.stdout)
