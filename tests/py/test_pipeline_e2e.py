"""The reduced pipeline end to end on teacher-tiny, as `make demo` runs it but with tiny budgets:
select (bypass-ppl on training text) -> convert (plain transfer; a recipe's [student] names the
selection, so the selected layers stay attention) -> distill (the same recipe: attention
alignment then KL, a few steps) -> eval (held-out text, recall) -> report. Checks that each
step consumes the previous one's output and that distillation moves the student towards the
teacher."""
import json
import textwrap

from conftest import ROOT, run

TINY = ROOT / "assets" / "teacher-tiny"
TRAIN = ROOT / "assets" / "text" / "train.txt"
VAL = TINY / "validation.txt"


def test_select_convert_distill_eval_report(tmp_path, hyla_bin):
    sel = tmp_path / "sel.json"
    run([hyla_bin, "select", TINY, "--device", "cpu", "--method", "bypass-ppl", "--keep", 2, "--text", TRAIN,
         "--max-tokens", 2048, "--ctx", 256, "--out", sel])
    layers = json.loads(sel.read_text())["attention_layers"]

    # One recipe names the selection; `hyla convert --recipe` and `hyla distill` both read it.
    recipe = tmp_path / "r.toml"
    recipe.write_text(textwrap.dedent(f"""
        [run]
        name = "e2e"
        out_dir = "{tmp_path / 'distill'}"
        seed = 1
        device = "cpu"
        log_every = 5
        [teacher]
        path = "{TINY}"
        [student]
        mixer = "gdn"
        selection = "{sel}"
        [data]
        text = "{TRAIN}"
        [[stage]]
        name = "align"
        kind = "attention_align"
        tokens = 8192
        seq_len = 128
        batch_size = 4
        lr = 1e-3
        [[stage]]
        name = "kd"
        kind = "kl"
        tokens = 8192
        seq_len = 128
        batch_size = 4
        lr = 3e-4
        """))
    student = tmp_path / "transfer"
    run([hyla_bin, "convert", "--recipe", recipe, "--out", student])
    run([hyla_bin, "distill", recipe])
    kd = tmp_path / "distill" / "kd"
    assert (kd / "stage.json").exists()
    for model in (student, kd):
        kinds = json.loads((model / "config.json").read_text())["layer_types"]
        assert [i for i, k in enumerate(kinds) if k == "full_attention"] == layers, (model, kinds)

    evals = []
    for path, name in ((TINY, "teacher"), (student, "transfer"), (kd, "distilled")):
        out = tmp_path / f"{name}.json"
        run([hyla_bin, "eval", "all", path, "--device", "cpu", "--name", name, "--teacher", TINY, "--text", VAL,
             "--max-tokens", 2048, "--ctx", 256, "--lengths", "256,1024", "--mqar-samples", 8,
             "--passkey-samples", 2, "--niah-samples", 2, "--niah-new-tokens", 12, "-o", out])
        evals.append(json.loads(out.read_text()))
    teacher, transfer, distilled = evals
    assert teacher["text"]["kl"] < 1e-9  # the teacher against itself
    assert distilled["text"]["kl"] < transfer["text"]["kl"], (distilled["text"], transfer["text"])
    assert distilled["cache"]["kv_cache_bytes_per_token"] == teacher["cache"]["kv_cache_bytes_per_token"] * 2 // 5

    r = run([hyla_bin, "report", *(tmp_path / f"{n}.json" for n in ("teacher", "transfer", "distilled")),
             "--out", tmp_path / "report" / "report.md"])
    for n in ("teacher", "transfer", "distilled"):
        assert f"| {n} |" in r.stdout
    assert (tmp_path / "report" / "report-recall-mqar.svg").exists()
