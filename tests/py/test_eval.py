"""`hyla eval` / `hyla report` against independent oracles: perplexity and KL(teacher || student)
computed here in float64 from transformers' logits on the same windows; decode-cache memory
from the config's shapes; the report's table and plots from the JSON it reads."""
import json
import xml.etree.ElementTree as ET

import pytest
import tokenizers
import torch
import transformers
from conftest import ROOT, run

TINY = ROOT / "assets" / "teacher-tiny"
SMALL = ROOT / "assets" / "teacher-small"  # same tokenizer: the "student" of the KL oracle
TEXT = TINY / "validation.txt"
CTX, MAX_TOKENS = 256, 2048


def _tokens():
    tok = tokenizers.Tokenizer.from_file(str(TINY / "tokenizer.json"))
    ids = tok.encode(TEXT.read_text(), add_special_tokens=False).ids[:MAX_TOKENS]
    return torch.tensor(ids, dtype=torch.long)


def _windows(ids):
    """Non-overlapping windows of CTX tokens; the last one may be shorter."""
    return [ids[i:i + CTX] for i in range(0, len(ids), CTX) if len(ids[i:i + CTX]) >= 2]


def _logits64(path, ids):
    m = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    with torch.no_grad():
        return [m(w[None]).logits[0, :-1].double() for w in _windows(ids)]


@pytest.fixture(scope="module")
def oracle():
    ids = _tokens()
    return ids, _logits64(TINY, ids), _logits64(SMALL, ids)


def test_perplexity_agrees_with_transformers_in_float64(oracle, hyla_bin):
    ids, teacher, _ = oracle
    nll, n = 0.0, 0
    for w, lg in zip(_windows(ids), teacher):
        nll -= torch.log_softmax(lg, -1).gather(-1, w[1:, None]).sum().item()
        n += len(w) - 1
    want = torch.tensor(nll / n).exp().item()
    r = run([hyla_bin, "eval", "ppl", TINY, TEXT, "--device", "cpu", "--ctx", CTX, "--max-tokens", MAX_TOKENS])
    got = json.loads(r.stdout)
    assert got["tokens"] == n
    assert abs(got["ppl"] - want) / want < 2e-5, (got["ppl"], want)


def test_kl_to_teacher_agrees_with_transformers_in_float64(oracle, hyla_bin):
    ids, teacher, student = oracle
    kl, agree, n = 0.0, 0, 0
    for t, s in zip(teacher, student):
        lt, ls = torch.log_softmax(t, -1), torch.log_softmax(s, -1)
        kl += (lt.exp() * (lt - ls)).sum().item()
        agree += (t.argmax(-1) == s.argmax(-1)).sum().item()
        n += t.shape[0]
    r = run([hyla_bin, "eval", "kl", SMALL, TEXT, "--teacher", TINY, "--device", "cpu", "--ctx", CTX,
             "--max-tokens", MAX_TOKENS])
    got = json.loads(r.stdout)
    assert got["tokens"] == n
    assert got["kl"] > 0.05  # two different models: a real divergence, not a trivial zero
    assert abs(got["kl"] - kl / n) < 1e-4 * max(1.0, kl / n), (got["kl"], kl / n)
    assert abs(got["top1_agreement"] - agree / n) < 2e-3


def _eval_all(hyla_bin, model, out, *extra):
    run([hyla_bin, "eval", "all", model, "--device", "cpu", "--text", TEXT, "--ctx", CTX,
         "--max-tokens", 1024, "--lengths", "128,1024", "--mqar-samples", 8, "--passkey-samples", 3,
         "--niah-samples", 3, "--niah-new-tokens", 12, "-o", out, *extra])
    return json.loads(out.read_text())


def test_eval_all_and_report_compare_models_side_by_side(tmp_path, hyla_bin):
    t = _eval_all(hyla_bin, TINY, tmp_path / "teacher.json", "--name", "teacher")
    s = _eval_all(hyla_bin, SMALL, tmp_path / "small.json", "--teacher", TINY, "--name", "small")
    assert t["layer_kinds"] == "AAAAA" and "kl" not in t["text"]
    assert 0 < s["text"]["kl"] and s["text"]["teacher"] == str(TINY)
    tasks = {(r["task"], r["length"]) for r in s["recall"]}
    assert tasks == {(k, L) for k in ("mqar", "passkey", "niah") for L in (128, 1024)}
    assert all(0 <= r["accuracy"] <= 1 for r in s["recall"])
    # Decode cache of an all-attention model: layers x 2 (K, V) x kv heads x head dim x 2 bytes.
    cfg = json.loads((TINY / "config.json").read_text())
    per_tok = cfg["num_hidden_layers"] * 2 * cfg["num_key_value_heads"] * cfg["head_dim"] * 2
    assert t["cache"]["kv_cache_bytes_per_token"] == per_tok
    assert t["cache"]["decode_cache_bytes"]["32768"] == per_tok * 32768

    r = run([hyla_bin, "report", tmp_path / "teacher.json", tmp_path / "small.json", "--out", tmp_path / "r.md"])
    md = (tmp_path / "r.md").read_text()
    assert "| teacher | AAAAA |" in r.stdout and "| small |" in r.stdout
    assert f"{s['text']['ppl']:.2f}" in md and f"{s['text']['kl']:.4f}" in md
    for name in ("ppl", "kl", "recall-mqar", "recall-passkey", "recall-niah", "cache"):
        svg = tmp_path / f"r-{name}.svg"
        assert f"({svg.name})" in md
        ET.parse(svg)  # well-formed


def test_report_refuses_a_file_that_is_not_an_evaluation(tmp_path, hyla_bin):
    bad = tmp_path / "x.json"
    bad.write_text('{"a": 1}')
    r = run([hyla_bin, "report", bad, "--out", tmp_path / "r.md"], check=False)
    assert r.returncode != 0 and "x.json: not a `hyla eval all` result" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "r.md").exists()
    r = run([hyla_bin, "eval", "all", TINY, "--text", tmp_path / "missing.txt"], check=False)
    assert r.returncode != 0 and "missing.txt: file not found" in r.stderr
