"""Bad hybrid input is refused with an error that names the layer, field or tensor, and a
non-zero exit, never a crash or a silently wrong model: unknown mixer names, head counts
that do not divide, mis-shaped, missing and stray tensors, bad `hyla hybrid` arguments."""
import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import run
from test_hybrid import LAYERS, make_hybrid, make_teacher


@pytest.fixture(scope="module")
def good(tmp_path_factory, hyla_bin):
    d = tmp_path_factory.mktemp("bad_input")
    make_teacher(d / "teacher")
    make_hybrid(hyla_bin, d / "teacher", d / "hybrid")
    return d


def copy(good, tmp_path):
    dst = tmp_path / "m"
    shutil.copytree(good / "hybrid", dst)
    return dst


def edit_config(model, **changes):
    cfg = json.loads((model / "config.json").read_text())
    cfg.update(changes)
    (model / "config.json").write_text(json.dumps(cfg))


def edit_tensors(model, fn):
    st = model / "model.safetensors"
    t = load_file(st)
    fn(t)
    save_file(t, st, metadata={"format": "pt"})


def refused(cmd, *needles):
    r = run(cmd, check=False)
    assert r.returncode != 0, f"expected a refusal: {cmd}"
    assert "Traceback" not in r.stderr and "terminate called" not in r.stderr, r.stderr
    for n in needles:
        assert n in r.stderr, f"{n!r} not in: {r.stderr}"
    return r.stderr


def load_cmd(testkit, model, tmp_path):
    return [testkit, "lm-logits", "--model", model, "--ids", "1,2,3", "--out", tmp_path / "x.bin"]


# Errors found while reading config.json name the file; those found while building a
# layer's mixer name the layer ("layer 1 (gdn)") and the linear_config key.
CONFIG_CASES = {
    "unknown mixer": (dict(layer_types=LAYERS[:2] + ["mamba"] + LAYERS[3:]), ["config.json", "layer_types[2]", "mamba"]),
    "layer count": (dict(layer_types=LAYERS[:5]), ["config.json", "layer_types has 5 entries", "num_hidden_layers is 6"]),
    "value heads": (dict(linear_config={"gdn": {"num_v_heads": 3}}), ["layer 1 (gdn)", "value heads 3"]),
    "kv heads": (dict(linear_config={"hypenet": {"num_kv_heads": 3}}), ["layer 3 (hypenet)", "heads 3"]),
    "unknown key": (dict(linear_config={"dsla": {"num_heds": 4}}), ["linear_config.dsla", "num_heds"]),
    "wrong type": (dict(linear_config={"conv_size": "four"}), ["conv_size", "wrong type"]),
    "not hybrid": (dict(model_type="llama"), ["config.json", "layer 1", "gdn", "hyla_hybrid"]),
    "odd head_dim": (dict(head_dim=15), ["config.json", "head_dim (15)"]),
    "heads": (dict(num_key_value_heads=3), ["config.json", "num_key_value_heads (3)"]),
}


@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_bad_config(good, tmp_path, hyla_bin, testkit_bin, case):
    changes, needles = CONFIG_CASES[case]
    m = copy(good, tmp_path)
    edit_config(m, **changes)
    msg = refused([hyla_bin, "info", m], *needles)
    print(f"{case}: {msg.strip()}")
    refused(load_cmd(testkit_bin, m, tmp_path), *needles)


TENSOR_CASES = {
    "missing": (lambda t: t.pop("model.layers.2.linear_attn.alpha_list"),
                ["missing tensor", "model.layers.2.linear_attn.alpha_list"]),
    "mis-shaped": (lambda t: t.update({"model.layers.1.linear_attn.q_proj.weight": torch.zeros(32, 64)}),
                   ["model.layers.1.linear_attn.q_proj.weight", "[32, 64]", "[64, 64]"]),
    "stray": (lambda t: t.update({"model.layers.4.linear_attn.bogus": torch.zeros(3)}),
              ["unexpected tensor", "model.layers.4.linear_attn.bogus"]),
    # A teacher's attention weights left in a layer that is now linear.
    "stale attention": (lambda t: t.update({"model.layers.1.self_attn.q_proj.weight": torch.zeros(64, 64)}),
                        ["unexpected tensor", "model.layers.1.self_attn.q_proj.weight"]),
    "integer weights": (lambda t: t.update({"model.layers.3.linear_attn.z_proj.weight":
                                            torch.zeros(64, 64, dtype=torch.int32)}),
                        ["model.layers.3.linear_attn.z_proj.weight", "I32"]),
}


@pytest.mark.parametrize("case", list(TENSOR_CASES))
def test_bad_tensors(good, tmp_path, testkit_bin, case):
    fn, needles = TENSOR_CASES[case]
    m = copy(good, tmp_path)
    edit_tensors(m, fn)
    msg = refused(load_cmd(testkit_bin, m, tmp_path), str(m), *needles)
    print(f"{case}: {msg.strip()}")


HYBRID_ARG_CASES = {
    "unknown --mixer": (["--mixer", "mamba"], ["mamba", "gdn, dsla, hypenet"]),
    "layer out of range": (["--attention-layers", "0,9"], ["attention layer 9", "0..5"]),
    "two selections": (["--attention-layers", "0", "--attention-every", "2"], ["one of"]),
    "layer types length": (["--layer-types", "gdn,gdn"], ["2 layer types", "6 layers"]),
    "bad JSON": (["--linear-config", "{num_heads: 2"], ["--linear-config", "invalid JSON"]),
    "non-dividing heads": (["--linear-config", '{"num_heads": 4, "num_v_heads": 6}'], ["layer 1 (gdn)", "value heads 6"]),
    "HyPE base": (["--hype", "--hype-base", "1"], ["logn base"]),
    "interleave 0": (["--attention-every", "0"], ["interleave must be >= 1"]),
}


@pytest.mark.parametrize("case", list(HYBRID_ARG_CASES))
def test_bad_hybrid_arguments(good, tmp_path, hyla_bin, case):
    args, needles = HYBRID_ARG_CASES[case]
    refused([hyla_bin, "hybrid", good / "teacher", "--out", tmp_path / "out", *args], *needles)
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_output_over_the_input_is_refused(good, tmp_path, hyla_bin):
    # Writing the student (or an export) into the teacher's directory would destroy it.
    before = (good / "teacher" / "model.safetensors").read_bytes()
    refused([hyla_bin, "hybrid", good / "teacher", "--out", good / "teacher"], "overwrite")
    refused([hyla_bin, "export", good / "hybrid", "--format", "fla", "--out", good / "hybrid"], "overwrite")
    assert (good / "teacher" / "model.safetensors").read_bytes() == before


def test_missing_teacher_tensor_is_named(good, tmp_path, hyla_bin):
    t = tmp_path / "teacher"
    shutil.copytree(good / "teacher", t)
    edit_tensors(t, lambda d: d.pop("model.layers.4.mlp.up_proj.weight"))
    refused([hyla_bin, "hybrid", t, "--out", tmp_path / "out"], "model.layers.4.mlp.up_proj.weight")
