#!/usr/bin/env bash
# Overhead of the data-parallel machinery at world size 1: the same recipe trained by
# `hyla pretrain` alone (no process group) and under `torchrun --nproc-per-node 1`
# (c10d process group, NCCL on GPU / Gloo on CPU, gradient buckets with hooks, bucket
# all-reduce, loss all-reduce, periodic checksum). Prints tokens/s of both and the
# overhead; the target on one GPU is <= 3%.
#
#   bench/dist_overhead.sh HYLA_BIN RECIPE.toml [STEPS] [REPEATS] [extra pretrain args...]
#
# Each run starts fresh (its own out dir). Runs alternate (plain, torchrun, plain, ...)
# REPEATS times so drift in clocks or other load hits both; the best of each is kept.
# NCCL_NVLS_ENABLE=0: NVLink multicast stays off (hyla sets it too when unset).
set -euo pipefail
hyla="${1:?usage: $0 HYLA_BIN RECIPE.toml [STEPS] [REPEATS] [extra args...]}"
recipe="${2:?recipe}"
steps="${3:-200}"
repeats="${4:-2}"
shift $(( $# < 4 ? $# : 4 ))
extra=("$@")
export NCCL_NVLS_ENABLE="${NCCL_NVLS_ENABLE:-0}"
if [[ -n ${TORCHRUN:-} ]]; then
  launcher=("$TORCHRUN")
elif command -v torchrun >/dev/null; then
  launcher=(torchrun)
else
  launcher=("${PYTHON:-python3}" -m torch.distributed.run)
fi
work="$(mktemp -d /tmp/hyla-dist-bench.XXXXXX)"
trap 'rm -rf "$work"' EXIT

# tokens/s from the "done: ..." line; the run's own rate, from the start of its loop.
rate() { sed -n 's/^done: .* \([0-9][0-9]*\) tokens\/s.*/\1/p' | tail -1; }

run_plain() {
  "$hyla" pretrain "$recipe" --steps "$steps" --out-dir "$work/plain-$1" --set run.save_every=0 \
    --set run.eval_every=0 "${extra[@]}" 2>"$work/plain-$1.log" | rate
}
run_dist() {
  "${launcher[@]}" --standalone --nnodes 1 --nproc-per-node 1 --no-python \
    "$hyla" pretrain "$recipe" --steps "$steps" --out-dir "$work/dist-$1" --set run.save_every=0 \
    --set run.eval_every=0 "${extra[@]}" 2>"$work/dist-$1.log" | rate
}

best_plain=0 best_dist=0
for i in $(seq 1 "$repeats"); do
  p=$(run_plain "$i") || { tail -20 "$work/plain-$i.log"; exit 1; }
  d=$(run_dist "$i") || { tail -20 "$work/dist-$i.log"; exit 1; }
  [[ -n $p && -n $d ]] || { echo "no tokens/s line; logs:"; tail -5 "$work"/*.log; exit 1; }
  grep -q "data parallel: 1 ranks" "$work/dist-$i.log" || { echo "torchrun run did not use c10d"; exit 1; }
  echo "run $i: plain $p tokens/s, torchrun world size 1 $d tokens/s"
  (( p > best_plain )) && best_plain=$p
  (( d > best_dist )) && best_dist=$d
done
backend=$(sed -n 's/.*data parallel: 1 ranks (\([a-z]*\)).*/\1/p' "$work/dist-1.log" | head -1)
echo "plain:                 $best_plain tokens/s"
echo "torchrun, world 1 ($backend): $best_dist tokens/s"
awk -v p="$best_plain" -v d="$best_dist" 'BEGIN { printf "overhead: %.2f%%\n", 100 * (p - d) / p }'
