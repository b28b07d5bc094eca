"""Taylor-Calibrate (`hyla convert --init taylor|taylor-init`) against float64 computations in
this test from the teacher's attention probabilities as transformers returns them
(`output_attentions=True`, eager attention) — methods.md §3.3–3.4:
  * per head: mean attention distance d = mean_{b,i} sum_j P_ij max(i - j, 0.5) and
    entropy H = mean_{b,i} -sum_j P_ij ln max(P_ij, 1e-10), as hyla reports them (convert.json);
  * what they set: A_log = 0, dt_bias = softplus^-1(clamp(ln 2 / max(d, 0.5), 1e-3, 5)),
    W_b rows with mean |row| = |logit(beta*)| / sqrt(d_model), beta* = 0.3 + 0.4 c (c = 1 -
    min-max-normalised entropy), or (--beta-bias) b_proj bias = logit(beta*);
  * the least-squares value scale sigma_h = clamp(sum<c, o> / sum<o, o>, 0.1, 10), c = P V (the
    teacher's context), o = the GDN recurrence's read-out computed with fla's
    naive_recurrent_gated_delta_rule in float64 from the checkpoint's gates, the teacher's
    weights and transformers' hidden states; W_v = sigma-scaled teacher rows; W_g = alpha W_v,
    alpha = 0.01 rms(c) / rms(SiLU(W_v x));
  * Phase 2 keeps the true best step: the saved layer's MSE against the teacher attention
    output (transformers, float64) is the reported best loss, and a diverging run keeps the
    initial weights.
The calibration ids are hyla's (convert.json), checked against `tokenizers`' encoding.
"""
import json
import math
import random

import pytest
import torch
import torch.nn.functional as F
import transformers
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer

from conftest import ROOT, run
from mixer_oracle import in_float64, l2norm
from fla.ops.gated_delta_rule.naive import naive_recurrent_gated_delta_rule

naive64 = in_float64(naive_recurrent_gated_delta_rule)
HIDDEN, HEADS, KV, HD, LAYERS = 64, 4, 2, 16, 3
B, T = 2, 48
TOKENIZER = ROOT / "assets" / "teacher-tiny" / "tokenizer.json"
WORDS = ("the of and to in a is that for it as was with be by on not he this are or his from at which but have an "
         "they you were her she there one all we their been has when who will more no if out so said what up its "
         "about into than them can only other new some could time these two may then do first any my now such like "
         "our over man me even most made after also did many before must through back years where much your way "
         "well down should because each just those people how too little state good very make world still own see "
         "men work long get here between both life being under never day same another know while last might us "
         "great old year off come since against go came right used take three").split()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("taylor")
    cfg = transformers.LlamaConfig(vocab_size=8192, hidden_size=HIDDEN, intermediate_size=96, num_hidden_layers=LAYERS,
                                   num_attention_heads=HEADS, num_key_value_heads=KV, head_dim=HD,
                                   max_position_embeddings=256, initializer_range=0.15, rms_norm_eps=1e-5,
                                   bos_token_id=1, eos_token_id=2, pad_token_id=None, tie_word_embeddings=True)
    torch.manual_seed(5)
    model = transformers.LlamaForCausalLM(cfg).eval()
    model.save_pretrained(d / "teacher")
    (d / "teacher" / "tokenizer.json").write_bytes(TOKENIZER.read_bytes())
    rng = random.Random(1)  # stands in for training text (never a validation file)
    lines = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 20))).capitalize() + "." for _ in range(200)]
    (d / "train.txt").write_text("\n".join(lines) + "\n")
    return d


def convert(hyla_bin, setup, name, *args):
    out = setup / name
    run([hyla_bin, "convert", setup / "teacher", "--out", out, "--attention-every", "2", "--calib-text",
         setup / "train.txt", "--calib-sequences", str(B), "--calib-seq-len", str(T), "--dtype", "float32",
         "--no-progress", *args])
    return out, json.loads((out / "convert.json").read_text()), load_file(out / "model.safetensors")


