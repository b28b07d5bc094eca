"""Synthetic recall samples from `hyla data synth`, checked against eval.md: MQAR by
inspection plus its query-slot distribution against numpy's sampling as Zoology does it;
passkey and NIAH prompts re-encoded with PyPI `tokenizers`, their formats rebuilt from
the spec strings, and their haystacks checked to be the longest that fits."""
import json
import re

import numpy as np
import pytest

from conftest import run
from test_data_helpers import data_tokenizer  # noqa: F401

PASSKEY_TASK = ("There is an important info hidden inside a lot of irrelevant text. Find it and "
                "memorize them. I will quiz you about the important information there.")
FILLER = ["The grass is green.", "The sky is blue.", "The sun is yellow.", "Here we go.",
          "There and back again."]


def synth(hyla_bin, *args):
    out = run([hyla_bin, "data", "synth", *args]).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_mqar_answers_and_query_distribution(hyla_bin):
    L, N, V, count = 128, 8, 8192, 3000
    samples = synth(hyla_bin, "--task", "mqar", "--count", count, "--seq-len", L, "--num-kv", N,
                    "--vocab", V, "--seed", 5)
    slots = np.zeros((L - 2 * N) // 2)
    for s in samples:
        x, y, m = (np.array(s[k]) for k in ("input", "target", "mask"))
        keys, vals = x[0:2 * N:2], x[1:2 * N:2]
        assert len(set(keys)) == N and len(set(vals)) == N
        assert ((1 <= keys) & (keys < V // 2)).all() and ((V // 2 <= vals) & (vals < V)).all()
        pos = np.flatnonzero(m)
        assert sorted(x[pos]) == sorted(keys), "every key queried exactly once"
        pairs = dict(zip(keys, vals))
        assert all(y[p] == pairs[x[p]] for p in pos), "label = the key's value"
        assert all((p - 2 * N) % 2 == 0 for p in pos)
        slots[(pos - 2 * N) // 2] += 1
    # Zoology's sampler: numpy choice without replacement, p ∝ a·g^(a−1).
    rng = np.random.RandomState(0)
    space, a = (L - 2 * N) // 2, 0.01
    p = a * np.arange(1, space + 1) ** (a - 1)
    p /= p.sum()
    ref = np.zeros(space)
    for _ in range(count):
        ref[rng.choice(space, size=N, replace=False, p=p)] += 1
    tv = 0.5 * np.abs(slots / slots.sum() - ref / ref.sum()).sum()
    assert tv < 0.03, f"query slot distribution differs from Zoology's (TV {tv:.3f})"
    again = synth(hyla_bin, "--task", "mqar", "--count", 3, "--seq-len", L, "--num-kv", N,
                  "--vocab", V, "--seed", 5)
    assert [s["input"] for s in again] == [s["input"] for s in samples[:3]]


def masked_answer(s, tok):
    return tok.decode([t for t, m in zip(s["target"], s["mask"]) if m])


def test_passkey_format_length_and_answer(hyla_bin, data_tokenizer):  # noqa: F811
    tok_path, tok = data_tokenizer
    length = 600
    samples = synth(hyla_bin, "--task", "passkey", "--tokenizer", tok_path, "--count", 8,
                    "--length", length, "--seed", 2)
    max_sentence = max(len(tok.encode(" " + f).ids) for f in FILLER)
    for s in samples:
        k = int(s["answers"][0])
        assert 1 <= k <= 50000
        lines = s["prompt"].split("\n")
        assert len(lines) == 5 and lines[0] == PASSKEY_TASK
        assert lines[2] == f"The pass key is {k}. Remember it. {k} is the pass key."
        assert lines[4] == "What is the pass key? The pass key is"
        n_before = len(re.findall(r"[.!?]", lines[1]))
        n_after = len(re.findall(r"[.!?]", lines[3]))
        for part, n in ((lines[1], n_before), (lines[3], n_after)):  # starts of the repeated block
            assert part == " ".join(FILLER[i % 5] for i in range(n))
        ids = tok.encode(s["prompt"]).ids
        assert ids == s["input"][:s["prompt_len"]] and len(ids) + 10 <= length
        # The haystack is as long as fits: less room is left than one more sentence needs.
        assert len(ids) + 10 + max_sentence > length
        assert masked_answer(s, tok) == f" {k}."
    depths = [s["depth"] for s in samples]
    assert len(set(depths)) > 1 and all(0 <= d <= 1 for d in depths)


@pytest.fixture(scope="module")
def prose_corpus(hyla_bin, data_tokenizer, tmp_path_factory):  # noqa: F811
    tok_path, _ = data_tokenizer
    d = tmp_path_factory.mktemp("prose")
    docs = [{"text": f"Story {i}. The miller walked to town! Did he sell grain? He did."}
            for i in range(60)]
    (d / "prose.jsonl").write_text("\n".join(json.dumps(x) for x in docs) + "\n")
    run([hyla_bin, "data", "prepare", "--tokenizer", tok_path, "--input", d / "prose.jsonl",
         "--out", d / "corpus", "--val-fraction", "0.5", "--no-progress"])
    return d / "corpus"


NEEDLE = re.compile(r"One of the special magic numbers for ([a-z]+-[a-z]+) is: (\d{7})\.")


@pytest.mark.parametrize("hay", ["noise", "prose"])
def test_niah_needles_query_and_length(hyla_bin, data_tokenizer, prose_corpus, hay):  # noqa: F811
    tok_path, tok = data_tokenizer
    length = 900
    extra = ["--haystack-corpus", prose_corpus] if hay == "prose" else []
    samples = synth(hyla_bin, "--task", "niah", "--tokenizer", tok_path, "--count", 4,
                    "--length", length, "--keys", 3, "--seed", 4, *extra)
    for s in samples:
        head, context, question = s["prompt"].split("\n")
        assert head == ("Some special magic numbers are hidden within the following text. Make "
                        "sure to memorize it. I will quiz you about the numbers afterwards.")
        needles = NEEDLE.findall(context)
        assert len(needles) == 3 and len({k for k, _ in needles}) == 3
        key = re.match(r"What is the special magic number for ([a-z-]+) mentioned", question)[1]
        assert question == (f"What is the special magic number for {key} mentioned in the "
                            f"provided text? The special magic number for {key} mentioned in "
                            "the provided text is")
        assert s["answers"] == [v for k, v in needles if k == key], "answer = the queried needle"
        hay_text = NEEDLE.sub("", context)
        if hay == "noise":
            assert {x.strip() for x in re.findall(r"[^.!?]+[.!?]", hay_text)} == set(FILLER)
        else:
            assert "miller" in hay_text
        ids = tok.encode(s["prompt"]).ids
        assert ids == s["input"][:s["prompt_len"]]
        assert len(ids) + 128 <= length and len(ids) + 128 > length - 40
        assert masked_answer(s, tok) == f" {s['answers'][0]}."
