#!/usr/bin/env bash
# Top-k teacher logits cached on disk against the full KL (pipeline.md §5, proposed): one
# KL stage, the same student (teacher-tiny -> GDN, attention in layers 0 and 4, plain
# transfer), the same data and steps, with the full vocabulary (top_k = 0) and with
# top_k = K. Per run: the KL it trained on (last step), the full KL logged beside it
# (kl_full), the student's KL(teacher || student) on held-out text afterwards, wall time
# and the cache's size; then each top-k run again over its filled cache ("rerun": every
# entry a hit, the teacher never runs). Prints a Markdown table.
# Usage: [TOKENS=24576] bench/topk_kl.sh [HYLA_BIN] [OUT_DIR] [K...]     (default K: 8 64 512)
# Held-out KL: the first 8,192 tokens of teacher-tiny's validation.txt, 256-token windows.
set -euo pipefail
HYLA=$(realpath "${1:-build/hyla}")
OUT=${2:-runs/topk-kl}
shift $(( $# < 2 ? $# : 2 ))
KS=("${@:-8 64 512}")
read -ra KS <<< "${KS[*]}"
cd "$(dirname "$0")/.."
TEACHER=assets/teacher-tiny
VALID=$TEACHER/validation.txt
TOKENS=${TOKENS:-24576}
rm -rf "$OUT"
mkdir -p "$OUT"
"$HYLA" convert "$TEACHER" --out "$OUT/student" --attention-every 4 --dtype float32 >/dev/null
last() { tail -n 1 "$1/kd/metrics.jsonl" | sed -n "s/.*\"$2\": *\([0-9.e+-]*\).*/\1/p"; }
heldout_kl() {  # model dir
  "$HYLA" -q eval kl "$1" "$VALID" --teacher "$TEACHER" --ctx 256 --max-tokens 8192 2>/dev/null |
    sed -n 's/.*"kl": *\([0-9.e+-]*\).*/\1/p'
}
distil() {  # name, top_k
  local dir=$OUT/$1 cache=""
  (($2 > 0)) && cache="top_k = $2
teacher_cache = \"$OUT/cache-$2\""
  cat > "$OUT/$1.toml" <<TOML
[run]
out_dir = "$dir"
seed = 0
device = "cpu"
log_every = 4
save_every = 0
[teacher]
path = "$TEACHER"
[student]
path = "$OUT/student"
[data]
text = "assets/text/train.txt"
[[stage]]
name = "kd"
kind = "kl"
$cache
train = ["all"]
tokens = $TOKENS
seq_len = 128
batch_size = 8
lr = 1e-3
min_lr = 1e-5
TOML
  local t0=$SECONDS
  "$HYLA" -q distill "$OUT/$1.toml" >/dev/null 2>&1
  echo $((SECONDS - t0))
}
echo "| run | trained loss (last step) | kl_full (last step) | held-out KL after | wall time | cache |"
echo "|---|---|---|---|---|---|"
echo "| converted student, before the stage | | | $(heldout_kl "$OUT/student") | | |"
t=$(distil full 0)
echo "| full vocabulary | $(last "$OUT/full" loss) | (= loss) | $(heldout_kl "$OUT/full/kd") | ${t}s | |"
for k in "${KS[@]}"; do
  t=$(distil "top$k" "$k")
  size=$(du -sh "$OUT/cache-$k" | cut -f1)
  echo "| top_k = $k | $(last "$OUT/top$k" loss) | $(last "$OUT/top$k" kl_full) | $(heldout_kl "$OUT/top$k/kd") | ${t}s | $size |"
  t=$(distil "top$k-rerun" "$k")
  echo "| top_k = $k, rerun over the cache | $(last "$OUT/top$k-rerun" loss) | (teacher not run) | $(heldout_kl "$OUT/top$k-rerun/kd") | ${t}s | hits: $(sed -n 's/.*"hits": *\([0-9]*\).*/\1/p' "$OUT/top$k-rerun/kd/stage.json" | head -1) |"
done
