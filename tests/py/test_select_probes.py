"""`hyla select`'s probing methods on the shipped teacher-tiny (docs/select.md):
GA-S2's zero-shot proxy against transformers (a zero-gate GDN layer outputs exactly zero,
so "only layer i kept" is the teacher with every other layer's attention output zeroed)
and against `hyla convert` + `hyla eval ppl` run separately; a recipe naming the result;
KL-guided (full and cheap) with its rank agreement recomputed in float64; HALO's score
recomputed in float64 from the R and C the JSON reports; refusals."""
import json
import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import tokenizers
import torch
import transformers
from conftest import ROOT, run

TINY = ROOT / "assets" / "teacher-tiny"
TRAIN = ROOT / "assets" / "text" / "train.txt"  # probes read training text, never validation.txt
CTX, MAX_TOKENS = 128, 512
L = 5


@pytest.fixture(scope="module")
def hf():
    return transformers.AutoModelForCausalLM.from_pretrained(TINY, dtype=torch.float32,
                                                             attn_implementation="eager").eval()


@pytest.fixture(scope="module")
def train_ids():
    tok = tokenizers.Tokenizer.from_file(str(TINY / "tokenizer.json"))
    return torch.tensor(tok.encode(TRAIN.read_text(), add_special_tokens=False).ids[:MAX_TOKENS])


def _select(hyla_bin, tmp_path, method, *extra, name=None):
    name = name or method
    out, svg = tmp_path / f"{name}.json", tmp_path / f"{name}.svg"
    r = run([hyla_bin, "select", TINY, "--device", "cpu", "--method", method, "--text", TRAIN, "--max-tokens",
             MAX_TOKENS, "--ctx", CTX, "--out", out, "--plot", svg, *extra])
    ET.parse(svg)
    return json.loads(out.read_text()), r.stdout


def _ppl_with_only(model, ids, keep):
    """Perplexity (float64 NLL) with every layer's attention output but `keep`'s zeroed."""
    hooks = [model.model.layers[j].self_attn.register_forward_hook(
        lambda mod, args, out: (torch.zeros_like(out[0]),) + tuple(out[1:])) for j in range(L) if j != keep]
    nll, n = 0.0, 0
    try:
        with torch.no_grad():
            for i in range(0, len(ids), CTX):
                w = ids[i:i + CTX]
                if len(w) < 2:
                    continue
                lp = torch.log_softmax(model(w[None]).logits[0, :-1].double(), -1)
                nll -= lp.gather(-1, w[1:, None]).sum().item()
                n += len(w) - 1
    finally:
        for h in hooks:
            h.remove()
    return math.exp(nll / n)


def test_ga_s2_zero_gate_is_the_teacher_with_every_other_layer_bypassed(hf, train_ids, tmp_path, hyla_bin):
    s, _ = _select(hyla_bin, tmp_path, "ga-s2", "--keep", 2)  # --init auto: zero-gate
    assert s["method"] == "ga-s2" and s["extra"]["init"] == "zero-gate"
    want = [_ppl_with_only(hf, train_ids, i) for i in range(L)]
    for got, w in zip(s["scores"], want):
        assert abs(got - w) / w < 1e-5, (s["scores"], want)
    # GA-S2 keeps the k layers with the LOWEST perplexity.
    assert s["ranking"] == sorted(range(L), key=lambda i: (want[i], i))
    assert s["attention_layers"] == sorted(s["ranking"][:2])
    # A recipe names the result: the converted student keeps exactly those layers.
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'[teacher]\npath = "{TINY}"\n[student]\nmixer = "gdn"\ninit = "transfer"\n'
                      f'selection = "{tmp_path / "ga-s2.json"}"\n')
    run([hyla_bin, "convert", "--recipe", recipe, "--out", tmp_path / "student"])
    types = json.loads((tmp_path / "student" / "config.json").read_text())["layer_types"]
    assert [i for i, t in enumerate(types) if t == "full_attention"] == s["attention_layers"]


