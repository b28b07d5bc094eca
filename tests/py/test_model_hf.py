"""hyla's decoder against transformers: float32 logits (norm-wise relative error <= 1e-5 on
the CPU, 1e-4 on a GPU), bfloat16 logits (<= 6e-2 and <= 2x transformers' own bf16 error), prefill + cached decode logits, and
32 greedy tokens, on tiny random Llama, Qwen2 and Qwen3 checkpoints that transformers
itself writes with save_pretrained; static-shape / CUDA-graph decoding against the eager
path. Runs on HYLA_TEST_DEVICE (the testkit computes there)."""
import json
import zlib

import numpy as np
import pytest
import torch
import transformers
from conftest import BF16_TOL, DEVICE, F32_TOL, run

TOL = F32_TOL  # 1e-5 on the CPU
VOCAB = 384


def _common(**kw):
    base = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=160, num_hidden_layers=3,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                initializer_range=0.25, rms_norm_eps=1e-6, bos_token_id=None, eos_token_id=None,
                pad_token_id=None)
    base.update(kw)
    return base


CASES = {
    "llama": (transformers.LlamaConfig, transformers.LlamaForCausalLM, _common()),
    "llama_bias_mha": (transformers.LlamaConfig, transformers.LlamaForCausalLM,
                       _common(attention_bias=True, num_key_value_heads=4, tie_word_embeddings=True)),
    "llama3_rope": (transformers.LlamaConfig, transformers.LlamaForCausalLM,
                    _common(rope_parameters=dict(rope_type="llama3", rope_theta=500000.0, factor=8.0,
                                                 low_freq_factor=1.0, high_freq_factor=4.0,
                                                 original_max_position_embeddings=32))),
    "linear_rope": (transformers.LlamaConfig, transformers.LlamaForCausalLM,
                    _common(rope_parameters=dict(rope_type="linear", rope_theta=10000.0, factor=2.0))),
    "dynamic_rope": (transformers.LlamaConfig, transformers.LlamaForCausalLM,
                     _common(max_position_embeddings=24,
                             rope_parameters=dict(rope_type="dynamic", rope_theta=10000.0, factor=2.0))),
    "yarn_rope": (transformers.LlamaConfig, transformers.LlamaForCausalLM,
                  _common(rope_parameters=dict(rope_type="yarn", rope_theta=10000.0, factor=4.0,
                                               original_max_position_embeddings=32))),
    "qwen2": (transformers.Qwen2Config, transformers.Qwen2ForCausalLM, _common(tie_word_embeddings=False)),
    "qwen3": (transformers.Qwen3Config, transformers.Qwen3ForCausalLM,
              _common(head_dim=32, tie_word_embeddings=True)),
}


def make_checkpoint(name, path, shard=False):
    cfg_cls, model_cls, kw = CASES[name]
    # A stable seed per case: hash() of a str is salted per process (PYTHONHASHSEED).
    torch.manual_seed(zlib.crc32(name.encode()) % 1000)
    model = model_cls(cfg_cls(**kw)).eval()
    with torch.no_grad():  # RMSNorm weights start at 1: perturb them so a missed norm shows
        for n, p in model.named_parameters():
            if "norm" in n:
                p.add_(0.2 * torch.randn_like(p))
    model.save_pretrained(path, max_shard_size="40KB" if shard else "5GB")
    return model


def ids_arg(ids):
    return ";".join(",".join(str(int(t)) for t in row) for row in ids)


