"""Helpers for the mixer oracle tests: safetensors round trips through hyla_testkit, and
fla's naive references run in float64.

fla's `naive_*_gated_delta_rule` cast their inputs with `.to(torch.float32)` and build
`torch.eye(..., dtype=torch.float)`. `in_float64(fn)` re-binds such a function to a copy
of its module globals whose `torch` answers `float32`/`float` with `float64`, so fla's own
code runs unchanged in double precision (nothing else in it is touched).
"""
import math
import types

import torch
from safetensors.torch import load_file, save_file

from conftest import run


class _Float64Torch(types.ModuleType):
    def __init__(self):
        super().__init__("torch_float64_view")

    def __getattr__(self, name):
        if name in ("float32", "float"):
            return torch.float64
        return getattr(torch, name)


def in_float64(fn):
    g = dict(fn.__globals__)
    g["torch"] = _Float64Torch()
    return types.FunctionType(fn.__code__, g, fn.__name__, fn.__defaults__, fn.__closure__)


def rel_err(a, b):
    a, b = a.double(), b.double()
    den = b.norm().item()
    return (a - b).norm().item() / den if den else (a - b).norm().item()


def l2norm(x, eps=1e-6):
    """fla's l2norm (modules/norm/l2norm.py kernels): x / sqrt(sum x^2 + eps)."""
    return x * torch.rsqrt(x.square().sum(-1, keepdim=True) + eps)


def save(path, **tensors):
    save_file({k: v.contiguous() for k, v in tensors.items() if v is not None}, str(path))


def run_op(testkit, tmp_path, op, form, chunk=64, tag="", **inputs):
    """Runs `hyla_testkit mix-op`; returns (o, state), or for form "all" a dict
    {form: (o, state)} over recurrent, chunked and (unpacked inputs only) step."""
    src, dst = tmp_path / f"in{tag}.safetensors", tmp_path / f"out{tag}.safetensors"
    save(src, **inputs)
    run([testkit, "mix-op", "--op", op, "--form", form, "--chunk", chunk, "--in", src, "--out", dst])
    out = load_file(str(dst))
    if form != "all":
        return out["o"], out["state"]
    return {k[2:]: (v, out["state." + k[2:]]) for k, v in out.items() if k.startswith("o.")}


def alibi_slopes(n):
    """ALiBi slopes (Press et al.), as HALO's _build_slope_tensor computes them."""
    def pow2(m):
        start = 2 ** (-(2 ** -(math.log2(m) - 3)))
        return [start * start ** i for i in range(m)]
    if math.log2(n).is_integer():
        return pow2(n)
    p = 2 ** math.floor(math.log2(n))
    return pow2(p) + alibi_slopes(2 * p)[0::2][: n - p]
