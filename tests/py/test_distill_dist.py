"""`hyla distill` data parallel under `torchrun --no-python` (Gloo on CPU): two processes
at batch 2 follow the loss curve of one process at batch 4, stage after stage (each stage
prepares its own trained parameters for the gradient all-reduce)."""
import json
import os
import pathlib
import subprocess
import sys

from conftest import ROOT, run

TORCHRUN = pathlib.Path(sys.executable).parent / "torchrun"
if not TORCHRUN.exists():
    TORCHRUN = pathlib.Path.home() / ".cache/hyla/venv/bin/torchrun"
TOL = 2e-6  # relative; measured 4e-7 (float32 sums of two half-batch gradients vs one batch)

RECIPE = """
[run]
out_dir = "{out}"
seed = 3
device = "cpu"
log_every = 1
save_every = 0
[teacher]
path = "{teacher}"
[student]
mixer = "gdn"
attention_every = 2
[data]
text = "{text}"
[[stage]]
name = "align"
kind = "attention_align"
tokens = 768
seq_len = 32
batch_size = {batch}
lr = 3e-3
[[stage]]
name = "kd"
kind = "kl"
train = ["all"]
group_lr = {{ mixers = 1e-3 }}
tokens = 768
seq_len = 32
batch_size = {batch}
lr = 3e-4
"""


def curve(out, stage):
    return [json.loads(l)["loss"] for l in (out / stage / "metrics.jsonl").read_text().splitlines() if l.strip()]


def test_two_processes_match_one_at_double_batch(hyla_bin, tmp_path):
    text = tmp_path / "train.txt"
    text.write_text((ROOT / "assets" / "text" / "train.txt").read_text()[:60_000])
    env = dict(os.environ, OMP_NUM_THREADS="1")
    outs = {}
    for name, batch in (("one", 4), ("two", 2)):
        out = tmp_path / name
        (tmp_path / f"{name}.toml").write_text(RECIPE.format(out=out, teacher=ROOT / "assets" / "teacher-tiny",
                                                             text=text, batch=batch))
        outs[name] = out
    run([hyla_bin, "distill", tmp_path / "one.toml"], env=env)
    r = subprocess.run([str(c) for c in (TORCHRUN, "--standalone", "--nnodes", "1", "--nproc-per-node", "2",
                                         "--no-python", hyla_bin, "distill", tmp_path / "two.toml")],
                       capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "data parallel: 2 ranks (gloo)" in r.stderr
    for stage in ("align", "kd"):
        a, b = curve(outs["one"], stage), curve(outs["two"], stage)
        assert len(a) == len(b) == 6
        diff = max(abs(x - y) / abs(x) for x, y in zip(a, b))
        print(f"{stage}: 2 x b=2 vs 1 x b=4, max relative loss difference {diff:.2e}")
        assert diff < TOL, (stage, a, b)
    assert (outs["two"] / "final" / "config.json").exists()