def test_ga_s2_transfer_score_equals_convert_then_eval_ppl(tmp_path, hyla_bin):
    s, _ = _select(hyla_bin, tmp_path, "ga-s2", "--keep", 1, "--init", "transfer", "--seed", 0)
    assert s["extra"]["init"] == "transfer"
    layer = s["attention_layers"][0]
    out = tmp_path / "only"
    run([hyla_bin, "convert", TINY, "--out", out, "--attention-layers", layer, "--init", "transfer",
         "--dtype", "float32"])
    ev = json.loads(run([hyla_bin, "eval", "ppl", out, TRAIN, "--device", "cpu", "--ctx", CTX, "--max-tokens",
                         MAX_TOKENS]).stdout)
    assert abs(s["scores"][layer] - ev["ppl"]) / ev["ppl"] < 1e-5, (s["scores"], ev)
    assert s["scores"][layer] == min(s["scores"])


def test_bad_requests_fail_cleanly(tmp_path, hyla_bin):
    for args, msg in [
        (["--method", "ga-s2", "--keep", 9], "--keep 9: the teacher has 5 layers"),
        (["--method", "ga-s2", "--init", "magic"], "--init magic: unknown"),
        (["--method", "kl-guided-cheap", "--cheap", "guess"], "--cheap guess"),
        (["--method", "ga-s2", "--compare-cheap"], "--compare-cheap applies to --method kl-guided"),
        (["--method", "nope"], "--method nope: unknown"),
    ]:
        r = run([hyla_bin, "select", TINY, "--device", "cpu", "--text", TRAIN, "--out", tmp_path / "x.json", *args],
                check=False)
        assert r.returncode != 0 and msg in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "x.json").exists()


# Stage 1 and probes at a test-sized budget: seq 32 × batch 4 = 128 tokens a step.
TRAINING = ["--train-seq-len", 32, "--train-batch", 4, "--align-tokens", 256, "--seed", 7]
MQAR = ["--mqar-samples", 16, "--mqar-length", 128, "--mqar-kv-pairs", 8]


def _one_layer_replaced(stage1, layer, out):
    """The teacher with only `layer` replaced by its stage-1 mixer, assembled as a checkpoint
    from the files: the stage-1 student's tensors, every other layer's attention the
    teacher's (float32)."""
    from safetensors.torch import load_file, save_file
    student, teacher = {}, {}
    for f in sorted(stage1.glob("*.safetensors")):
        student.update(load_file(str(f)))
    for f in sorted(TINY.glob("*.safetensors")):
        teacher.update(load_file(str(f)))
    # Stage 1 trains only the mixers: everything else is still the teacher's.
    for k, v in student.items():
        if ".linear_attn." not in k:
            assert torch.equal(v, teacher[k].float()), k
    tensors = {k: v for k, v in student.items()
               if ".linear_attn." not in k or k.startswith(f"model.layers.{layer}.")}
    for k, v in teacher.items():
        if ".self_attn." in k and not k.startswith(f"model.layers.{layer}."):
            tensors[k] = v.float()
    cfg = json.loads((stage1 / "config.json").read_text())
    cfg["layer_types"] = ["full_attention" if j != layer else cfg["layer_types"][j] for j in range(L)]
    out.mkdir()
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(cfg))
    (out / "tokenizer.json").write_text((TINY / "tokenizer.json").read_text())
    return out


def _positions(ranking):
    pos = np.empty(len(ranking), dtype=np.float64)
    pos[np.asarray(ranking)] = np.arange(len(ranking), dtype=np.float64)
    return pos


