"""Shared pytest fixtures: where the built binaries are, the test device, and the oracles
(each must import, or the run fails naming it; their versions head the log)."""
import importlib
import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
# Where the testkit runs hyla's computations: "cpu" (default, CI) or "cuda" (the device
# machine's run, scripts/device/build.sh). The testkit reads the same variable.
DEVICE = os.environ.get("HYLA_TEST_DEVICE", "cpu")
# Norm-wise relative error bounds for hyla's float32 results against float32/float64
# oracles. On the CPU 1e-5 (measured 1e-7..5e-6). On a GPU reductions run in another
# order (and SDPA picks other kernels); float32 arithmetic there still lands "far under
# 1e-3" (the device METHOD.md), so 1e-4. TF32 is never enabled by hyla.
F32_TOL = 1e-5 if DEVICE == "cpu" else 1e-4
# bf16 weights and activations against a float32 oracle: bf16 operands land between 1e-3
# and 1e-2 per operation (METHOD.md); through three layers of the test models' large
# random weights, up to ~4e-2 on logits, as transformers' own bf16 run gives. The bf16
# test also bounds hyla by twice transformers' bf16 error.
BF16_TOL = 6e-2


def _bin(env, name):
    p = os.environ.get(env) or str(ROOT / "build" / name)
    if not pathlib.Path(p).exists():
        pytest.exit(f"{p} not built; run `make build` first", returncode=2)
    return p


@pytest.fixture(scope="session")
def hyla_bin():
    return _bin("HYLA_BIN", "hyla")


@pytest.fixture(scope="session")
def testkit_bin():
    return _bin("HYLA_TESTKIT", "hyla_testkit")


def run(cmd, check=True, **kw):
    """Runs a command, returning CompletedProcess; on failure shows its stderr."""
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} exited {r.returncode}:\n{r.stderr}")
    return r


# The oracles the tests compare against (module, pip package). A missing or broken one
# fails the whole run, naming it; nothing is skipped for want of an oracle.
ORACLES = [
    ("torch", "torch"), ("numpy", "numpy"), ("safetensors", "safetensors"),
    ("transformers", "transformers"), ("tokenizers", "tokenizers"), ("fla", "flash-linear-attention"),
    ("fla.ops.gla.naive", "flash-linear-attention"), ("fla.ops.simple_gla.naive", "flash-linear-attention"),
    ("fla.ops.gated_delta_rule.naive", "flash-linear-attention"),
    ("fla.layers.gated_deltanet", "flash-linear-attention"),
]


def oracle_versions():
    """Imports every oracle; returns "name version" strings, or exits naming the missing one."""
    versions, missing = [], []
    for mod, pkg in ORACLES:
        try:
            m = importlib.import_module(mod)
        except Exception as e:  # noqa: BLE001 - any import failure is a missing oracle
            missing.append(f"oracle `{mod}` (pip package {pkg}) cannot be imported: {e.__class__.__name__}: {e}")
            continue
        if "." not in mod:
            versions.append(f"{mod} {getattr(m, '__version__', '?')}")
    if missing:
        pytest.exit("\n".join(missing) + "\ninstall the oracles with scripts/setup.sh "
                    "(or pip install -r requirements-test.txt)", returncode=1)
    return versions


def pytest_sessionstart(session):
    line = "oracles: " + ", ".join(oracle_versions()) + f"; test device: {DEVICE}"
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    if tr is not None:  # printed even under -q, so every test log names what it compared against
        tr.write_line(line)
