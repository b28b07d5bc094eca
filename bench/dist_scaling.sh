#!/usr/bin/env bash
# Data-parallel scaling on one host: tokens/s of `hyla pretrain` at 1 GPU (no process
# group) and under torchrun at N GPUs (NCCL), same per-rank micro-batch (weak scaling).
#   bench/dist_scaling.sh HYLA RECIPE STEPS GPUS...
set -uo pipefail
hyla=$1 recipe=$2 steps=$3; shift 3
export NCCL_NVLS_ENABLE=0
rate() { grep -o '[0-9.]* tokens/s' | tail -1 | cut -d' ' -f1; }
base=$("$hyla" -q pretrain "$recipe" --steps "$steps" --out-dir "$(mktemp -d)" 2>&1 | rate)
echo "| $(basename "$recipe") | 1 | $base | 1.00x |"
for n in "$@"; do
  r=$(torchrun --no-python --standalone --nproc-per-node "$n" "$hyla" -q pretrain "$recipe" --steps "$steps" \
      --out-dir "$(mktemp -d)" 2>&1 | rate)
  echo "| $(basename "$recipe") | $n | $r | $(python3 -c "print(f'{$r/$base:.2f}x')") |"
done
