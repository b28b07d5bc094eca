"""`hyla convert`: attention weight transfer into GDN, DSLA and HypeNet mixers.

Oracles (none of them hyla's own numbers):
  * transformers' attention modules of the teacher (random GQA Llama / Qwen2 / Qwen3 written
    with save_pretrained): the converted mixer's q/k/v/o projections, run by hyla on the same
    hidden states (`hyla_testkit mixer-parts`), equal the teacher's projections with k/v
    expanded in the chosen GQA layout — "heads" (kv head j/G serves query head j, what
    attention computes) or "rows" (every weight row repeated G times, the references' layout);
  * a DSLA layer whose decays are forced to zero (gate weights 0, biases 1e4, so
    logsigmoid = -0.0 in float64) equals unnormalised causal linear attention of the teacher's
    own q/k/v/o, computed here in float64: y_t = W_o sum_{j<=t} (q_t . k_j / sqrt(Dh)) v_j;
  * a converted GDN student exported with `hyla export --format fla` loads into fla's
    GatedDeltaNetForCausalLM and gives hyla's logits (test_export_fla.py's CPU stand-ins).
Bad input: clear one-line errors and nothing written.
"""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import transformers
from safetensors.torch import load_file, save_file

from conftest import run
from test_export_fla import (  # noqa: F401  (fla_on_cpu is a fixture)
    TOL32, TOL64, export, fla_on_cpu, hyla_logits, load_fla, rel)

HIDDEN, HEADS, KV, HD, LAYERS, VOCAB = 64, 4, 2, 16, 3, 300
G = HEADS // KV


def teacher_config(family):
    base = dict(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=96, num_hidden_layers=LAYERS,
                num_attention_heads=HEADS, num_key_value_heads=KV, head_dim=HD, max_position_embeddings=128,
                initializer_range=0.2, rms_norm_eps=1e-6, bos_token_id=1, eos_token_id=2, pad_token_id=None,
                tie_word_embeddings=False)
    cls = {"llama": (transformers.LlamaConfig, transformers.LlamaForCausalLM),
           "qwen2": (transformers.Qwen2Config, transformers.Qwen2ForCausalLM),
           "qwen3": (transformers.Qwen3Config, transformers.Qwen3ForCausalLM)}[family]
    return cls[0](**base), cls[1]


@pytest.fixture(scope="module")
def teachers(tmp_path_factory):
    root = tmp_path_factory.mktemp("teachers")
    out = {}
    for i, family in enumerate(("llama", "qwen2", "qwen3")):
        cfg, cls = teacher_config(family)
        torch.manual_seed(100 + i)
        model = cls(cfg).eval()
        with torch.no_grad():  # non-trivial biases and q/k norms, so a dropped one shows
            for n, p in model.named_parameters():
                if n.endswith("bias"):
                    p.normal_(0, 0.5)
                elif "q_norm" in n or "k_norm" in n:
                    p.add_(0.3 * torch.randn_like(p))
        model.save_pretrained(root / family)
        out[family] = root / family
    return out


def convert(hyla_bin, teacher, out, *args):
    run([hyla_bin, "convert", teacher, "--out", out, "--attention-every", "2", "--dtype", "float32", *args])
    return out


def mixer_parts(testkit_bin, model, layer, x, a, tmp_path):
    src, dst = tmp_path / "in.safetensors", tmp_path / "parts.safetensors"
    save_file({"x": x.contiguous(), "a": a.contiguous()}, src)
    run([testkit_bin, "mixer-parts", "--model", model, "--layer", str(layer), "--input", src, "--out", dst])
    return load_file(dst)


def expand(t, layout):
    """[..., Hkv*Dh] -> [..., Hq*Dh] as the student's k/v heads hold the teacher's."""
    if layout == "heads":
        return t.unflatten(-1, (KV, HD)).repeat_interleave(G, dim=-2).flatten(-2)
    return t.repeat_interleave(G, dim=-1)  # row r of the student = row r // G of the teacher


