#!/usr/bin/env bash
# Installs everything hyla needs to build and test, idempotently:
#   - Debian packages (compiler tools, clang for libFuzzer, header-only libraries, gloo headers),
#   - a Python venv under ~/.cache/hyla/venv holding PyPI's torch (LibTorch for the
#     build) and the test oracles (transformers, tokenizers, fla).
# A stamp file records what was installed, so a second run costs a second.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cache="${HYLA_CACHE:-$HOME/.cache/hyla}"
venv="$cache/venv"
mkdir -p "$cache"

debs=(cmake ninja-build g++ ccache pkg-config nlohmann-json3-dev libcli11-dev
      libgtest-dev libpcre2-dev libtomlplusplus-dev libgloo-dev iproute2
      libicu-dev libcpp-httplib-dev clang)  # clang: libFuzzer for `make test`'s bounded fuzz run
missing=()
for p in "${debs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  echo "[setup] apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

stamp="$venv/.hyla-requirements"
if [[ ! -f "$stamp" ]] || ! cmp -s "$stamp" "$here/requirements-test.txt"; then
  echo "[setup] creating Python venv in $venv (torch wheel is ~4.6 GB, takes a minute)"
  [[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q -r "$here/requirements-test.txt"
  cp "$here/requirements-test.txt" "$stamp"
fi
echo "[setup] ok: $("$venv/bin/python" -c 'import torch; print("torch", torch.__version__)')"
