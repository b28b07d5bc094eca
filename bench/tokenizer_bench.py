"""Encode speed of hyla's tokenizer (C++, in-process timing via hyla_testkit) against PyPI
`tokenizers` on one thread (RAYON_NUM_THREADS=1, TOKENIZERS_PARALLELISM=false), on ~10 MB of
prose (Brown corpus + nlp-corpus) with some code/Unicode lines mixed in.

Tokenizers used: GPT-2, Llama-3 and Qwen2 style byte-level BPEs trained by tokenizers'
BpeTrainer (32K vocab, cached under ~/.cache/hyla/bench). Both sides encode the same text
and must give the same number of tokens.

    python bench/tokenizer_bench.py [--testkit build/hyla_testkit] [--mb 10] [--results]

Modes: `whole` = one encode() of the whole text; `lines` = one encode() per line
(tokenizers: encode_batch over the lines, which on one thread is its fastest per-line path;
hyla: a C++ loop of encode()). --results writes the table into bench/RESULTS.md.
"""
import argparse
import datetime
import json
import os
import pathlib
import platform
import subprocess
import sys
import time

os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import tokenizer_corpus as corpus  # noqa: E402
from tokenizers import Regex, Tokenizer, decoders, models, normalizers  # noqa: E402
from tokenizers import pre_tokenizers as pt, trainers  # noqa: E402

CACHE = pathlib.Path(os.environ.get("HYLA_CACHE", pathlib.Path.home() / ".cache/hyla")) / "bench"
LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
          r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
         r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def tokenizer_file(style, vocab_size=32000):
    path = CACHE / f"tok-{style}-{vocab_size}.json"
    if path.exists():
        return path
    tok = Tokenizer(models.BPE(ignore_merges=style == "llama3"))
    if style == "gpt2":
        tok.pre_tokenizer = pt.ByteLevel(add_prefix_space=False)
    else:
        tok.pre_tokenizer = pt.Sequence([
            pt.Split(Regex(LLAMA3 if style == "llama3" else QWEN2), "isolated"),
            pt.ByteLevel(add_prefix_space=False, use_regex=False)])
    if style == "qwen2":
        tok.normalizer = normalizers.NFC()
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pt.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus.training_text(max_chars=4_000_000), trainer)
    CACHE.mkdir(parents=True, exist_ok=True)
    tok.save(str(path))
    return path


def bench_text(mb):
    path = CACHE / f"bench-{mb}mb.txt"
    if not path.exists():
        lines = corpus.training_text(max_chars=int(mb * 1e6), seed=11)
        CACHE.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")
    return path


def best_time(fn, repeat):
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), result


def run_tokenizers(tok_path, text, repeat):
    tok = Tokenizer.from_file(str(tok_path))
    lines = [ln + "\n" for ln in text.split("\n")[:-1]]
    whole_s, enc = best_time(lambda: tok.encode(text, add_special_tokens=False), repeat)
    lines_s, batch = best_time(lambda: tok.encode_batch(lines, add_special_tokens=False), repeat)
    return {"whole_s": whole_s, "tokens": len(enc.ids), "lines_s": lines_s,
            "line_tokens": sum(len(e.ids) for e in batch)}


def run_hyla(testkit, tok_path, text_path, repeat):
    r = subprocess.run([testkit, "tokenizer-bench", "--tokenizer", tok_path, "--input",
                        text_path, "--repeat", str(repeat)],
                       capture_output=True, text=True, check=True)
    out = json.loads(r.stdout)
    runs = out["runs"]
    return {"whole_s": min(x["whole_s"] for x in runs), "tokens": out["tokens"],
            "lines_s": min(x["lines_s"] for x in runs), "line_tokens": runs[0]["line_tokens"],
            "load_s": out["load_s"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--testkit", default=str(HERE.parent / "build" / "hyla_testkit"))
    ap.add_argument("--mb", type=float, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--styles", default="gpt2,llama3,qwen2")
    ap.add_argument("--results", action="store_true", help="write bench/RESULTS.md section")
    args = ap.parse_args()
    text_path = bench_text(args.mb)
    text = text_path.read_bytes().decode("utf-8")  # no newline translation: hyla reads bytes
    nbytes = len(text.encode())
    rows = []
    for style in args.styles.split(","):
        tok_path = tokenizer_file(style)
        h = run_hyla(args.testkit, tok_path, text_path, args.repeat)
        t = run_tokenizers(tok_path, text, args.repeat)
        assert h["tokens"] == t["tokens"] and h["line_tokens"] == t["line_tokens"], (style, h, t)
        for mode in ("whole", "lines"):
            toks = h["tokens"] if mode == "whole" else h["line_tokens"]
            ht, tt = h[f"{mode}_s"], t[f"{mode}_s"]
            rows.append((style, mode, toks, nbytes / ht / 1e6, toks / ht / 1e6,
                         nbytes / tt / 1e6, toks / tt / 1e6, tt / ht))
    head = ("| style | mode | tokens | hyla MB/s | hyla Mtok/s | tokenizers MB/s | "
            "tokenizers Mtok/s | hyla / tokenizers |")
    table = [head, "|" + "---|" * 8]
    for s, m, n, hb, ht, tb, tt, ratio in rows:
        table.append(f"| {s} | {m} | {n} | {hb:.2f} | {ht:.2f} | {tb:.2f} | {tt:.2f} | {ratio:.2f}x |")
    print(f"text: {nbytes / 1e6:.1f} MB, best of {args.repeat}, one thread")
    print("\n".join(table))
    if args.results:
        write_results(table, nbytes, args)


def write_results(table, nbytes, args):
    path = HERE / "RESULTS.md"
    old = path.read_text() if path.exists() else "# Benchmark results\n"
    title = "## Tokenizer encode speed"
    section = "\n".join([
        title, "",
        f"Date: {datetime.date.today()}. Machine: CPU, 1 core of the 2-core dev machine "
        f"({platform.processor() or platform.machine()}).",
        f"Command: `python bench/tokenizer_bench.py --testkit {args.testkit} --mb {args.mb:g} "
        f"--repeat {args.repeat} --results`",
        f"Text: {nbytes / 1e6:.1f} MB (Brown + nlp-corpus prose, 5% code/Unicode lines); "
        "32K-vocab byte-level BPEs trained by tokenizers; best of "
        f"{args.repeat} runs; both sides produce the same token count.",
        "`whole` = one encode() of the text; `lines` = per-line encode (tokenizers: encode_batch "
        "with RAYON_NUM_THREADS=1; hyla: C++ loop).", "", *table, ""])
    start = old.find(title)
    if start < 0:
        new = old.rstrip("\n") + "\n\n" + section
    else:
        end = old.find("\n## ", start + len(title))
        new = old[:start] + section + (old[end + 1:] if end >= 0 else "")
    path.write_text(new)


if __name__ == "__main__":
    main()