def teacher_view(setup, ids, layer):
    """transformers in float64: the layer's normalised input, attention probabilities, its
    attention module and the attention sublayer's output (before the residual add)."""
    model = transformers.AutoModelForCausalLM.from_pretrained(setup / "teacher", attn_implementation="eager")
    model = model.double().eval()
    blk = model.model.layers[layer]
    got = {}
    def keep(module, args, out):  # returns None: the output is left as it is
        got["y"] = out[0]
    hook = blk.self_attn.register_forward_hook(keep)
    with torch.no_grad():
        out = model(input_ids=ids, output_attentions=True, output_hidden_states=True)
        x = blk.input_layernorm(out.hidden_states[layer])
    hook.remove()
    return x, out.attentions[layer], blk.self_attn, got["y"]


def oracle_stats(P):
    i = torch.arange(T, dtype=torch.float64).unsqueeze(1)
    j = torch.arange(T, dtype=torch.float64).unsqueeze(0)
    causal = (j <= i).double()
    dist = (i - j).clamp_min(0.5) * causal
    mean_dist = (P * dist).sum(-1).mean((0, 2))
    entropy = -(P * torch.log(P.clamp_min(1e-10)) * causal).sum(-1).mean((0, 2))
    return mean_dist, entropy


def beta_logit(entropy):
    c = 1 - (entropy - entropy.min()) / max(float(entropy.max() - entropy.min()), 1e-3)
    beta = 0.3 + 0.4 * c
    return torch.log(beta / (1 - beta))


def close(got, want, tol, what):
    got, want = torch.as_tensor(got, dtype=torch.float64), torch.as_tensor(want, dtype=torch.float64)
    err = float((got - want).abs().max() / want.abs().max().clamp_min(1e-300))
    print(f"{what}: max rel. error {err:.1e}")
    assert err <= tol, (what, err, got, want)


@pytest.fixture(scope="module")
def taylor_init(setup, hyla_bin):
    return convert(hyla_bin, setup, "init", "--init", "taylor-init")


def test_calibration_ids_are_training_text(setup, taylor_init):
    _, info, _ = taylor_init
    ids = info["calibration"]["ids"]
    want = Tokenizer.from_file(str(TOKENIZER)).encode((setup / "train.txt").read_text(), add_special_tokens=False).ids
    assert ids == want[:B * T]
    assert info["calib_text"].endswith("train.txt")


def test_statistics_decay_and_write_strength(setup, taylor_init):
    _, info, t = taylor_init
    ids = torch.tensor(info["calibration"]["ids"]).view(B, T)
    x, P, _, _ = teacher_view(setup, ids, 1)
    (rep,) = [layer for layer in info["calibration"]["layers"] if layer["layer"] == 1]
    mean_dist, entropy = oracle_stats(P)
    close(rep["mean_distance"], mean_dist, 1e-5, "mean attention distance")
    close(rep["entropy"], entropy, 1e-5, "attention entropy")
    tau = (math.log(2) / mean_dist.clamp_min(0.5)).clamp(1e-3, 5)
    p = "model.layers.1.linear_attn."
    assert not t[p + "A_log"].any()
    close(t[p + "dt_bias"], tau + torch.log(-torch.expm1(-tau)), 1e-5, "dt_bias = softplus^-1(ln2 / d)")
    lam = beta_logit(entropy)
    close(t[p + "b_proj.weight"].double().abs().mean(1), lam.abs() / math.sqrt(HIDDEN), 1e-4, "mean |W_b row|")


