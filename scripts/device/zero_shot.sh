#!/usr/bin/env bash
# ON THE DEVICE (device tool, carry [".carry"]): builds hyla with CUDA, then
#  1. bench/convert_zero_shot.sh: every init of a 25%-attention GDN student of
#     teacher-small, zero-shot perplexity / KL / top-1 on its whole validation text
#     (8 students at once, Taylor-Calibrate and evaluation on the GPU);
#  2. the Qwen3-Next greedy-text check (docs/qwen3-next.md "On the GPU") with the
#     Taylor-Calibrated, QK-normed student of step 1 exported as well.
# Needs, made HERE first: scripts/device/pack.sh. Results under $OUT.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-/tmp/hyla-out}"
mkdir -p "$OUT"
exec > >(tee -a "$OUT/zero_shot_log.txt") 2>&1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
t0=$SECONDS
HYLA_BUILD_TARGET=hyla scripts/device/build.sh build || exit 1
echo "[zs] build: $((SECONDS - t0)) s"
export LD_LIBRARY_PATH=/tmp/hyla-prefix/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
JOBS=${JOBS:-8} EVAL_DEVICE=cuda CONVERT_DEVICE=cuda bench/convert_zero_shot.sh build-cuda/hyla /tmp/zs 0 | tee "$OUT/zero_shot.md"
echo "[zs] table: $((SECONDS - t0)) s"
for f in /tmp/zs/taylor.log /tmp/zs/taylor-qk-norm.log; do echo "== $f"; grep -v "^\s*$" "$f" | tail -8; done
[[ ${SKIP_Q3N:-0} == 1 ]] && exit 0
site=/tmp/fla-site
fla=()
if ls .carry/wheels/*.whl >/dev/null 2>&1 &&
   python3 -m pip install --quiet --no-index --no-deps --target $site .carry/wheels/*.whl; then
  fla=(--fla-site $site)
fi
python3 scripts/device/check_qwen3_next_generate.py --prepare /tmp/q3n_check --hyla build-cuda/hyla \
  --also student-gdn-taylor=/tmp/zs/taylor-qk-norm || exit 1
python3 scripts/device/check_qwen3_next_generate.py --check /tmp/q3n_check --hyla build-cuda/hyla \
  --out "$OUT/q3n_generate.json" "${fla[@]}"
echo "[zs] total: $((SECONDS - t0)) s"
