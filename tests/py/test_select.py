"""`hyla select` against independent oracles on the shipped teacher-tiny: bypass-ppl against
transformers with that layer's attention output zeroed by a forward hook, bypass-recall
against transformers' MQAR accuracy under the same hook (samples from `hyla data synth`),
DSLA-Serve's entropy against float64 entropies of transformers' `output_attentions`; every
method writes its JSON and SVG; a selection file for another model is refused."""
import json
import math
import xml.etree.ElementTree as ET

import pytest
import tokenizers
import torch
import transformers
from conftest import ROOT, run

TINY = ROOT / "assets" / "teacher-tiny"
SMALL = ROOT / "assets" / "teacher-small"
TRAIN = ROOT / "assets" / "text" / "train.txt"  # probes read training text
CTX, MAX_TOKENS = 256, 2048


@pytest.fixture(scope="module")
def hf():
    return transformers.AutoModelForCausalLM.from_pretrained(TINY, dtype=torch.float32,
                                                             attn_implementation="eager").eval()


@pytest.fixture(scope="module")
def train_ids():
    tok = tokenizers.Tokenizer.from_file(str(TINY / "tokenizer.json"))
    return torch.tensor(tok.encode(TRAIN.read_text(), add_special_tokens=False).ids[:MAX_TOKENS])


def _select(hyla_bin, tmp_path, method, *extra):
    out, svg = tmp_path / f"{method}.json", tmp_path / f"{method}.svg"
    run([hyla_bin, "select", TINY, "--device", "cpu", "--method", method, "--out", out, "--plot", svg, *extra])
    ET.parse(svg)
    return json.loads(out.read_text())


class _Bypass:
    """Zeroes layer `layer`'s self-attention output (the residual passes through)."""

    def __init__(self, model, layer):
        self.h = None if layer is None else model.model.layers[layer].self_attn.register_forward_hook(
            lambda mod, args, out: (torch.zeros_like(out[0]),) + tuple(out[1:]))

    def __enter__(self):
        return self

    def __exit__(self, *a):
        if self.h:
            self.h.remove()


def _ppl(model, ids):
    nll, n = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(ids), CTX):
            w = ids[i:i + CTX]
            if len(w) < 2:
                continue
            lp = torch.log_softmax(model(w[None]).logits[0, :-1].double(), -1)
            nll -= lp.gather(-1, w[1:, None]).sum().item()
            n += len(w) - 1
    return math.exp(nll / n)


def test_bypass_ppl_matches_transformers_with_the_layer_zeroed(hf, train_ids, tmp_path, hyla_bin):
    s = _select(hyla_bin, tmp_path, "bypass-ppl", "--text", TRAIN, "--max-tokens", MAX_TOKENS, "--ctx", CTX,
                "--keep", 2)
    base = _ppl(hf, train_ids)
    assert abs(s["extra"]["baseline_ppl"] - base) / base < 1e-4
    want = []
    for layer in range(5):
        with _Bypass(hf, layer):
            want.append(_ppl(hf, train_ids))
    for got, w in zip(s["extra"]["bypassed_ppl"], want):
        assert abs(got - w) / w < 1e-4, (s["extra"]["bypassed_ppl"], want)
    for got, w in zip(s["scores"], want):
        assert abs(got - math.log(w / base)) < 1e-4
    top2 = sorted(sorted(range(5), key=lambda i: -want[i])[:2])
    assert s["attention_layers"] == top2 and s["method"] == "bypass-ppl"


