"""hyla's byte-level BPE tokenizer against PyPI `tokenizers` (the oracle): ids for 12,000
mixed lines, with and without special tokens, and decoding, for GPT-2, Llama-3 and Qwen2
style tokenizer.json files trained here by tokenizers' own BpeTrainer, plus variants of
them (legacy merges, prefix space, Split behaviours, added-token flags). Also checks that
`hyla tokenizer train` writes a file tokenizers loads and encodes identically."""
import copy
import json
import os
import pathlib
import random
import sys

import pytest

from conftest import ROOT, run

sys.path.insert(0, str(ROOT / "bench"))
import tokenizer_corpus as corpus  # noqa: E402

os.environ.setdefault("RAYON_NUM_THREADS", "2")
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers  # noqa: E402
from tokenizers import pre_tokenizers as pt, processors, trainers  # noqa: E402

LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
          r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
         r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
SPECIALS = {
    "gpt2": ["<|endoftext|>"],
    "llama3": ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
               "<|end_header_id|>", "<|eot_id|>"],
    "qwen2": ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
}
ALL_SPECIALS = sorted({s for v in SPECIALS.values() for s in v})
N_LINES = 12000


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("tok")


@pytest.fixture(scope="module")
def train_lines():
    return corpus.training_text(max_chars=1_500_000)


@pytest.fixture(scope="module")
def lines():
    out = corpus.mixed_lines(N_LINES, ALL_SPECIALS)
    assert len(out) >= 10000
    return out


def train(style, lines, vocab_size=3000):
    """A byte-level BPE of `style` trained by tokenizers' BpeTrainer."""
    ignore_merges = style == "llama3"
    tok = Tokenizer(models.BPE(ignore_merges=ignore_merges))
    if style == "gpt2":
        tok.pre_tokenizer = pt.ByteLevel(add_prefix_space=False)
    else:
        regex = LLAMA3 if style == "llama3" else QWEN2
        tok.pre_tokenizer = pt.Sequence([pt.Split(Regex(regex), "isolated"),
                                         pt.ByteLevel(add_prefix_space=False, use_regex=False)])
    if style == "qwen2":
        tok.normalizer = normalizers.NFC()
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS[style],
                                  initial_alphabet=pt.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(lines, trainer)
    if style == "llama3":
        bos = "<|begin_of_text|>"
        tok.post_processor = processors.Sequence([
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B:1",
                                          special_tokens=[(bos, tok.token_to_id(bos))])])
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    # Non-special added tokens with the flags tokenizers honours around matches.
    tok.add_tokens([AddedToken(" hyla", normalized=True), AddedToken("café", normalized=True),
                    AddedToken("<mask>", lstrip=True, rstrip=True, normalized=False),
                    AddedToken("ony", single_word=True, normalized=False)])
    return json.loads(tok.to_str())


@pytest.fixture(scope="module")
def trained(train_lines):
    return {style: train(style, train_lines) for style in ("gpt2", "llama3", "qwen2")}


def variants(trained):
    """(name, tokenizer.json dict, line limit) for every file the parity test runs."""
    out = [(s, j, None) for s, j in trained.items()]
    g = copy.deepcopy(trained["gpt2"])  # legacy "a b" merges + a prefix space per piece
    g["model"]["merges"] = [" ".join(m) for m in g["model"]["merges"]]
    g["pre_tokenizer"]["add_prefix_space"] = True
    out.append(("gpt2-legacy-prefix", g, 3000))
    q = copy.deepcopy(trained["qwen2"])  # a RoBERTa-style wrap and an NFKC normalizer
    q["normalizer"] = {"type": "Sequence", "normalizers": [{"type": "NFKC"}]}
    q["post_processor"] = {"type": "RobertaProcessing", "sep": ["<|im_end|>", 2],
                           "cls": ["<|im_start|>", 1], "trim_offsets": True,
                           "add_prefix_space": False}
    out.append(("qwen2-nfkc-roberta", q, 3000))
    for behavior, invert in [("Removed", False), ("MergedWithPrevious", False),
                             ("MergedWithNext", True), ("Contiguous", False)]:
        v = copy.deepcopy(trained["llama3"])
        v["pre_tokenizer"]["pretokenizers"].insert(0, {
            "type": "Split", "pattern": {"String": " "}, "behavior": behavior, "invert": invert})
        v["pre_tokenizer"]["pretokenizers"][-1]["use_regex"] = True
        out.append((f"llama3-split-{behavior}{'-invert' if invert else ''}", v, 1500))
    return out


def hyla_encode(testkit_bin, path, texts, decode):
    inp, out = path.with_suffix(".in.json"), path.with_suffix(".out.json")
    inp.write_text(json.dumps({"texts": texts, "decode": decode}))
    run([testkit_bin, "tokenizer-encode", "--tokenizer", path, "--input", inp, "--out", out])
    return json.loads(out.read_text())


def random_id_lists(tok, n, seed=5):
    rng = random.Random(seed)
    size = tok.get_vocab_size()
    return [[rng.randrange(size) for _ in range(rng.randint(1, 12))] for _ in range(n)]


def compare(name, tok, texts, got):
    """Counts lines whose ids differ; returns a few examples for the failure message."""
    bad = []
    for special, key in ((False, "encode"), (True, "encode_special")):
        want = [e.ids for e in tok.encode_batch(texts, add_special_tokens=special)]
        for i, (w, g) in enumerate(zip(want, got[key])):
            if w != g:
                bad.append(f"{name} special={special} line {i} {texts[i]!r}:\n  tokenizers {w}\n  hyla       {g}")
    return bad


