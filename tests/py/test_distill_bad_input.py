"""`hyla distill` refuses bad input before any training: one clear line naming the file,
table and key; exit status 1; no traceback; nothing left in out_dir."""
import json

import pytest
from conftest import ROOT, run

TEACHER = ROOT / "assets" / "teacher-tiny"

BASE = {
    "run": 'out_dir = "{out}"\ndevice = "cpu"',
    "teacher": 'path = "{teacher}"',
    "student": 'mixer = "gdn"\nattention_every = 2',
    "data": 'text = "{text}"',
    "stage": 'name = "align"\nkind = "attention_align"\ntokens = 1024\nseq_len = 32\nbatch_size = 2',
}


def recipe(**changes):
    parts = []
    for sec, body in {**BASE, **changes}.items():
        if body is None:
            continue
        parts.append(f"[[{sec}]]\n{body}\n" if sec == "stage" else f"[{sec}]\n{body}\n")
    return "\n".join(parts)


@pytest.fixture(scope="module")
def text(tmp_path_factory, hyla_bin):
    d = tmp_path_factory.mktemp("t")
    # A selection made by `hyla select` for another teacher (teacher-small, 8 layers).
    run([hyla_bin, "select", ROOT / "assets" / "teacher-small", "--method", "uniform", "--keep", 2,
         "--out", d / "other.json"])
    (d / "train.txt").write_text((ROOT / "README.md").read_text())
    (d / "short.txt").write_text("A few words only.")
    bad = d / "gpt2"
    bad.mkdir()
    (bad / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_layer": 2, "vocab_size": 100}))
    return d


CASES = [
    # (changes, what the message must contain)
    ({"stage": BASE["stage"] + "\nlearning_rate = 1e-3"}, ['[[stage]] 1 ("align")', 'unknown key "learning_rate"']),
    ({"stage": 'kind = "distil"\ntokens = 10'}, ["[[stage]] 1", 'unknown stage kind "distil"']),
    ({"stage": BASE["stage"] + "\ntemperature = 2.0"}, ['"temperature" does not apply to kind attention_align']),
    ({"stage": BASE["stage"] + '\ntrain = ["all"]'}, ["attention_align trains only the converted mixers"]),
    ({"stage": 'kind = "kl"\ntokens = 64\nteacher_cache = "c"'}, ["teacher_cache is set but top_k = 0"]),
    ({"stage": 'kind = "ce"\ntokens = 64\ntrain = ["mlp"]\ngroup_lr = { mixers = 1e-3 }'},
     ["group_lr.mixers is set but train"]),
    ({"stage": 'kind = "ce"\nseq_len = 32'}, ["tokens is required"]),
    ({"stage": 'kind = "chained"\ntokens = 64\norder = [0]'}, ["order: layer 0 is not a converted layer"]),
    ({"data": 'text = "{text}"\ndir = "x"'}, ["[data]", "give exactly one of dir"]),
    ({"student": 'mixer = "gdn"\nattention_every = 2\nattention_layers = [0]'}, ["[student]", "give one of attention_every"]),
    ({"student": 'mixer = "gdn"\nattention_evry = 2'}, ["[student]", 'unknown key "attention_evry"']),
    ({"student": 'mixer = "gdn"\nattention_share = 0.05'},
     ["[student] attention_share", "attention share 0.05 of 5 layers keeps no attention layer"]),
    ({"student": 'mixer = "gdn"\nattention_share = 1.0'}, ["[student]", "no layer is left to convert"]),
    ({"student": 'mixer = "gdn"\nselection = "{tmp}/other.json"'},
     ["[student]", "other.json: selection was made for another model"]),
    ({"student": 'mixer = "gdn"\nselection = "{tmp}/other.json"\nattention_every = 2'}, ["give one of"]),
    ({"run": 'out_dir = "{out}"\nlr = 1'}, ["[run]", 'unknown key "lr"']),
    ({"optim": "lr = 1"}, ["unknown section [optim]"]),
    ({"teacher": 'path = "{tmp}/nowhere"'}, ["[teacher] path", "not a model directory"]),
    ({"teacher": 'path = "{tmp}/gpt2"'}, ["[teacher] path", 'model_type "gpt2" is not supported']),
    ({"teacher": None}, ["missing [teacher]"]),
    ({"data": 'text = "{tmp}/short.txt"'}, ['[[stage]] 1 ("align") seq_len = 32', "shorter than one step"]),
    ({"data": 'text = "{tmp}/missing.txt"'}, ["[data] text: no such file"]),
]


@pytest.mark.parametrize("changes,needles", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_bad_recipe_is_refused_before_training(changes, needles, text, tmp_path, hyla_bin):
    out = tmp_path / "out"
    body = recipe(**changes).replace("{out}", str(out)).replace("{teacher}", str(TEACHER)) \
        .replace("{text}", str(text / "train.txt")).replace("{tmp}", str(text))
    (tmp_path / "r.toml").write_text(body)
    r = run([hyla_bin, "distill", tmp_path / "r.toml"], check=False)
    assert r.returncode == 1, (r.returncode, r.stderr)
    err = r.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert str(tmp_path / "r.toml") in err
    for n in needles:
        assert n in err, (n, err)
    assert not out.exists()  # nothing written
    assert not list(tmp_path.glob(".out-data-*"))


def test_good_recipe_checks_out(text, tmp_path, hyla_bin):
    out = tmp_path / "out"
    body = recipe().replace("{out}", str(out)).replace("{teacher}", str(TEACHER)).replace("{text}", str(text / "train.txt"))
    (tmp_path / "r.toml").write_text(body)
    r = run([hyla_bin, "distill", tmp_path / "r.toml", "--check"])
    assert "check out" in r.stdout
    assert (out / "data" / "manifest.json").exists() and not (out / "convert").exists()


@pytest.mark.parametrize("name", ["distill-teacher-tiny", "distill-teacher-small"])
def test_shipped_recipes_check_out(name, tmp_path, hyla_bin):
    r = run([hyla_bin, "distill", ROOT / "recipes" / f"{name}.toml", "--check", "--out-dir", tmp_path / "o"], cwd=ROOT)
    assert "check out" in r.stdout