def rel64(a, b):
    return float((a - b).norm() / b.norm())


TRANSFER = {  # teacher, mixer, layout, whether the mixer holds the q/k/v biases
    "llama-gdn-heads": ("llama", "gdn", "heads", False),
    "llama-gdn-rows": ("llama", "gdn", "rows", False),
    "qwen2-gdn-heads": ("qwen2", "gdn", "heads", False),
    "llama-dsla-rows": ("llama", "dsla", "rows", False),
    "qwen2-hypenet-rows": ("qwen2", "hypenet", "rows", True),
    "qwen3-hypenet-heads": ("qwen3", "hypenet", "heads", False),
}


@pytest.mark.parametrize("case", list(TRANSFER))
def test_transferred_projections_equal_teachers(case, teachers, tmp_path, hyla_bin, testkit_bin):
    family, mixer, layout, with_bias = TRANSFER[case]
    student = convert(hyla_bin, teachers[family], tmp_path / "s", "--mixer", mixer, "--gqa-layout", layout)
    cfg = json.loads((student / "config.json").read_text())
    assert cfg["layer_types"][1] == mixer and cfg["layer_types"][0] == "full_attention"
    info = json.loads((student / "convert.json").read_text())
    assert info["init"] == "transfer" and info["gqa_layout"] == layout
    g = torch.Generator().manual_seed(7)
    x = torch.randn(2, 9, HIDDEN, generator=g, dtype=torch.float64)
    a = torch.randn(2, 9, HEADS * HD, generator=g, dtype=torch.float64)
    got = mixer_parts(testkit_bin, student, 1, x, a, tmp_path)
    teacher = transformers.AutoModelForCausalLM.from_pretrained(teachers[family]).double().eval()
    attn = teacher.model.layers[1].self_attn
    with torch.no_grad():
        def proj(lin):
            return lin(x) if with_bias else F.linear(x, lin.weight)
        want = {"q": proj(attn.q_proj), "k": expand(proj(attn.k_proj), layout),
                "v": expand(proj(attn.v_proj), layout), "o": attn.o_proj(a)}
        if family == "qwen3" and layout == "heads":  # HALO keeps Qwen3's q/k norms in the mixer
            want["q_normed"] = attn.q_norm(attn.q_proj(x).unflatten(-1, (HEADS, HD)))
            want["k_normed"] = attn.k_norm(expand(attn.k_proj(x), "heads").unflatten(-1, (HEADS, HD)))
    for name, w in want.items():
        err = rel64(got[name], w)
        print(f"{case}: {name} rel. error {err:.1e} (transformers {transformers.__version__})")
        assert err <= 1e-6 if name.endswith("normed") else err <= 1e-12, (name, err)


def test_gqa_layouts_differ(teachers, tmp_path, hyla_bin):
    heads = load_file(convert(hyla_bin, teachers["llama"], tmp_path / "h") / "model.safetensors")
    rows = load_file(convert(hyla_bin, teachers["llama"], tmp_path / "r", "--gqa-layout", "rows")
                     / "model.safetensors")
    wk = load_file(teachers["llama"] / "model.safetensors")["model.layers.1.self_attn.k_proj.weight"]
    name = "model.layers.1.linear_attn.k_proj.weight"
    assert torch.equal(heads[name], wk.unflatten(0, (KV, HD)).repeat_interleave(G, 0).flatten(0, 1))
    assert torch.equal(rows[name], wk.repeat_interleave(G, 0))
    assert not torch.equal(heads[name], rows[name])


