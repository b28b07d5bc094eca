"""Shared pytest fixtures: where the built binaries are, and oracle versions in the log."""
import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


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


def pytest_report_header(config):
    lines = []
    for mod in ("torch", "transformers", "tokenizers", "fla", "safetensors"):
        try:
            m = __import__(mod)
            lines.append(f"{mod} {getattr(m, '__version__', '?')}")
        except Exception as e:  # noqa: BLE001 - report, do not fail collection
            lines.append(f"{mod} unavailable ({e.__class__.__name__})")
    return "oracles: " + ", ".join(lines)