def rel_err(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.mark.parametrize("name", list(CASES))
def test_logits_match_transformers(name, tmp_path, testkit_bin):
    model = make_checkpoint(name, tmp_path / name, shard=(name == "llama"))
    if name == "llama":
        assert (tmp_path / name / "model.safetensors.index.json").exists()
    gen = torch.Generator().manual_seed(0)
    T = 40 if name != "dynamic_rope" else 48  # dynamic: past max_position_embeddings=24
    ids = torch.randint(0, VOCAB, (2, T), generator=gen)
    with torch.no_grad():
        ref = model(ids).logits.float().numpy()
    out = tmp_path / "logits.f32"
    run([testkit_bin, "lm-logits", "--model", tmp_path / name, "--ids", ids_arg(ids), "--out", out])
    got = np.fromfile(out, dtype=np.float32).reshape(ref.shape)
    err = rel_err(got, ref)
    print(f"{name}: logits relative error {err:.2e} (transformers {transformers.__version__})")
    assert err <= TOL


@pytest.mark.parametrize("name", ["llama", "qwen2", "qwen3"])
def test_bf16_logits_match_transformers_float32(name, tmp_path, testkit_bin):
    """hyla in bfloat16 (weights and activations) against transformers in float32."""
    model = make_checkpoint(name, tmp_path / name)
    ids = torch.randint(0, VOCAB, (2, 40), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        ref = model(ids).logits.float().numpy()
    out = tmp_path / "logits.f32"
    run([testkit_bin, "lm-logits", "--model", tmp_path / name, "--ids", ids_arg(ids), "--out", out,
         "--dtype", "bfloat16"])
    got = np.fromfile(out, dtype=np.float32).reshape(ref.shape)
    err = rel_err(got, ref)
    # transformers' own bf16 run of the same model sets the scale of bf16 rounding here
    # (these checkpoints' large weights amplify it: measured 2-4e-2 on the CPU for both).
    with torch.no_grad():
        hf_bf16 = rel_err(model.to(torch.bfloat16)(ids).logits.float().numpy(), ref)
    print(f"{name} bf16 on {DEVICE}: logits relative error {err:.2e} (transformers bf16: {hf_bf16:.2e})")
    assert np.isfinite(got).all()
    assert err <= BF16_TOL and err <= 2 * hf_bf16


@pytest.mark.parametrize("name", ["llama", "qwen3"])
def test_static_and_graph_decode_equal_eager(name, tmp_path, testkit_bin):
    """Static-shape decoding (one captured CUDA graph replayed per step on a GPU; plain
    static shapes on the CPU) gives the eager growing-cache path's greedy tokens."""
    make_checkpoint(name, tmp_path / name)
    ids = torch.randint(0, VOCAB, (3, 11), generator=torch.Generator().manual_seed(5))
    gen = lambda *extra: run([testkit_bin, "lm-generate", "--model", tmp_path / name, "--ids", ids_arg(ids),
                              "-n", "40", *extra])
    fast, eager = gen(), gen("--eager")
    want_path = "static+cuda-graph" if DEVICE.startswith("cuda") else "static"
    assert f"decode path: {want_path} on {DEVICE}" in fast.stderr, fast.stderr
    assert "decode path: eager" in eager.stderr
    assert json.loads(fast.stdout) == json.loads(eager.stdout)


@pytest.mark.parametrize("name", ["llama", "qwen2", "qwen3"])
def test_cached_decode_matches_full_forward(name, tmp_path, testkit_bin):
    model = make_checkpoint(name, tmp_path / name)
    ids = torch.randint(0, VOCAB, (2, 24), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = model(ids).logits.float().numpy()
    out = tmp_path / "dec.f32"
    run([testkit_bin, "lm-logits", "--model", tmp_path / name, "--ids", ids_arg(ids), "--out", out,
         "--mode", "decode", "--split", "7"])
    got = np.fromfile(out, dtype=np.float32).reshape(ref.shape)
    assert rel_err(got, ref) <= TOL


@pytest.mark.parametrize("name", ["llama", "qwen2", "qwen3"])
def test_greedy_generation_matches_transformers(name, tmp_path, testkit_bin):
    model = make_checkpoint(name, tmp_path / name)
    ids = torch.randint(0, VOCAB, (2, 9), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = model.generate(ids, max_new_tokens=32, do_sample=False, eos_token_id=None, pad_token_id=0,
                             min_new_tokens=32)[:, ids.shape[1]:].tolist()
    r = run([testkit_bin, "lm-generate", "--model", tmp_path / name, "--ids", ids_arg(ids), "-n", "32"])
    got = json.loads(r.stdout)
    assert got == ref


def test_missing_tensor_is_named(tmp_path, testkit_bin):
    from safetensors.torch import load_file, save_file
    make_checkpoint("qwen3", tmp_path / "m")
    st = tmp_path / "m" / "model.safetensors"
    tensors = load_file(st)
    del tensors["model.layers.1.self_attn.k_norm.weight"]
    save_file(tensors, st, metadata={"format": "pt"})
    r = run([testkit_bin, "lm-logits", "--model", tmp_path / "m", "--ids", "1,2", "--out", tmp_path / "x"],
            check=False)
    assert r.returncode != 0
    assert "model.layers.1.self_attn.k_norm.weight" in r.stderr


def test_bad_config_is_refused(tmp_path, testkit_bin):
    make_checkpoint("llama", tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["num_key_value_heads"] = 3
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    r = run([testkit_bin, "lm-logits", "--model", tmp_path / "m", "--ids", "1,2", "--out", tmp_path / "x"],
            check=False)
    assert r.returncode != 0 and "num_key_value_heads" in r.stderr
    cfg["num_key_value_heads"] = 2
    cfg["some_new_knob"] = 1
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    r = run([testkit_bin, "lm-logits", "--model", tmp_path / "m", "--ids", "1,2", "--out", tmp_path / "x"],
            check=False)
    assert r.returncode != 0 and "some_new_knob" in r.stderr