def test_dsla_without_decay_is_linear_attention(teachers, tmp_path, hyla_bin, testkit_bin):
    student = convert(hyla_bin, teachers["llama"], tmp_path / "s", "--mixer", "dsla")
    st = student / "model.safetensors"
    t = load_file(st)
    p = "model.layers.1.linear_attn."
    for gate in ("gk_proj", "gk_proj2"):  # decays forced to zero: logsigmoid(1e4) = -0.0
        t[p + gate + ".weight"] = torch.zeros_like(t[p + gate + ".weight"])
        t[p + gate + ".bias"] = torch.full_like(t[p + gate + ".bias"], 1e4)
    t[p + "alpha_list"] = torch.tensor([0.3, -1.2])  # any mix of two equal states is the state
    save_file(t, st, metadata={"format": "pt"})
    g = torch.Generator().manual_seed(3)
    B, T = 2, 11
    x = torch.randn(B, T, HIDDEN, generator=g, dtype=torch.float64)
    got = mixer_parts(testkit_bin, student, 1, x, torch.zeros(B, T, HEADS * HD, dtype=torch.float64), tmp_path)["y"]
    attn = transformers.AutoModelForCausalLM.from_pretrained(teachers["llama"]).double().model.layers[1].self_attn
    with torch.no_grad():
        q = attn.q_proj(x).view(B, T, HEADS, HD)
        k = attn.k_proj(x).view(B, T, KV, HD).repeat_interleave(G, dim=2)
        v = attn.v_proj(x).view(B, T, KV, HD).repeat_interleave(G, dim=2)
        scores = torch.einsum("bthd,bshd->bhts", q, k) / HD ** 0.5
        scores = scores * torch.tril(torch.ones(T, T, dtype=torch.float64))  # causal, unnormalised
        o = torch.einsum("bhts,bshd->bthd", scores, v).reshape(B, T, HEADS * HD)
        want = attn.o_proj(o)
    err = rel64(got, want)
    print(f"dsla with zero decay vs float64 linear attention of the teacher: rel. error {err:.1e}")
    assert err <= 1e-10


def test_named_inits_start_gdn_where_documented(teachers, tmp_path, hyla_bin, testkit_bin):
    """docs/convert.md "Named inits": transfer's new GDN parameters at the documented defaults
    (W_g ~ N(0, 0.02), A_log = log U(0, 16), softplus(dt_bias) in [1e-3, 0.1], o_norm = 1,
    convs the identity unless --conv-init fla); random-gate's W_g Kaiming-uniform
    U(+-1/sqrt(d)); zero-gate's W_g = 0, so the converted layer outputs exactly 0."""
    p = "model.layers.1.linear_attn."
    t = load_file(convert(hyla_bin, teachers["llama"], tmp_path / "t", "--init", "transfer") / "model.safetensors")
    assert abs(float(t[p + "g_proj.weight"].std()) - 0.02) < 0.003
    assert bool((t[p + "A_log"].exp() > 0).all() and (t[p + "A_log"].exp() <= 16).all())
    dt = F.softplus(t[p + "dt_bias"].double())
    assert bool((dt >= 1e-3 * (1 - 1e-6)).all() and (dt <= 0.1 * (1 + 1e-6)).all()), dt
    assert torch.equal(t[p + "o_norm.weight"], torch.ones(HD))
    identity = torch.zeros(HEADS * HD, 1, 4)
    identity[..., -1] = 1
    for c in ("q", "k", "v"):
        assert torch.equal(t[p + f"{c}_conv1d.weight"], identity), c
    fla = load_file(convert(hyla_bin, teachers["llama"], tmp_path / "f", "--conv-init", "fla") / "model.safetensors")
    assert not torch.equal(fla[p + "q_conv1d.weight"], identity)
    rg = load_file(convert(hyla_bin, teachers["llama"], tmp_path / "r", "--init", "random-gate")
                   / "model.safetensors")[p + "g_proj.weight"]
    bound = 1 / HIDDEN ** 0.5
    assert float(rg.abs().max()) <= bound and float(rg.abs().max()) > 0.9 * bound
    assert abs(float(rg.std()) - bound / 3 ** 0.5) < 0.1 * bound / 3 ** 0.5
    zero = convert(hyla_bin, teachers["llama"], tmp_path / "z", "--init", "zero-gate")
    assert not load_file(zero / "model.safetensors")[p + "g_proj.weight"].any()
    g = torch.Generator().manual_seed(5)
    x = torch.randn(2, 9, HIDDEN, generator=g, dtype=torch.float64)
    y = mixer_parts(testkit_bin, zero, 1, x, torch.zeros(2, 9, HEADS * HD, dtype=torch.float64), tmp_path)["y"]
    assert not y.any()


