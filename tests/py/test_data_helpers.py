"""Independent Python re-implementations for the data oracle tests: the shard file
layout (read with numpy), the document split rule, Brown tag stripping, and a small
byte-level BPE tokenizer trained with PyPI `tokenizers`."""
import json
import pathlib
import tarfile

import numpy as np
import pytest

M64 = (1 << 64) - 1


def mix64(x):
    """SplitMix64 finaliser (as in src/hyla/data/random.h)."""
    x = (x + 0x9E3779B97F4A7C15) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def fnv1a64(data: bytes):
    h = 0xCBF29CE484222325
    for c in data:
        h = ((h ^ c) * 0x100000001B3) & M64
    return h


def is_validation(text: str, seed: int, val_fraction: float):
    h = mix64(fnv1a64(text.encode()) ^ mix64(seed))
    return (h >> 11) * 2.0**-53 < val_fraction


def read_shard(path):
    """Shard layout from src/hyla/data/token_shards.h: 64-byte header, tokens, offsets."""
    raw = pathlib.Path(path).read_bytes()
    assert raw[:8] == b"HYLATOKS"
    version, bpt = np.frombuffer(raw, "<u4", 2, 8)
    n_tok, n_doc, tok_off, doc_off = (int(v) for v in np.frombuffer(raw, "<u8", 4, 16))
    assert version == 1 and bpt in (2, 4)
    tokens = np.frombuffer(raw, "<u2" if bpt == 2 else "<u4", n_tok, tok_off)
    offsets = np.frombuffer(raw, "<u8", n_doc + 1, doc_off)
    assert doc_off + 8 * (n_doc + 1) == len(raw)
    return tokens.astype(np.int64), offsets.astype(np.int64), int(bpt)


def read_split(corpus, split):
    """All documents (token arrays incl. EOS) of a split, in shard order."""
    man = json.loads((pathlib.Path(corpus) / "manifest.json").read_text())
    docs = []
    for sh in man["splits"][split]["shards"]:
        tokens, offsets, _ = read_shard(pathlib.Path(corpus) / sh["file"])
        docs += [tokens[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]
    return docs


def brown_prose(tagged: str):
    """Brown form C → prose, written from the rule in text_sources.h."""
    left = {",", ".", ";", ":", "?", "!", ")", "]", "''", "'"}
    right = {"(", "[", "``"}
    paragraphs, cur = [], []
    for line in tagged.split("\n"):
        words = []
        for tok in line.split():
            i = tok.rfind("/")
            words.append(tok if i <= 0 else tok[:i])
        sent, glue = "", False
        for w in words:
            if not w:
                continue
            if sent and not glue and w not in left:
                sent += " "
            sent += '"' if w in ("``", "''") else w
            glue = w in right
        if sent:
            cur.append(sent)
        elif cur:
            paragraphs.append(" ".join(cur))
            cur = []
    if cur:
        paragraphs.append(" ".join(cur))
    return "\n\n".join(paragraphs)


def train_tokenizer(path, texts, vocab=600):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(texts, trainer)
    tok.save(str(path))
    return Tokenizer.from_file(str(path))


BROWN_FIXTURE = {
    "ca01": "\n\n\tThe/at jury/nn said/vbd ``/`` no/at ''/'' ,/, in/in (/( 1/2/cd )/) "
            "Atlanta's/np$ hall/nn ./.\n\tIt/pps rained/vbd !/.\n\n\n\tNew/jj para/nn ?/.\n",
    "cb02": "\n\n\tEditorial/nn-hl text/nn --/-- short/jj ;/. done/vbn ./.\n",
}


def write_npm_tgz(path, members):
    """A .tgz in the npm package layout (`package/...`)."""
    tmp = pathlib.Path(str(path) + ".d")
    with tarfile.open(path, "w:gz") as tar:
        for name, text in members.items():
            f = tmp / name
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(text)
            tar.add(f, arcname=f"package/{name}")


def test_split_rule_reference_values():
    # Pin the Python rule to the C++ one (DataSplit tests use the same functions).
    assert mix64(0) == 0xE220A8397B1DCDAF
    assert fnv1a64(b"") == 0xCBF29CE484222325 and fnv1a64(b"a") == 0xAF63DC4C8601EC8C


def test_brown_python_rule_on_fixture():
    assert brown_prose(BROWN_FIXTURE["ca01"]) == (
        'The jury said "no", in (1/2) Atlanta\'s hall. It rained!\n\nNew para?')


@pytest.fixture(scope="session")
def data_tokenizer(tmp_path_factory):
    d = tmp_path_factory.mktemp("tok")
    texts = ["The quick brown fox jumps over the lazy dog. " * 3,
             "There is an important info hidden inside a lot of irrelevant text.",
             "The grass is green. The sky is blue. The sun is yellow. Here we go.",
             "One of the special magic numbers for calm-otter is: 1234567.",
             "Émile said: naïve café — 東京 🎉 1961 ``quotes''."] + list(BROWN_FIXTURE.values())
    return d / "tokenizer.json", train_tokenizer(d / "tokenizer.json", texts)