def test_kl_guided_full_probes_and_the_agreement_of_the_cheap_rankings(tmp_path, hyla_bin):
    s, _ = _select(hyla_bin, tmp_path, "kl-guided", "--keep", 2, "--compare-cheap", "--probe-tokens", 256,
                     "--cheap-probe-tokens", 128, "--save-stage1", tmp_path / "stage1", *TRAINING)
    assert s["method"] == "kl-guided" and s["extra"]["steps"] == 2 and s["extra"]["stage1"]["steps"] == 2
    # Lower probe KL keeps the layer as attention.
    assert s["ranking"] == sorted(range(L), key=lambda i: (s["scores"][i], i))
    cheap = s["extra"]["cheap"]
    assert cheap["short_probe"]["measurements"]["steps"] == 1
    assert cheap["short_probe"]["ranking"] == sorted(range(L), key=lambda i: (cheap["short_probe"]["scores"][i], i))
    assert cheap["remove"]["ranking"] == sorted(range(L), key=lambda i: (-cheap["remove"]["scores"][i], i))
    for name, c in cheap.items():
        # Spearman's rho as the Pearson correlation of the two position vectors (float64).
        rho = np.corrcoef(_positions(s["ranking"]), _positions(c["ranking"]))[0, 1]
        assert abs(c["spearman_rho"] - rho) < 1e-12, (name, c["spearman_rho"], rho)
        want = len(set(s["ranking"][:2]) & set(c["ranking"][:2])) / 2
        assert c["top_k_overlap"] == want
    # The remove estimator: KL(teacher || teacher with layer 3 replaced), from a checkpoint
    # assembled by hand and scored by `hyla eval kl`.
    ckpt = _one_layer_replaced(tmp_path / "stage1", 3, tmp_path / "only3")
    ev = json.loads(run([hyla_bin, "eval", "kl", ckpt, TRAIN, "--teacher", TINY, "--device", "cpu", "--ctx", CTX,
                         "--max-tokens", MAX_TOKENS]).stdout)
    assert abs(cheap["remove"]["scores"][3] - ev["kl"]) / ev["kl"] < 1e-5, (cheap["remove"]["scores"], ev)
    # A recipe names the result.
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'[teacher]\npath = "{TINY}"\n[student]\nmixer = "gdn"\n'
                      f'selection = "{tmp_path / "kl-guided.json"}"\n')
    run([hyla_bin, "convert", "--recipe", recipe, "--out", tmp_path / "student"])
    types = json.loads((tmp_path / "student" / "config.json").read_text())["layer_types"]
    assert [i for i, t in enumerate(types) if t == "full_attention"] == s["attention_layers"]


def test_halo_score_recomputed_in_float64(tmp_path, hyla_bin):
    s, _ = _select(hyla_bin, tmp_path, "halo", "--keep", 2, "--save-stage1", tmp_path / "stage1", *TRAINING, *MQAR)
    e = s["extra"]
    r, c = np.array(e["retrieval"], dtype=np.float64), np.array(e["commonsense"], dtype=np.float64)
    assert np.array_equal(c, -np.array(e["kl"]))  # --halo-commonsense kl (default)
    want = np.minimum(50.0, (r.max() - r) / (c.max() - c + 1e-10))
    assert np.allclose(s["scores"], want, rtol=1e-12, atol=0), (s["scores"], want)
    # Higher keeps; the layer at C_max gets the clip value 50 unless it also has R_max.
    assert s["ranking"] == sorted(range(L), key=lambda i: (-want[i], i))
    top = int(np.argmax(c))
    assert want[top] == (0.0 if r[top] == r.max() else 50.0)
    # R and C of one layer from its checkpoint, by `hyla eval recall` and `hyla eval kl`.
    ckpt = _one_layer_replaced(tmp_path / "stage1", 2, tmp_path / "only2")
    rec = json.loads(run([hyla_bin, "eval", "recall", ckpt, "--device", "cpu", "--task", "mqar", "--samples", 16,
                          "--length", 128, "--kv-pairs", 8, "--seed", 7]).stdout)
    assert rec["accuracy"] == r[2], (rec, e["retrieval"])
    ev = json.loads(run([hyla_bin, "eval", "kl", ckpt, TRAIN, "--teacher", TINY, "--device", "cpu", "--ctx", CTX,
                         "--max-tokens", MAX_TOKENS]).stdout)
    assert abs(-c[2] - ev["kl"]) / ev["kl"] < 1e-5
