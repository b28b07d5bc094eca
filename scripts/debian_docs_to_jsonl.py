#!/usr/bin/env python3
"""Turns an unpacked Debian documentation package into a JSONL corpus of clean prose
(one {"text", "source"} object per document), for `hyla data prepare`.

Formats: HTML (Sphinx and DocBook pages: python3.X-doc, linux-doc-*, postgresql-doc-*,
debian-reference-*), POD (perl-doc), and the dictd dictionary of dict-gcide. Markup is
stripped; code (<pre>, verbatim POD paragraphs), navigation, indexes and paragraphs
that look like code or boilerplate are dropped. Files are visited in sorted order and
the output is written atomically, so the same package gives byte-identical output.
Standard library only: it runs with the system python3 at setup time.
"""
import argparse
import gzip
import html.parser
import json
import os
import pathlib
import re
import sys


# ---- paragraph filter ------------------------------------------------------------

CODE_CHARS = set("{}()[];=<>_$\\/|*#@&^~`")


def is_prose(par: str) -> bool:
    """A paragraph worth keeping: mostly words, few code symbols, not a fragment."""
    words = par.split()
    if len(words) < 4:
        return False
    letters = sum(c.isalpha() for c in par)
    nonspace = sum(not c.isspace() for c in par)
    if nonspace == 0 or letters / nonspace < 0.7:
        return False
    if sum(c in CODE_CHARS for c in par) / nonspace > 0.05:
        return False
    return sum(w[:1].isalpha() for w in words) / len(words) >= 0.6


def prose_paragraphs(pars):
    """Whitespace-normalised paragraphs that pass is_prose, consecutive repeats dropped."""
    out = []
    for p in pars:
        p = re.sub(r"\s+", " ", p).strip()
        if is_prose(p) and (not out or out[-1] != p):
            out.append(p)
    return out


# ---- HTML ------------------------------------------------------------------------

SKIP_TAGS = {"script", "style", "pre", "nav", "header", "footer", "head", "table", "svg",
             "form", "button", "select", "math"}
SKIP_CLASSES = {"sphinxsidebar", "related", "footer", "navheader", "navfooter", "toc",
                "highlight", "headerlink", "toctree-wrapper", "mobile-nav", "menu-wrapper",
                "inline-search", "breadcrumbs", "literal-block-wrapper", "refsynopsisdiv",
                "synopsis", "programlisting", "screen", "indexterm", "version_switcher_placeholder",
                "language_switcher_placeholder", "sig", "cmdsynopsis", "funcsynopsis"}
BLOCK_TAGS = {"p", "div", "li", "dd", "dt", "h1", "h2", "h3", "h4", "h5", "h6", "br",
              "blockquote", "section", "article", "ul", "ol", "dl", "tr", "title", "hr"}
VOID_TAGS = {"br", "hr", "img", "meta", "link", "input", "area", "base", "col", "wbr"}