def test_parity_with_tokenizers(testkit_bin, trained, lines, work):
    report, failures = [], []
    for name, spec, limit in variants(trained):
        path = work / f"{name}.json"
        path.write_text(json.dumps(spec, ensure_ascii=False))
        tok = Tokenizer.from_file(str(path))
        texts = lines[:limit] if limit else lines
        ids = [e.ids for e in tok.encode_batch(texts[:2000], add_special_tokens=True)]
        decode = ids + random_id_lists(tok, 500)
        got = hyla_encode(testkit_bin, path, texts, decode)
        bad = compare(name, tok, texts, got)
        for skip, key in ((False, "decode"), (True, "decode_skip")):
            want = tok.decode_batch(decode, skip_special_tokens=skip)
            bad += [f"{name} decode skip={skip} {decode[i]}: {w!r} vs {g!r}"
                    for i, (w, g) in enumerate(zip(want, got[key])) if w != g]
        report.append(f"{name}: {len(texts)} lines, {len(decode)} decodes, {len(bad)} mismatches")
        failures += bad
    print("\n".join(report))
    assert not failures, f"{len(failures)} mismatches:\n" + "\n".join(failures[:15])


def test_round_trip_decode(testkit_bin, trained, lines, work):
    """decode(encode(text)) gives the text back (NFC-normalized for Qwen2)."""
    path = work / "gpt2-rt.json"
    path.write_text(json.dumps(trained["gpt2"], ensure_ascii=False))
    texts = lines[:3000]
    got = hyla_encode(testkit_bin, path, texts, [])
    again = hyla_encode(testkit_bin, path, [], got["encode"])
    assert again["decode"] == texts


def test_bos_eos_and_vocab_size(testkit_bin, trained, work):
    path = work / "llama3-ids.json"
    path.write_text(json.dumps(trained["llama3"], ensure_ascii=False))
    tok = Tokenizer.from_file(str(path))
    got = hyla_encode(testkit_bin, path, ["hi"], [])
    assert got["bos"] == tok.token_to_id("<|begin_of_text|>")
    assert got["eos"] == tok.token_to_id("<|end_of_text|>")
    assert got["vocab_size"] == tok.get_vocab_size(with_added_tokens=True)


@pytest.mark.parametrize("style,bos", [("gpt2", None), ("llama3", "<|begin_of_text|>"),
                                       ("qwen2", None)])
def test_hyla_trained_tokenizer_loads_in_tokenizers(hyla_bin, testkit_bin, train_lines, lines,
                                                    work, style, bos):
    text = work / "train.txt"
    if not text.exists():
        text.write_text("\n".join(train_lines[: len(train_lines) // 2]))
    out = work / f"hyla-{style}.json"
    cmd = [hyla_bin, "-q", "tokenizer", "train", "--input", text, "--vocab-size", 2500,
           "--out", out, "--style", style, "--special-tokens", *SPECIALS[style]]
    run(cmd + (["--bos", bos] if bos else []))
    tok = Tokenizer.from_file(str(out))
    assert tok.get_vocab_size() == 2500
    texts = lines[:4000]
    got = hyla_encode(testkit_bin, out, texts, [])
    bad = compare(f"hyla-trained-{style}", tok, texts, got)
    assert not bad, f"{len(bad)} mismatches:\n" + "\n".join(bad[:10])
    if bos:
        assert got["encode_special"][0][0] == tok.token_to_id(bos)


def test_cli_encode_decode(hyla_bin, trained, work):
    path = work / "qwen2-cli.json"
    path.write_text(json.dumps(trained["qwen2"], ensure_ascii=False))
    tok = Tokenizer.from_file(str(path))
    text = "Hello <|im_start|>world 123456 ✨\nsecond line"
    r = run([hyla_bin, "tokenizer", "encode", "-t", path], input=text)
    got = [[int(x) for x in ln.split()] for ln in r.stdout.splitlines()]
    assert got == [tok.encode(t, add_special_tokens=False).ids for t in text.split("\n")]
    ids = tok.encode(text, add_special_tokens=False).ids
    r = run([hyla_bin, "tokenizer", "decode", "-t", path, *ids])
    assert r.stdout == tok.decode(ids, skip_special_tokens=False) + "\n"


@pytest.mark.parametrize("edit,needle", [
    (lambda j: j["model"].update(type="WordPiece"), "model.type"),
    (lambda j: j["model"]["merges"].append(["zzq", "qq"]), "model.merges["),
    (lambda j: j.update(pre_tokenizer={"type": "Whitespace"}), "pre_tokenizer.type"),
    (lambda j: j.update(normalizer={"type": "Lowercase"}), "normalizer.type"),
    (lambda j: j["model"].update(byte_fallback=True), "model.byte_fallback"),
    (lambda j: j.update(decoder={"type": "Metaspace"}), "decoder.type"),
    (lambda j: j["model"].update(frobnicate=1), "model.frobnicate"),
    (lambda j: j["pre_tokenizer"].update(pattern={"Regex": "(unclosed"}), "pre_tokenizer"),
])
def test_errors_name_file_and_field(testkit_bin, trained, work, edit, needle):
    spec = copy.deepcopy(trained["gpt2"])
    if needle == "pre_tokenizer":
        spec["pre_tokenizer"] = {"type": "Split", "pattern": {}, "behavior": "Isolated"}
    edit(spec)
    path = work / "broken.json"
    path.write_text(json.dumps(spec))
    r = run([testkit_bin, "tokenizer-encode", "--tokenizer", path, "--input", path, "--out",
             work / "x.json"], check=False)
    assert r.returncode != 0
    assert str(path) in r.stderr and needle in r.stderr, r.stderr
