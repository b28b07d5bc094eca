#!/usr/bin/env bash
# ON THE DEVICE (device tool, carry [".carry"]): builds hyla with CUDA and compares the
# greedy bfloat16 text of `hyla generate` with transformers' Qwen3NextForCausalLM.generate
# on hyla students exported to the Qwen3-Next layout (docs/qwen3-next.md "On the GPU").
# Needs, made HERE first: scripts/device/pack.sh (.carry/debs, .carry/wheels with fla).
# The exported models are made there from assets/teacher-small by the CUDA build (they
# would not fit the 64 MiB that travels). Results: $OUT/q3n_log.txt, $OUT/q3n_generate.json.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-/tmp/hyla-out}"
mkdir -p "$OUT"
exec > >(tee -a "$OUT/q3n_log.txt") 2>&1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
t0=$SECONDS
HYLA_BUILD_TARGET=hyla scripts/device/build.sh build || exit 1
echo "[q3n] build: $((SECONDS - t0)) s"
export LD_LIBRARY_PATH=/tmp/hyla-prefix/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
site=/tmp/fla-site
fla=()
if ls .carry/wheels/*.whl >/dev/null 2>&1 &&
   python3 -m pip install --quiet --no-index --no-deps --target $site .carry/wheels/*.whl; then
  fla=(--fla-site $site)
fi
python3 scripts/device/check_qwen3_next_generate.py --prepare /tmp/q3n_check --hyla build-cuda/hyla || exit 1
echo "[q3n] exports: $((SECONDS - t0)) s"
python3 scripts/device/check_qwen3_next_generate.py --check /tmp/q3n_check --hyla build-cuda/hyla \
  --out "$OUT/q3n_generate.json" "${fla[@]}"
echo "[q3n] total: $((SECONDS - t0)) s"
