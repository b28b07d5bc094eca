"""Adaptive replacement (DSLA-Serve, `hyla serve --adaptive CHAIN`), on CPU float32.

The chain is built here in the on-disk format the chained distillation stage writes
(docs/serve.md "Adaptive replacement"): link-01-layer-03 replaces layer 3 (DSLA),
link-02-layer-01 then layer 1 (GDN) and carries its own layer-3 mixer, as a later link
of a chain may retune earlier ones. Each link directory is also the full student with
those layers converted: the oracle. A request served at level k must give, token for
token (logprobs to 1e-4), what link k's student gives running alone — so requests in
flight across a switch keep the configuration they started with.
"""
import json
import re
import threading

import pytest
from safetensors.torch import load_file, save_file

from conftest import ROOT, run
from test_serve import Server

TEACHER = ROOT / "assets" / "teacher-tiny"
BOS = 1
LINKS = [(3, "full_attention,full_attention,full_attention,dsla,full_attention"),
         (1, "full_attention,gdn,full_attention,dsla,full_attention")]


@pytest.fixture(scope="module")
def chain(hyla_bin, tmp_path_factory):
    d = tmp_path_factory.mktemp("chain")
    order = []
    for k, (layer, types) in enumerate(LINKS, 1):
        link = d / f"link-{k:02}-layer-{layer:02}"
        run([hyla_bin, "hybrid", TEACHER, "--out", link, "--layer-types", types, "--dtype", "float32",
             "--seed", str(k)])
        order.append(layer)
        tensors = load_file(str(link / "model.safetensors"))
        mine = {n: t for n, t in tensors.items() if any(n.startswith(f"model.layers.{l}.linear_attn.") for l in order)}
        save_file(mine, str(link / "replacement.safetensors"), metadata={"layers": json.dumps(order)})
    return d


def batch(hyla_bin, model, reqs, path, *extra):
    path.write_text("".join(json.dumps(r) + "\n" for r in reqs))
    r = run([hyla_bin, "serve", model, "--batch", path, *extra])
    return [json.loads(line) for line in r.stdout.splitlines()], r.stderr


def test_forced_load_swaps_in_order_and_each_request_equals_its_link(hyla_bin, chain, tmp_path):
    import random
    rng = random.Random(2)
    reqs = [{"prompt": [BOS] + [rng.randrange(3, 8192) for _ in range(rng.choice([4, 19, 40]))], "max_tokens": 6,
             "temperature": 0, "ignore_eos": True, "logprobs": 0, "arrive_step": 0 if i < 6 else 40}
            for i in range(8)]
    got, log = batch(hyla_bin, TEACHER, reqs, tmp_path / "all.jsonl", "--adaptive", chain, "--max-running", "2",
                     "--adaptive-up-waiting", "3", "--adaptive-down-waiting", "1", "--adaptive-cooldown", "0")
    switches = re.findall(r"adaptive: level (\d) -> (\d) \(layer (\d) (to \w+|back to attention)", log)
    # Up in the chain's order (layer 3, then 1), then back down in reverse as the queue empties.
    assert switches[:2] == [("0", "1", "3", "to dsla"), ("1", "2", "1", "to gdn")], log
    assert ("2", "1", "1", "back to attention") in switches and ("1", "0", "3", "back to attention") in switches
    levels = [g["level"] for g in got]
    assert {1, 2} <= set(levels), levels
    for g, r in zip(got, reqs):
        assert len(g["ids"]) == r["max_tokens"] and g["finish_reason"] == "length"
    models = {0: TEACHER, **{k: chain / f"link-{k:02}-layer-{l:02}" for k, (l, _) in enumerate(LINKS, 1)}}
    for level in set(levels):
        mine = [i for i, lv in enumerate(levels) if lv == level]
        alone, _ = batch(hyla_bin, models[level], [dict(reqs[i], arrive_step=0) for i in mine],
                         tmp_path / f"alone{level}.jsonl", "--max-running", "1")
        for i, a in zip(mine, alone):
            assert got[i]["ids"] == a["ids"], f"request {i} at level {level}"
            for x, y in zip(got[i]["logprobs"], a["logprobs"]):
                assert abs(x["logprob"] - y["logprob"]) < 1e-4


def test_metrics_report_the_hybrid_ratio(hyla_bin, chain):
    # down-waiting 0: load never counts as low, so the level reached stays for the check.
    s = Server(hyla_bin, TEACHER, "--adaptive", chain, "--max-running", "1", "--adaptive-up-waiting", "1",
               "--adaptive-down-waiting", "0", "--adaptive-cooldown", "0")
    try:
        assert s.metric("hybrid_attention_ratio") == 1.0 and s.metric("adaptive_level") == 0
        body = {"prompt": [BOS, 5, 6, 7, 8], "max_tokens": 24, "temperature": 0, "ignore_eos": True}
        results = []
        threads = [threading.Thread(target=lambda: results.append(s.request("POST", "/v1/completions", body)))
                   for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert [st for st, _ in results] == [200] * 4
        assert all(len(json.loads(text)["choices"][0]["text"]) > 0 for _, text in results)
        assert s.metric("adaptive_switches_up_total") >= 1
        level = s.metric("adaptive_level")
        assert level >= 1 and s.metric("hybrid_attention_ratio") == (5 - level) / 5
    finally:
        s.stop()


def test_bad_chain_one_line_error(hyla_bin, chain, tmp_path):
    f = tmp_path / "r.jsonl"
    f.write_text('{"prompt": [1, 2, 3], "max_tokens": 2}\n')
    r = run([hyla_bin, "serve", TEACHER, "--batch", f, "--adaptive", tmp_path / "missing"], check=False)
    assert r.returncode != 0 and "not a directory" in r.stderr and "Traceback" not in r.stderr
    bad = tmp_path / "bad"
    (bad / "link-01-layer-02").mkdir(parents=True)
    for name in ("config.json", "replacement.safetensors"):
        src = chain / "link-01-layer-03" / name
        (bad / "link-01-layer-02" / name).write_bytes(src.read_bytes())
    r = run([hyla_bin, "serve", TEACHER, "--batch", f, "--adaptive", bad], check=False)
    assert r.returncode != 0 and 'metadata "layers"' in r.stderr, r.stderr
