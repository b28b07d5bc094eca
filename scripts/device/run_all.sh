#!/usr/bin/env bash
# One device call that builds, checks and benchmarks, and (optionally) trains the
# teachers. Results land in $OUT (at most 8 files of <= 16 MiB come back):
#   $OUT/log.txt            everything printed
#   $OUT/bench.json         benchmark figures
#   $OUT/teachers.tar.gz    teacher configs, metrics, tokenizer, trainer state
#   $OUT/*.safetensors      teacher weights (shards <= 15 MiB)
#   $OUT/fla_export.json    `hyla export --format fla` vs fla's real kernels (step fla)
# usage: scripts/device/run_all.sh [build] [test] [bench] [teachers] [fla]
#   (default: build test bench teachers; `fla` needs .carry/wheels and .carry/fla_check
#   from pack.sh, or `build` before it)
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-/tmp/hyla-out}"
mkdir -p "$OUT"
steps=("$@")
((${#steps[@]})) || steps=(build test bench teachers)
has() { [[ " ${steps[*]} " == *" $1 "* ]]; }
export NCCL_NVLS_ENABLE=0   # NVLink multicast stays off on these machines
exec > >(tee -a "$OUT/log.txt") 2>&1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
t0=$SECONDS
if has build; then
  scripts/device/build.sh build || exit 1
  echo "[run_all] build: $((SECONDS - t0)) s"
fi
hyla=build-cuda/hyla
export LD_LIBRARY_PATH=/tmp/hyla-prefix/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
if has test; then
  OUT="$OUT" scripts/device/build.sh test   # C++ tests, then the oracle tests on CUDA
  echo "[run_all] tests: $((SECONDS - t0)) s"
fi
if has teachers; then
  for t in teacher-tiny teacher-small; do
    $hyla pretrain recipes/$t.toml --set run.out_dir=\"runs/$t\" 2>&1 | grep -v '^\s*$' | tail -25
    echo "[run_all] $t: $((SECONDS - t0)) s"
  done
  tiny=$(cat runs/teacher-tiny/checkpoints/latest); small=$(cat runs/teacher-small/checkpoints/latest)
  cp runs/teacher-tiny/checkpoints/$tiny/model.safetensors "$OUT/teacher-tiny.safetensors"
  for f in runs/teacher-small/checkpoints/$small/model-*.safetensors; do cp "$f" "$OUT/teacher-small-$(basename "$f")"; done
  tar czf "$OUT/teachers.tar.gz" --exclude='*.safetensors' runs/teacher-tiny/metrics.jsonl runs/teacher-small/metrics.jsonl \
    runs/teacher-tiny/checkpoints/$tiny runs/teacher-small/checkpoints/$small \
    runs/teacher-small/checkpoints/$small/model.safetensors.index.json
fi
if has bench; then
  python3 bench/generate_vs_hf.py --hyla $hyla --out "$OUT/bench_generate.json" 2>&1 | grep -v Warning | tail -8
  echo "[run_all] generate bench: $((SECONDS - t0)) s"
  python3 bench/train_throughput.py --hyla $hyla --data data/teacher --out "$OUT/bench_train.json" 2>&1 | grep -v Warning | tail -8
  echo "[run_all] train bench: $((SECONDS - t0)) s"
fi
if has fla; then
  # fla's wheels are pure Python: installed offline into a private folder, no dependencies
  # resolved (torch, triton and transformers are the image's). The exports and hyla's
  # logits come from pack.sh (.carry/fla_check); without them they are made here, which
  # needs the `build` step first.
  site=/tmp/fla-site
  python3 -m pip install --quiet --no-index --no-deps --target $site .carry/wheels/*.whl 2>&1 | tail -3 ||
    for w in .carry/wheels/*.whl; do python3 -m zipfile -e "$w" $site; done
  if [[ -d .carry/fla_check ]]; then from=(--check .carry/fla_check); else from=(--hyla $hyla --testkit build-cuda/hyla_testkit); fi
  PYTHONPATH=$site${PYTHONPATH:+:$PYTHONPATH} python3 scripts/device/check_fla_export.py "${from[@]}" \
    --out "$OUT/fla_export.json" 2>&1 | grep -v Warning | tail -30
  echo "[run_all] fla export check: $((SECONDS - t0)) s"
fi
echo "[run_all] done in $((SECONDS - t0)) s"