def test_bypass_recall_matches_transformers_mqar_accuracy(hf, tmp_path, hyla_bin):
    n, L, kv, seed = 16, 128, 8, 777
    s = _select(hyla_bin, tmp_path, "bypass-recall", "--mqar-samples", n, "--mqar-length", L,
                "--mqar-kv-pairs", kv, "--seed", seed)
    synth = run([hyla_bin, "data", "synth", "--task", "mqar", "--count", n, "--seed", seed, "--vocab", 4096,
                 "--seq-len", L, "--num-kv", kv, "--token-offset", 4096]).stdout
    rows = [json.loads(x) for x in synth.splitlines()]
    x = torch.tensor([r["input"] for r in rows])
    t = torch.tensor([r["target"] for r in rows])
    m = torch.tensor([r["mask"] for r in rows]).bool()

    def acc(layer):
        with _Bypass(hf, layer), torch.no_grad():
            pred = hf(x).logits.argmax(-1)
        return ((pred == t) & m).sum().item() / m.sum().item()

    base = acc(None)
    assert abs(s["extra"]["baseline_accuracy"] - base) < 1e-9
    assert base > 0.5  # teacher-tiny was trained with MQAR in its mix
    for layer in range(5):
        assert abs(s["scores"][layer] - (base - acc(layer))) < 1e-9, layer


def test_entropy_matches_float64_entropy_of_transformers_attentions(hf, train_ids, tmp_path, hyla_bin):
    s = _select(hyla_bin, tmp_path, "entropy", "--text", TRAIN, "--max-tokens", MAX_TOKENS, "--ctx", CTX,
                "--prompts", 4, "--keep", 2)
    ent = [0.0] * 5
    for p in s["extra"]["prompts"]:
        w = train_ids[p["offset"]:p["offset"] + p["length"]]
        with torch.no_grad():
            att = hf(w[None], output_attentions=True).attentions
        for layer, a in enumerate(att):
            pr = a[0, :, -1].double()  # [heads, T]: the last query row
            terms = torch.where(pr > 1e-9, -pr * torch.log(pr.clamp_min(1e-300)), torch.zeros_like(pr))
            ent[layer] += terms.sum(-1).mean().item() / len(s["extra"]["prompts"])
    for got, want in zip(s["scores"], ent):
        assert abs(got - want) < 1e-4, (s["scores"], ent)
    # DSLA-Serve converts the lowest-entropy layer first; the highest-entropy layers stay.
    assert s["extra"]["conversion_order"] == sorted(range(5), key=lambda i: ent[i])
    assert s["attention_layers"] == sorted(sorted(range(5), key=lambda i: -ent[i])[:2])
    low = _select(hyla_bin, tmp_path, "entropy", "--text", TRAIN, "--max-tokens", MAX_TOKENS, "--ctx", CTX,
                  "--prompts", 4, "--keep", 2, "--direction", "low-keeps")
    assert low["attention_layers"] == sorted(sorted(range(5), key=lambda i: ent[i])[:2])


def test_uniform_interleave_and_recut_of_a_ranking(tmp_path, hyla_bin):
    s = _select(hyla_bin, tmp_path, "uniform", "--keep", 2)
    assert s["attention_layers"] == [0, 2] and s["ranking"][:2] == [0, 2]
    out = tmp_path / "recut.json"
    run([hyla_bin, "select", TINY, "--from", tmp_path / "uniform.json", "--keep", 1, "--out", out])
    assert json.loads(out.read_text())["attention_layers"] == [0]


def test_refuses_bad_requests_and_another_models_selection(tmp_path, hyla_bin):
    _select(hyla_bin, tmp_path, "uniform", "--share", 0.25)
    r = run([hyla_bin, "select", SMALL, "--from", tmp_path / "uniform.json", "--keep", 1], check=False)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "uniform.json: selection was made for another model" in r.stderr
    assert "5 layers" in r.stderr and f"{json.loads((SMALL / 'config.json').read_text())['num_hidden_layers']} layers" \
        in r.stderr
    r = run([hyla_bin, "select", TINY, "--share", 0.05, "--out", tmp_path / "none.json"], check=False)
    assert r.returncode != 0 and "keeps no attention layer of 5" in r.stderr
    assert not (tmp_path / "none.json").exists()
    r = run([hyla_bin, "select", TINY, "--method", "bypass-ppl"], check=False)
    assert r.returncode != 0 and "needs --text" in r.stderr
    r = run([hyla_bin, "select", TINY, "--method", "magic"], check=False)
    assert r.returncode != 0 and "--method magic: unknown" in r.stderr