def test_converted_gdn_exports_to_fla(tmp_path, hyla_bin, testkit_bin, fla_on_cpu):  # noqa: F811
    from test_export_fla import make_teacher
    teacher = make_teacher("llama_gqa", tmp_path / "teacher")
    student = tmp_path / "student"
    run([hyla_bin, "convert", teacher, "--out", student, "--attention-every", "2", "--init", "random-gate",
         "--dtype", "float32"])
    out = tmp_path / "fla"
    export(hyla_bin, student, out)
    tensors = load_file(str(out / "model.safetensors"))
    wq = load_file(str(teacher / "model.safetensors"))["model.layers.1.self_attn.q_proj.weight"]
    assert torch.equal(tensors["model.layers.1.attn.q_proj.weight"], wq)  # the transfer survives export
    model = load_fla(out).double()
    ids = torch.randint(0, 256, (2, 40), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref = model(input_ids=ids, use_cache=False).logits.numpy()
    got64 = hyla_logits(testkit_bin, student, ids, "float64", tmp_path)
    got32 = hyla_logits(testkit_bin, student, ids, "float32", tmp_path)
    e64, e32 = rel(got64, ref), rel(got32, ref)
    print(f"converted GDN student vs fla: rel. error float64 {e64:.1e}, float32 {e32:.1e}")
    assert e64 <= TOL64 and e32 <= TOL32


# ------------------------------------------------------------ bad input (issue 14 item 8)

def refused(cmd, out, *needles):
    r = run(cmd, check=False)
    msg = r.stderr.strip()
    print(msg)
    assert r.returncode != 0
    assert "Traceback" not in msg and "terminate called" not in msg and len(msg.splitlines()) == 1, msg
    for n in needles:
        assert n in msg, (n, msg)
    assert not out.exists() or not any(out.iterdir()), "something was written"


def test_unsupported_architecture(tmp_path, hyla_bin, teachers):
    bad = tmp_path / "gpt2"
    bad.mkdir()
    cfg = json.loads((teachers["llama"] / "config.json").read_text())
    cfg["model_type"] = "gpt2"
    (bad / "config.json").write_text(json.dumps(cfg))
    refused([hyla_bin, "convert", bad, "--out", tmp_path / "o"], tmp_path / "o", "model_type", "gpt2")


BAD_ARGS = {
    "share leaves no attention layer": (["--attention-share", "0.1"], ["attention share 0.1", "no attention layer"]),
    "nothing left to convert": (["--attention-every", "1"], ["no layer is left to convert"]),
    "share out of range": (["--attention-share", "1.5"], ["[0, 1]"]),
    "unknown init": (["--init", "warm"], ['unknown init "warm"']),
    "unknown layout": (["--gqa-layout", "cols"], ['unknown GQA layout "cols"']),
    "taylor without calibration text": (["--init", "taylor"], ["--calib-text"]),
    "zero gate on dsla": (["--mixer", "dsla", "--init", "zero-gate"], ["no output gate"]),
    "transfer into other head shape": (["--linear-config", '{"gdn": {"num_heads": 2}}'],
                                       ["transfer: layer 1", "q_proj.weight"]),
}


@pytest.mark.parametrize("case", list(BAD_ARGS))
def test_bad_arguments(case, tmp_path, hyla_bin, teachers):
    args, needles = BAD_ARGS[case]
    out = tmp_path / "o"
    refused([hyla_bin, "convert", teachers["llama"], "--out", out, *args], out, *needles)


BAD_RECIPES = {
    "unknown key": ('[student]\nmixer = "gdn"\nattention_evrey = 2\n', ['unknown key "attention_evrey"']),
    "contradictory layers": ('[student]\nattention_every = 2\nattention_layers = [0]\n', ["give one of"]),
    "unknown taylor key": ('[student]\n[student.taylor]\nsteps = 3\n', ['[student].taylor: unknown key "steps"']),
    "wrong type": ('[student]\ninit = 3\n', ["init has the wrong type"]),
}


@pytest.mark.parametrize("case", list(BAD_RECIPES))
def test_bad_recipes(case, tmp_path, hyla_bin, teachers):
    text, needles = BAD_RECIPES[case]
    recipe = tmp_path / "r.toml"
    recipe.write_text(text)
    out = tmp_path / "o"
    refused([hyla_bin, "convert", teachers["llama"], "--out", out, "--recipe", recipe], out, str(recipe), *needles)


def test_recipe_student_table(tmp_path, hyla_bin, teachers):
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'[teacher]\npath = "{teachers["qwen2"]}"\n[student]\nmixer = "hypenet"\n'
                      'attention_layers = [2]\ngqa_layout = "rows"\ninit = "zero-gate"\n')
    out = tmp_path / "o"
    run([hyla_bin, "convert", "--out", out, "--recipe", recipe, "--dtype", "float32"])
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["layer_types"] == ["hypenet", "hypenet", "full_attention"]
    t = load_file(out / "model.safetensors")
    assert not t["model.layers.0.linear_attn.z_proj.weight"].any()
    wk = load_file(teachers["qwen2"] / "model.safetensors")["model.layers.0.self_attn.k_proj.weight"]
    assert torch.equal(t["model.layers.0.linear_attn.k_proj.weight"], wk.repeat_interleave(G, 0))
    np.testing.assert_equal(json.loads((out / "convert.json").read_text())["gqa_layout"], "rows")