def test_value_scale_and_output_gate(setup, taylor_init):
    _, info, t = taylor_init
    ids = torch.tensor(info["calibration"]["ids"]).view(B, T)
    x, P, attn, _ = teacher_view(setup, ids, 1)
    (rep,) = [layer for layer in info["calibration"]["layers"] if layer["layer"] == 1]
    p = "model.layers.1.linear_attn."
    w = {k[len(p):]: v.double() for k, v in t.items() if k.startswith(p)}
    with torch.no_grad():
        wk = attn.k_proj.weight.unflatten(0, (KV, HD)).repeat_interleave(HEADS // KV, 0).flatten(0, 1)
        wv = attn.v_proj.weight.unflatten(0, (KV, HD)).repeat_interleave(HEADS // KV, 0).flatten(0, 1)
        heads = (B, T, HEADS, HD)
        q = l2norm(F.silu(F.linear(x, attn.q_proj.weight)).view(heads))  # conv starts as identity
        k = l2norm(F.silu(F.linear(x, wk)).view(heads))
        v = F.silu(F.linear(x, wv)).view(heads)
        g = -w["A_log"].exp() * F.softplus(F.linear(x, w["a_proj.weight"]) + w["dt_bias"])
        beta = torch.sigmoid(F.linear(x, w["b_proj.weight"]))
        o, _ = naive64(q, k, v, beta=beta, g=g, scale=1.0)  # the reference fits without dk^-1/2
        ctx = torch.einsum("bhij,bjhd->bihd", P, F.linear(x, wv).view(heads))
        sigma = ((ctx * o).sum((0, 1, 3)) / (o * o).sum((0, 1, 3))).clamp(0.1, 10)
    close(rep["sigma"], sigma, 1e-4, "least-squares value scale")
    close(w["v_proj.weight"], wv * sigma.repeat_interleave(HD).unsqueeze(1), 1e-4, "W_v = sigma-scaled teacher rows")
    with torch.no_grad():
        vs = F.silu(F.linear(x, w["v_proj.weight"]))
        alpha = 0.01 * ctx.pow(2).mean(-1).sqrt().mean() / vs.pow(2).mean().sqrt()
    close(rep["gate_alpha"], alpha, 1e-4, "output gate scale")
    close(w["g_proj.weight"], alpha * w["v_proj.weight"], 1e-4, "W_g = alpha W_v")


def test_beta_bias_switch(setup, hyla_bin, taylor_init):
    _, info, t = convert(hyla_bin, setup, "bias", "--init", "taylor-init", "--beta-bias")
    ids = torch.tensor(info["calibration"]["ids"]).view(B, T)
    _, P, _, _ = teacher_view(setup, ids, 1)
    close(t["model.layers.1.linear_attn.b_proj.bias"], beta_logit(oracle_stats(P)[1]), 1e-5, "b_proj bias = logit(beta*)")
    assert json.loads((setup / "bias" / "config.json").read_text())["linear_config"]["gdn"]["beta_bias"] is True


def mixer_mse(setup, testkit_bin, student, ids, layer, tmp):
    x, _, _, y = teacher_view(setup, ids, layer)
    src, dst = tmp / "in.safetensors", tmp / "out.safetensors"
    save_file({"x": x.contiguous(), "a": torch.zeros(B, T, HEADS * HD, dtype=torch.float64)}, src)
    run([testkit_bin, "mixer-parts", "--model", student, "--layer", str(layer), "--input", src, "--out", dst])
    return float((load_file(dst)["y"] - y).pow(2).mean())


def test_alignment_keeps_true_best(setup, hyla_bin, testkit_bin, tmp_path):
    out, info, _ = convert(hyla_bin, setup, "full", "--init", "taylor", "--align-steps", "25")
    ids = torch.tensor(info["calibration"]["ids"]).view(B, T)
    (rep,) = [layer["align"] for layer in info["calibration"]["layers"] if layer["layer"] == 1]
    assert rep["best_loss"] < rep["initial_loss"] and rep["best_step"] > 0
    mse = mixer_mse(setup, testkit_bin, out, ids, 1, tmp_path)
    print(f"aligned layer: MSE vs transformers {mse:.6g}, reported best {rep['best_loss']:.6g}")
    assert abs(mse - rep["best_loss"]) <= 1e-3 * rep["best_loss"]


def test_diverging_alignment_keeps_initial_weights(setup, hyla_bin, testkit_bin, tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text('[student]\nattention_every = 2\ninit = "taylor"\n'
                      f'[student.taylor]\nlr_qkv = 50.0\nlr_new = 50.0\nalign_steps = 3\ncalib_sequences = {B}\n'
                      f'calib_seq_len = {T}\nprogress = false\n')
    out = tmp_path / "s"
    run([hyla_bin, "convert", setup / "teacher", "--out", out, "--recipe", recipe, "--calib-text",
         setup / "train.txt", "--dtype", "float32"])
    info = json.loads((out / "convert.json").read_text())
    (rep,) = [layer["align"] for layer in info["calibration"]["layers"] if layer["layer"] == 1]
    assert rep["best_step"] == 0 and rep["best_loss"] == rep["initial_loss"]
    ids = torch.tensor(info["calibration"]["ids"]).view(B, T)
    mse = mixer_mse(setup, testkit_bin, out, ids, 1, tmp_path)
    assert abs(mse - rep["initial_loss"]) <= 1e-3 * rep["initial_loss"]
