"""The serving engine (`hyla serve --batch`, the engine without HTTP), on CPU float32.

- One sequence with a seed gives `hyla generate`'s text (greedy and sampled), and greedy
  continuations of the shipped teacher equal transformers' `generate` (the outside oracle).
- Continuous batching: requests of mixed lengths joining a running batch at different
  steps get, token for token, what each gets running alone (--max-running 1), for the
  teacher, a GDN hybrid (`--mixer gdn --attention-every 2`) and a DSLA/HypeNet mix.
- Prefix caching: prompts sharing prefixes that end mid-block and mid-chunk give the
  same tokens and logprobs (1e-4) as without the cache, and really restore: at the shared
  length for the teacher (attention K/V are valid at any position), at the nearest
  linear-state snapshot at or below it for hybrids.
- CUDA graphs of the decode step (HYLA_TEST_DEVICE=cuda): captured once, replayed across
  requests, same tokens as eager; none on the CPU.
"""
import json
import random
import re
import socket

import pytest
import torch
import transformers

from conftest import DEVICE, ROOT, run

TEACHER = ROOT / "assets" / "teacher-tiny"
BOS = 1


@pytest.fixture(scope="module")
def models(hyla_bin, tmp_path_factory):
    d = tmp_path_factory.mktemp("serve_models")
    gdn, mix = d / "gdn", d / "mix"
    run([hyla_bin, "hybrid", TEACHER, "--out", gdn, "--mixer", "gdn", "--attention-every", "2", "--dtype", "float32"])
    run([hyla_bin, "hybrid", TEACHER, "--out", mix, "--layer-types",
         "full_attention,dsla,hypenet,full_attention,dsla", "--dtype", "float32"])
    return {"teacher": TEACHER, "gdn": gdn, "mix": mix}


def batch(hyla_bin, model, requests, tmp_path, *extra):
    f = tmp_path / "requests.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in requests))
    out = run([hyla_bin, "serve", model, "--batch", f, *extra]).stdout
    return [json.loads(line) for line in out.splitlines()]


@pytest.mark.parametrize("kind", ["teacher", "gdn"])
@pytest.mark.parametrize("sampling", [[], ["-t", "0.9", "--top-k", "40", "--top-p", "0.95", "--seed", "11"]])
def test_one_sequence_equals_generate(hyla_bin, models, tmp_path, kind, sampling):
    prompt = "Once upon a time, in a quiet village by the sea,"
    gen = run([hyla_bin, "generate", models[kind], "-p", prompt, "-n", "24", "--no-stream", "--ignore-eos",
               *sampling]).stdout.rstrip("\n")
    opts = dict(zip(sampling[::2], sampling[1::2]))
    req = {"prompt": prompt, "max_tokens": 24, "ignore_eos": True,
           "temperature": float(opts.get("-t", 0)), "top_k": int(opts.get("--top-k", 0)),
           "top_p": float(opts.get("--top-p", 1)), "seed": int(opts.get("--seed", 0))}
    (r,) = batch(hyla_bin, models[kind], [req], tmp_path)
    assert len(r["ids"]) == 24
    assert prompt + r["text"] == gen


def test_teacher_greedy_equals_transformers(hyla_bin, tmp_path):
    hf = transformers.AutoModelForCausalLM.from_pretrained(TEACHER, dtype=torch.float32).eval()
    rng = random.Random(3)
    prompts = [[BOS] + [rng.randrange(3, 8192) for _ in range(n)] for n in (5, 40, 90)]
    reqs = [{"prompt": p, "max_tokens": 16, "temperature": 0, "ignore_eos": True, "arrive_step": i}
            for i, p in enumerate(prompts)]
    got = batch(hyla_bin, TEACHER, reqs, tmp_path)
    for p, r in zip(prompts, got):
        with torch.no_grad():
            want = hf.generate(torch.tensor([p]), max_new_tokens=16, do_sample=False, eos_token_id=None,
                               pad_token_id=0)[0, len(p):].tolist()
        assert r["ids"] == want


def mixed_requests(seed, n=7):
    rng = random.Random(seed)
    reqs = []
    for i in range(n):
        length = rng.choice([1, 3, 17, 40, 63, 64, 65, 130])
        reqs.append({"prompt": [BOS] + [rng.randrange(3, 8192) for _ in range(length)],
                     "max_tokens": rng.choice([1, 5, 12]), "temperature": 0, "ignore_eos": True,
                     "logprobs": 0, "arrive_step": rng.choice([0, 0, 2, 5, 9])})
    reqs.append(dict(reqs[1], arrive_step=3))  # the same prompt twice, in flight together
    return reqs


@pytest.mark.parametrize("kind", ["teacher", "gdn", "mix"])
def test_batch_equals_each_alone(hyla_bin, models, tmp_path, kind):
    reqs = mixed_requests(seed=len(kind))
    together = batch(hyla_bin, models[kind], reqs, tmp_path, "--max-running", "8", "--step-tokens", "48",
                     "--prefill-chunk", "32", "--no-prefix-cache")
    alone = batch(hyla_bin, models[kind], reqs, tmp_path, "--max-running", "1", "--no-prefix-cache")
    for a, b, r in zip(together, alone, reqs):
        assert a["ids"] == b["ids"], f"prompt of {len(r['prompt'])} tokens"
        assert len(a["ids"]) == r["max_tokens"]
        for x, y in zip(a["logprobs"], b["logprobs"]):
            assert abs(x["logprob"] - y["logprob"]) < 1e-4


