#!/usr/bin/env bash
# ON THE DEVICE (device tool, carry [".carry"]): builds hyla with CUDA, runs
# recipes/distill-teacher-small.toml (align → KL → long context; bf16 autocast) for at most
# DISTILL_SECONDS, then evaluates the teacher and the student (perplexity, KL, MQAR, passkey,
# NIAH at 1x and 2x the teacher's 1024-token training length (MQAR needs --mqar-vocab above the length). Results under $OUT:
# distill_log.txt, metrics.jsonl, eval_teacher.json, eval_student.json.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-/tmp/hyla-out}"
mkdir -p "$OUT"
exec > >(tee -a "$OUT/distill_log.txt") 2>&1
t0=$SECONDS
HYLA_BUILD_TARGET=hyla scripts/device/build.sh build || exit 1
echo "[ds] build: $((SECONDS - t0)) s"
export LD_LIBRARY_PATH=/tmp/hyla-prefix/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
hyla=build-cuda/hyla
timeout "${DISTILL_SECONDS:-300}" $hyla distill recipes/distill-teacher-small.toml 2>&1 | tr "\r" "\n" | grep -v "^\s*$" | tail -40
echo "[ds] distill: $((SECONDS - t0)) s"
run=runs/distill-teacher-small
find $run -name "metrics*.jsonl" | head -3 | while read -r f; do cp "$f" "$OUT/$(basename "$(dirname "$f")")_$(basename "$f")"; done
student=$run/final
[[ -f $student/config.json ]] || student=$(ls -d $run/*/ | grep -v checkpoints | tail -1)
echo "[ds] student: $student"
ev=(--text assets/teacher-small/validation.txt --lengths 1024 2048 --mqar-samples 64 --passkey-samples 40 --niah-samples 20)
$hyla eval all assets/teacher-small "${ev[@]}" -o "$OUT/eval_teacher.json" 2>&1 | tail -2
$hyla eval all "$student" --teacher assets/teacher-small "${ev[@]}" -o "$OUT/eval_student.json" 2>&1 | tail -2
echo "[ds] total: $((SECONDS - t0)) s"