def test_recipe_selection(tmp_path, hyla_bin, teachers):
    """[student] selection = a `hyla select` result: its attention layers, or its ranking's top K
    with attention_share, resolved as `hyla distill` resolves it; another model's file is refused."""
    sel = tmp_path / "sel.json"
    run([hyla_bin, "select", teachers["llama"], "--method", "uniform", "--keep", 1, "--out", sel])
    j = json.loads(sel.read_text())
    j["ranking"], j["attention_layers"] = [2, 0, 1], [2]  # an order uniform interleave would not give
    sel.write_text(json.dumps(j))
    A = "full_attention"
    for name, extra, want in (("sel", "", ["gdn", "gdn", A]), ("share", "attention_share = 0.67\n", [A, "gdn", A])):
        recipe = tmp_path / f"{name}.toml"
        recipe.write_text(f'[teacher]\npath = "{teachers["llama"]}"\n[student]\nmixer = "gdn"\n'
                          f'selection = "{sel}"\n{extra}')
        out = tmp_path / name
        run([hyla_bin, "convert", "--out", out, "--recipe", recipe, "--dtype", "float32"])
        assert json.loads((out / "config.json").read_text())["layer_types"] == want, name
        assert json.loads((out / "convert.json").read_text())["selection"] == str(sel)
        t = load_file(out / "model.safetensors")
        wq = load_file(teachers["llama"] / "model.safetensors")["model.layers.1.self_attn.q_proj.weight"]
        assert torch.equal(t["model.layers.1.linear_attn.q_proj.weight"], wq)  # converted layer got the transfer
    other = tmp_path / "other.json"
    run([hyla_bin, "select", teachers["qwen3"], "--method", "uniform", "--keep", 1, "--out", other])
    recipe = tmp_path / "other.toml"
    recipe.write_text(f'[teacher]\npath = "{teachers["llama"]}"\n[student]\nselection = "{other}"\n')
    out = tmp_path / "o"
    refused([hyla_bin, "convert", "--out", out, "--recipe", recipe], out, str(other), "another model")