def shared_prefix_requests():
    rng = random.Random(7)
    system = [BOS] + [rng.randrange(3, 8192) for _ in range(36)]  # 37 tokens: mid-block (8) and mid-chunk (16)
    turn = [rng.randrange(3, 8192) for _ in range(11)]
    prompts = [system + turn,                                          # fills the cache
               system + [rng.randrange(3, 8192) for _ in range(5)],    # shares 37
               system + turn + [rng.randrange(3, 8192) for _ in range(9)],  # multi-turn: shares 48
               system[:20] + [rng.randrange(3, 8192) for _ in range(30)],   # shares 20 (< one chunk + 4)
               system + turn]                                          # the same prompt again
    return [{"prompt": p, "max_tokens": 8, "temperature": 0, "ignore_eos": True, "logprobs": 0,
             "arrive_step": 0 if i == 0 else 20 * i} for i, p in enumerate(prompts)]


@pytest.mark.parametrize("kind", ["teacher", "gdn", "mix"])
def test_prefix_cache_same_output(hyla_bin, models, tmp_path, kind):
    reqs = shared_prefix_requests()
    args = ["--block-size", "8", "--prefill-chunk", "16"]
    cold = batch(hyla_bin, models[kind], reqs, tmp_path, *args, "--no-prefix-cache")
    warm = batch(hyla_bin, models[kind], reqs, tmp_path, *args)
    for c, w in zip(cold, warm):
        assert c["ids"] == w["ids"]
        for x, y in zip(c["logprobs"], w["logprobs"]):
            assert abs(x["logprob"] - y["logprob"]) < 1e-4
    assert all(c["cached_tokens"] == 0 for c in cold)
    cached = [w["cached_tokens"] for w in warm]
    if kind == "teacher":
        # Attention K/V restore at any position: exactly the shared length (at most len - 1).
        assert cached == [0, 37, 48, 20, 47]
    else:
        # The nearest snapshot at or below it: every 16 tokens, each prompt's end, and where
        # a prompt diverged from an earlier one (request 1 snapshots at 37, which request 4 uses).
        assert cached == [0, 32, 48, 16, 37]


def test_bad_input_one_line_errors(hyla_bin, tmp_path):
    f = tmp_path / "bad.jsonl"
    for text, want in [('{"prompt": "hi"}\n{"prompt": "x", "max_tokens": "ten"}\n', "line 2: 'max_tokens' must be an integer"),
                       ('{"prompt": [1, 2], "max_tokens": 5000}\n', "request 1: the prompt (2 tokens) plus max_tokens"),
                       ('not json\n', "line 1: the request body is not valid JSON")]:
        f.write_text(text)
        r = run([hyla_bin, "serve", TEACHER, "--batch", f], check=False)
        assert r.returncode != 0 and want in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert r.stdout == ""
    r = run([hyla_bin, "serve", TEACHER, "--batch", tmp_path / "missing.jsonl"], check=False)
    assert r.returncode != 0 and "cannot open" in r.stderr
    with socket.socket() as s:  # a port in use
        s.bind(("127.0.0.1", 0))
        s.listen()
        r = run([hyla_bin, "serve", TEACHER, "--port", s.getsockname()[1]], check=False, timeout=60)
        assert r.returncode != 0 and "cannot listen on 127.0.0.1" in r.stderr, r.stderr


def test_decode_graphs_captured_once(hyla_bin, tmp_path):
    """CUDA graphs of the decode step: three requests running one after another share ONE
    graph (batch bucket 1, key bucket 128), captured once per engine and replayed by every
    later decode step, and give the tokens of eager decoding. On the CPU nothing is captured."""
    rng = random.Random(5)
    reqs = [{"prompt": [BOS] + [rng.randrange(3, 8192) for _ in range(20)], "max_tokens": 8, "temperature": 0,
             "ignore_eos": True, "arrive_step": 12 * i} for i in range(3)]
    f = tmp_path / "requests.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in reqs))
    dev = ["--device", DEVICE, "--dtype", "float32"]

    def serve(*extra):
        r = run([hyla_bin, "serve", TEACHER, "--batch", f, *dev, *extra])
        m = re.search(r"CUDA graphs: (\d+) captured, (\d+) replays", r.stderr)
        assert m, r.stderr
        return [json.loads(line)["ids"] for line in r.stdout.splitlines()], int(m.group(1)), int(m.group(2))

    ids, captures, replays = serve()
    eager, eager_captures, _ = serve("--no-cuda-graphs")
    assert eager_captures == 0 and ids == eager
    if DEVICE.startswith("cuda"):
        assert captures == 1 and replays == 3 * 7  # the first token of each comes from its prefill step
    else:
        assert captures == 0 and replays == 0
