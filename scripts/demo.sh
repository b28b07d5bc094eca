#!/usr/bin/env bash
# `make demo`: the whole pipeline on the shipped teacher (assets/teacher-tiny), on CPU,
# with no flags: select the attention layers, convert with plain transfer and with
# Taylor-Calibrate, distil briefly (recipes/distill-teacher-tiny.toml), evaluate every
# model on held-out text and recall tasks, and print the report table.
# Everything lands in runs/demo/ (report.md and its plots in runs/demo/report/).
set -euo pipefail
hyla="$(realpath "${1:-build/hyla}")"
cd "$(dirname "$0")/.."
teacher=assets/teacher-tiny
train=assets/text/train.txt            # calibration, probes and distillation: training text
val=$teacher/validation.txt            # evaluation: held-out text only
recipe=recipes/distill-teacher-tiny.toml
work=runs/demo
for f in "$teacher/config.json" "$train" "$val"; do
  [[ -f $f ]] || { echo "error: $f is missing"; exit 1; }
done
rm -rf "$work"
mkdir -p "$work/eval" "$work/report"
start=$SECONDS
has() { "$hyla" "$1" --help >/dev/null 2>&1; }
step() { printf '\n== [%3ds] %s\n' $((SECONDS - start)) "$*"; }
missing=()

step "1. hyla select: attention bypass (perplexity rise on training text), keep 2 of 5 layers"
"$hyla" select "$teacher" --device cpu --method bypass-ppl --keep 2 --text "$train" --max-tokens 8192 \
  --ctx 256 --out "$work/select.json" --plot "$work/select.svg" | tee "$work/select.txt"
layers=$(sed -n 's/.*as attention: \([0-9,]*\).*/\1/p' "$work/select.txt")

students=()
if has convert; then
  step "2. hyla convert: plain weight transfer (attention layers $layers, GDN elsewhere)"
  "$hyla" convert "$teacher" --out "$work/transfer" --mixer gdn --attention-layers "$layers" --init transfer
  students+=("$work/transfer:plain-transfer")
  step "3. hyla convert: Taylor-Calibrate on training text"
  "$hyla" convert "$teacher" --out "$work/taylor" --mixer gdn --attention-layers "$layers" --init taylor \
    --calib-text "$train" --align-steps 100 --no-progress
  students+=("$work/taylor:taylor-calibrate")
else
  missing+=("hyla convert (weight transfer, Taylor-Calibrate)")
fi

if has distill && [[ -f $recipe ]]; then
  # The shipped recipe keeps attention_every = 4 (layers 0, 4) so that it runs on its own;
  # the demo's copy names step 1's selection instead, so that every student in the table
  # keeps the same selected attention layers.
  sed "s|^attention_every = 4\$|selection = \"$work/select.json\"|" "$recipe" > "$work/distill.toml"
  grep -q '^selection = ' "$work/distill.toml" || { echo "error: $recipe: no 'attention_every = 4' line in [student] to replace"; exit 1; }
  step "4. hyla distill $work/distill.toml ($recipe with [student] selection = \"$work/select.json\"; brief, CPU)"
  "$hyla" distill "$work/distill.toml" --out-dir "$work/distill" --device cpu
  # Each trained stage's student; convert/ is the untrained conversion (the plain-transfer row).
  for d in "$work"/distill/*/; do
    [[ $(basename "$d") != convert && -f $d/stage.json && -f $d/config.json ]] &&
      students+=("${d%/}:distilled-$(basename "$d")")
  done
else
  missing+=("hyla distill with $recipe")
fi

step "5. hyla eval all: perplexity and KL on $val, recall at 256/512/1024 tokens (trained at 512), cache memory"
evals=()
eval_one() {  # dir, name
  "$hyla" -q eval all "$1" --device cpu --name "$2" --teacher "$teacher" --text "$val" --max-tokens 8192 \
    --lengths 256,512,1024 --mqar-samples 16 --passkey-samples 6 --niah-samples 6 --niah-new-tokens 16 \
    -o "$work/eval/$2.json" >/dev/null
  evals+=("$work/eval/$2.json")
  printf '   %-28s done at %ds\n' "$2" $((SECONDS - start))
}
eval_one "$teacher" teacher
for s in "${students[@]}"; do eval_one "${s%%:*}" "${s##*:}"; done

step "6. hyla report"
"$hyla" report "${evals[@]}" --out "$work/report/report.md" --title "hyla demo: teacher-tiny"
echo
echo "report: $work/report/report.md (plots beside it); selection: $work/select.json, $work/select.svg"
for m in "${missing[@]}"; do echo "not run (not built yet): $m"; done
echo "demo wall time: $((SECONDS - start)) s"
