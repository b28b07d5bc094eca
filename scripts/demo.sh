#!/usr/bin/env bash
# `make demo`: what hyla does, on the shipped teacher (assets/teacher-tiny), on CPU.
set -euo pipefail
hyla="${1:-build/hyla}"
model=assets/teacher-tiny
cd "$(dirname "$0")/.."
[[ -f $model/config.json ]] || { echo "error: $model is missing (see recipes/teacher-tiny.toml)"; exit 1; }
echo "== hyla info $model"
"$hyla" info "$model"
echo
echo "== hyla generate (greedy, 48 tokens)"
"$hyla" generate "$model" --device cpu -p "The history of the" -n 48 --stats
echo
echo "== hyla generate (temperature 0.8, top-p 0.9)"
"$hyla" generate "$model" --device cpu -p "In the morning, she" -n 48 -t 0.8 --top-p 0.9 --seed 7
echo
if [[ -f $model/validation.txt ]]; then
  echo "== hyla ppl on held-out text"
  "$hyla" ppl "$model" "$model/validation.txt" --device cpu --ctx 512
fi
echo
echo "== hyla hybrid: keep 1 attention layer in 4, Gated DeltaNet in the others (untrained mixers)"
hybrid="$(mktemp -d)/hybrid"
"$hyla" hybrid "$model" --out "$hybrid" --mixer gdn --attention-every 4
"$hyla" info "$hybrid" | tail -5
