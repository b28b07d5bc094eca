#!/usr/bin/env bash
# Zero-shot perplexity (no training beyond the init) of converted students of
# teacher-small at 25% attention (layers 0 and 4 of 8; uniform interleave), every named
# init side by side, calibrated on assets/text/train.txt and evaluated on the teacher's
# held-out validation.txt at 512-token windows. Prints a Markdown table.
# Usage: bench/convert_zero_shot.sh [HYLA_BIN] [OUT_DIR] [MAX_TOKENS] [ROWS...]
# MAX_TOKENS: score the first N tokens of validation.txt (0 = all 39,812).
set -euo pipefail
HYLA=${1:-build/hyla}
OUT=${2:-runs/convert-zero-shot}
MAXTOK=${3:-0}
shift $(( $# < 3 ? $# : 3 ))
ROWS=("$@")
TEACHER=assets/teacher-small
VALID=$TEACHER/validation.txt
CALIB=assets/text/train.txt
mkdir -p "$OUT"
ppl() { "$HYLA" ppl "$1" "$VALID" --ctx 512 --max-tokens "$MAXTOK" --json | sed -n 's/.*"ppl": *\([0-9.e+]*\).*/\1/p'; }
row() {  # name, convert args...
  local name=$1; shift
  if ((${#ROWS[@]})) && [[ ! " ${ROWS[*]} " == *" $name "* ]]; then return; fi
  local t0=$SECONDS
  "$HYLA" convert "$TEACHER" --out "$OUT/$name" --attention-every 4 --no-progress "$@" >/dev/null
  local conv=$((SECONDS - t0))
  echo "| $name | $(ppl "$OUT/$name") | ${conv}s | \`$*\` |"
}
echo "| student | ppl | convert time | convert args |"
echo "|---|---|---|---|"
if ((${#ROWS[@]} == 0)) || [[ " ${ROWS[*]} " == *" teacher "* ]]; then echo "| teacher | $(ppl "$TEACHER") | | |"; fi
row random --init random
row random-gate --init random-gate
row zero-gate --init zero-gate
row transfer-heads --init transfer --gqa-layout heads
row transfer-rows --init transfer --gqa-layout rows
row transfer-conv-fla --init transfer --conv-init fla
row taylor-init --init taylor-init --calib-text "$CALIB"
row align-only --init align-only --calib-text "$CALIB"
row taylor --init taylor --calib-text "$CALIB"
row taylor-rows --init taylor --gqa-layout rows --calib-text "$CALIB"
for extra in "--beta-bias" "--decay-fit log_mass" "--ridge-v" "--calib-sequences 64"; do
  # shellcheck disable=SC2086
  row "taylor${extra// /}" --init taylor --calib-text "$CALIB" $extra
done
