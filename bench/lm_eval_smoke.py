"""lm-evaluation-harness against `hyla serve`: log-likelihoods through lm-eval's own
`local-completions` client (LocalCompletionsAPI: echo + logprobs, max_tokens 1), compared
with transformers on the same teacher. No dataset is downloaded: the requests are built
here. lm-eval is not in requirements-test.txt (its dependencies — datasets, evaluate,
scikit-learn, ... — are not the test venv's), so this runs in two venvs:

    python -m venv /tmp/lmeval && /tmp/lmeval/bin/pip install lm-eval==0.4.13 transformers tokenizers
    /tmp/lmeval/bin/python bench/lm_eval_smoke.py run --hyla build/hyla --out /tmp/ll.json
    ~/.cache/hyla/venv/bin/python bench/lm_eval_smoke.py check /tmp/ll.json
"""
import argparse
import json
import pathlib
import re
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[1]
TEACHER = ROOT / "assets" / "teacher-tiny"
PAIRS = [("The cat sat on the", " mat"), ("Once upon a time there was a", " little girl"),
         ("Water boils at one hundred", " degrees"), ("She opened the door and", " walked in slowly."),
         ("In the morning the sun", " rose over the hills")]


def run(a):
    from lm_eval.api.instance import Instance
    from lm_eval.models.openai_completions import LocalCompletionsAPI
    p = subprocess.Popen([a.hyla, "serve", str(TEACHER), "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        port = int(re.search(r":(\d+) ", p.stdout.readline()).group(1))
        lm = LocalCompletionsAPI(base_url=f"http://127.0.0.1:{port}/v1/completions", model="teacher-tiny",
                                 tokenizer_backend="huggingface", tokenizer=str(TEACHER), tokenized_requests=True,
                                 max_length=1024, num_concurrent=1)
        reqs = [Instance(request_type="loglikelihood", doc={}, arguments=pair, idx=i) for i, pair in enumerate(PAIRS)]
        results = lm.loglikelihood(reqs)
        out = []
        for (ctx, cont), (ll, greedy) in zip(PAIRS, results):
            ctx_ids, cont_ids = lm._encode_pair(ctx, cont)
            out.append({"context_ids": ctx_ids, "continuation_ids": cont_ids, "loglikelihood": ll,
                        "is_greedy": greedy})
        pathlib.Path(a.out).write_text(json.dumps(out, indent=1))
        print(f"wrote {a.out}: {len(out)} loglikelihoods through lm-eval's local-completions")
    finally:
        p.kill()
        p.wait()


def check(a):
    import torch
    import transformers
    hf = transformers.AutoModelForCausalLM.from_pretrained(TEACHER, dtype=torch.float32).eval()
    worst = 0.0
    for r in json.loads(pathlib.Path(a.file).read_text()):
        ids = r["context_ids"] + r["continuation_ids"]
        with torch.no_grad():
            lp = torch.log_softmax(hf(torch.tensor([ids])).logits[0].double(), -1)
        n = len(r["context_ids"])
        targets = torch.tensor(r["continuation_ids"])
        rows = lp[n - 1:len(ids) - 1]
        want = rows[torch.arange(len(targets)), targets].sum().item()
        greedy = bool((rows.argmax(-1) == targets).all())
        worst = max(worst, abs(want - r["loglikelihood"]))
        print(f"lm-eval {r['loglikelihood']:.5f}  transformers {want:.5f}  greedy {r['is_greedy']}/{greedy}")
        assert greedy == r["is_greedy"]
    assert worst < 1e-3, worst
    print(f"max |difference| {worst:.2e}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--hyla", default=str(ROOT / "build" / "hyla"))
    r.add_argument("--out", required=True)
    c = sub.add_parser("check")
    c.add_argument("file")
    a = ap.parse_args()
    run(a) if a.cmd == "run" else check(a)