class ProseHTML(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack = []  # (tag, skipping) for open non-void elements
        self.skip_depth = 0
        self.pars, self.cur = [], []

    def _skip(self, tag, attrs):
        if tag in SKIP_TAGS:
            return True
        cls = set((dict(attrs).get("class") or "").split())
        return any(c in SKIP_CLASSES or c.startswith("highlight") for c in cls)

    def _break(self):
        if self.cur:
            self.pars.append("".join(self.cur))
            self.cur = []

    def handle_starttag(self, tag, attrs):
        if tag in BLOCK_TAGS and not self.skip_depth:
            self._break()
        if tag in VOID_TAGS:
            return
        skip = self.skip_depth > 0 or self._skip(tag, attrs)
        self.stack.append((tag, skip))
        if skip:
            self.skip_depth += 1

    def handle_endtag(self, tag):
        if tag in VOID_TAGS:
            return
        # Close up to the matching tag (tolerates unclosed <p>, <li> ...).
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                for _, skip in self.stack[i:]:
                    self.skip_depth -= skip
                del self.stack[i:]
                break
        if tag in BLOCK_TAGS and not self.skip_depth:
            self._break()

    def handle_data(self, data):
        if not self.skip_depth:
            self.cur.append(data.replace("¶", ""))


def html_paragraphs(raw: str):
    p = ProseHTML()
    p.feed(raw)
    p.close()
    p._break()
    return prose_paragraphs(p.pars)


SKIP_HTML = re.compile(r"(^|/)(genindex[^/]*|search|py-modindex|modindex|bookindex|"
                       r"index-[^/]*|objects)\.html$|(^|/)_(static|sources|images|downloads)/")


def convert_html(root: pathlib.Path):
    for f in sorted(root.rglob("*.html")):
        rel = f.relative_to(root).as_posix()
        if SKIP_HTML.search(rel):
            continue
        yield rel, html_paragraphs(f.read_text(errors="replace"))


# ---- POD -------------------------------------------------------------------------

POD_ESCAPES = {"lt": "<", "gt": ">", "verbar": "|", "sol": "/", "quot": '"', "amp": "&"}


def pod_escape(name: str) -> str:
    """E<...>: a named entity, or a number (0x hex, leading-0 octal, decimal)."""
    if name in POD_ESCAPES:
        return POD_ESCAPES[name]
    try:
        if name.lower().startswith("0x"):
            return chr(int(name, 16))
        if name[:1].isdigit():
            return chr(int(name, 8) if name.startswith("0") and len(name) > 1 else int(name))
    except ValueError:
        return ""
    return html.unescape(f"&{name};") if name.isalnum() else ""


def pod_inline(text: str) -> str:
    """Resolves POD formatting codes X<...> and X<< ... >> (innermost first)."""
    def code(letter, body):
        if letter == "E":
            return pod_escape(body)
        if letter in "XZ":
            return ""
        if letter == "L":
            body = body.split("|", 1)[0] if "|" in body else body
            return body.split("/", 1)[-1].strip('"') if "/" in body and "://" not in body else body
        return body
    for _ in range(20):  # nested codes
        new = re.sub(r"([A-Z])<<+\s(.*?)\s>>+", lambda m: code(m[1], m[2]), text, flags=re.S)
        new = re.sub(r"([A-Z])<([^<>]*)>", lambda m: code(m[1], m[2]), new)
        if new == text:
            break
        text = new
    return text


def pod_paragraphs(raw: str):
    pars, in_pod, skip_block = [], True, False
    for block in re.split(r"\n\s*\n", raw):
        if not block.strip():
            continue
        if block.startswith("="):
            cmd, _, rest = block[1:].partition(" ")
            cmd = cmd.strip()
            if cmd == "cut":
                in_pod = False
            elif cmd in ("pod", "head1", "head2", "head3", "head4", "item", "over", "back"):
                in_pod = True
            if cmd == "begin":
                skip_block = True
            elif cmd == "end":
                skip_block = False
            if cmd.startswith("head") or cmd == "item":
                pars.append(pod_inline(rest))
            continue
        if not in_pod or skip_block or block[0] in " \t":  # code: verbatim paragraphs
            continue
        pars.append(pod_inline(block))
    return prose_paragraphs(pars)


def convert_pod(root: pathlib.Path):
    files = sorted(list(root.rglob("*.pod")) + list(root.rglob("*.pod.gz")))
    for f in files:
        raw = gzip.decompress(f.read_bytes()) if f.suffix == ".gz" else f.read_bytes()
        yield f.relative_to(root).as_posix(), pod_paragraphs(raw.decode("utf-8", "replace"))


# ---- GCIDE (dictd) ---------------------------------------------------------------

def gcide_entry(lines):
    text = " ".join(l.strip() for l in lines if not re.fullmatch(r"\s*\[[^\]]*\]\s*", l))
    text = re.sub(r"\\[^\\]*\\", "", text)            # pronunciation \Af*fect"\
    text = re.sub(r"\[[^\[\]]*\]", "", text)          # etymology, [Obs.], sources
    text = re.sub(r"--\s?[A-Z][\w. ]{0,30}?\.(\s|$)", " ", text)  # --Milton. attributions
    text = text.replace("{", "").replace("}", "").replace("Defn:", "")
    text = re.sub(r"\s+([,.;:])", r"\1", re.sub(r"\s+", " ", text)).strip()
    return text


def convert_gcide(root: pathlib.Path, entries_per_doc=100):
    dz = next(root.rglob("gcide.dict.dz"))
    raw = gzip.decompress(dz.read_bytes()).decode("utf-8", "replace")
    entries, cur = [], []
    for line in raw.split("\n"):
        if line and not line[0].isspace() and cur:  # a headword line starts an entry
            entries.append(cur)
            cur = []
        cur.append(line)
    entries.append(cur)
    texts = [gcide_entry(e) for e in entries if not e[0].startswith("00-database")]
    texts = [t for t in texts if len(t.split()) >= 4 and is_prose(t)]
    for i in range(0, len(texts), entries_per_doc):
        yield f"gcide.dict#{i // entries_per_doc}", texts[i:i + entries_per_doc]


# ---- driver ----------------------------------------------------------------------

CONVERTERS = {"html": convert_html, "pod": convert_pod, "gcide": convert_gcide}


def format_for(package: str) -> str:
    if package.startswith("perl-doc"):
        return "pod"
    if package.startswith("dict-gcide"):
        return "gcide"
    return "html"


def without_boilerplate(docs, max_repeats):
    """Drops paragraphs that recur in more than `max_repeats` documents of the package
    ("Part of the Stable ABI.", licence notes, navigation text)."""
    seen = {}
    for _, pars in docs:
        for p in set(pars):
            seen[p] = seen.get(p, 0) + 1
    for source, pars in docs:
        yield source, [p for p in pars if seen[p] <= max_repeats]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--package", required=True, help="Debian package name (picks the format)")
    ap.add_argument("--root", required=True, type=pathlib.Path, help="dpkg-deb -x directory")
    ap.add_argument("--out", required=True, type=pathlib.Path, help="output .jsonl")
    ap.add_argument("--format", choices=sorted(CONVERTERS), help="override the format")
    ap.add_argument("--min-chars", type=int, default=200, help="drop shorter documents")
    ap.add_argument("--max-repeats", type=int, default=5,
                    help="drop paragraphs found in more documents than this (boilerplate)")
    a = ap.parse_args(argv)
    fmt = a.format or format_for(a.package)
    doc_root = a.root / "usr" / "share" if (a.root / "usr" / "share").is_dir() else a.root
    tmp = a.out.with_name(a.out.name + f".tmp.{os.getpid()}")
    converted = list(CONVERTERS[fmt](doc_root))
    docs = chars = 0
    with open(tmp, "w", encoding="utf-8") as out:
        for source, pars in without_boilerplate(converted, a.max_repeats):
            text = "\n\n".join(pars) if fmt != "gcide" else "\n".join(pars)
            if len(text) < a.min_chars:
                continue
            out.write(json.dumps({"text": text, "source": f"{a.package}/{source}"},
                                 ensure_ascii=False) + "\n")
            docs += 1
            chars += len(text)
    os.replace(tmp, a.out)
    print(f"{a.package}: {docs} documents, {chars / 1e6:.1f}M characters -> {a.out}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
