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
