#!/usr/bin/env bash
# Zero-shot perplexity (no training beyond the init) of converted students of
# teacher-small at 25% attention (layers 0 and 4 of 8; uniform interleave), every named
# init side by side, calibrated on assets/text/train.txt and evaluated on the teacher's
# held-out validation.txt at 512-token windows: perplexity, mean KL(teacher || student) per
# token and top-1 agreement with the teacher (`hyla eval kl`). Prints a Markdown table.
# EVAL_DEVICE (default auto) is where the evaluation runs, CONVERT_DEVICE (default cpu)
# where Taylor-Calibrate does (`hyla convert --device`).
# JOBS=N (default 1) converts N students at once, each with THREADS CPU threads (default
# nproc/N): one 8-layer conversion uses few cores well, so rows in parallel finish sooner.
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
DEV=${EVAL_DEVICE:-auto}
field() { sed -n "s/.*\"$1\": *\([0-9.e+-]*\).*/\1/p"; }
# "ppl | KL | top-1" of a model against the teacher, one forward of each per window.
score() {
  local j; j=$("$HYLA" eval kl "$1" "$VALID" --teacher "$TEACHER" --ctx 512 --max-tokens "$MAXTOK" --device "$DEV" 2>/dev/null | tail -1)
  printf '%.2f | %.4f | %.3f' "$(field ppl <<<"$j")" "$(field kl <<<"$j")" "$(field top1_agreement <<<"$j")"
}
JOBS=${JOBS:-1}
THREADS=${THREADS:-$(( $(nproc) / JOBS > 0 ? $(nproc) / JOBS : 1 ))}
NAMES=()
one_row() {  # name, convert args...: the table row, into $OUT/name.row
  local name=$1; shift
  local t0=$SECONDS
  OMP_NUM_THREADS=$THREADS "$HYLA" convert "$TEACHER" --out "$OUT/$name" --attention-every 4 --no-progress \
    --device "${CONVERT_DEVICE:-cpu}" "$@" \
    >"$OUT/$name.log" 2>&1 || { echo "| $name | convert failed: $(tail -1 "$OUT/$name.log") | | | | |" >"$OUT/$name.row"; return; }
  local conv=$((SECONDS - t0))
  echo "| $name | $(score "$OUT/$name") | ${conv}s | \`$*\` |" >"$OUT/$name.row"
}
row() {
  local name=$1
  if ((${#ROWS[@]})) && [[ ! " ${ROWS[*]} " == *" $name "* ]]; then return; fi
  NAMES+=("$name")
  while (( $(jobs -rp | wc -l) >= JOBS )); do wait -n; done
  one_row "$@" &
}
echo "| student | ppl | KL | top-1 | convert time | convert args |"
echo "|---|---|---|---|---|---|"
if ((${#ROWS[@]} == 0)) || [[ " ${ROWS[*]} " == *" teacher "* ]]; then echo "| teacher | $(score "$TEACHER") | | |"; fi
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
row transfer-qk-norm --init transfer --attention-qk-norm
row taylor-qk-norm --init taylor --calib-text "$CALIB" --attention-qk-norm
wait
for n in "${NAMES[@]}"; do cat "$OUT/$n.row"; done
