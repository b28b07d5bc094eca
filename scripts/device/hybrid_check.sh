#!/usr/bin/env bash
# On the device, after build.sh: a hybrid of teacher-small (1 attention layer in 4, GDN
# elsewhere) decodes the same greedy text with CUDA graphs (static cache, in-place
# recurrent state) as with the eager growing cache, in float32, and the same with the fused
# GDN decode kernel as with the LibTorch reference step; then the decode benchmark.
set -uo pipefail
cd "$(dirname "$0")/../.."
export LD_LIBRARY_PATH=/tmp/hyla-prefix/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
hyla=build-cuda/hyla
$hyla hybrid assets/teacher-small --out /tmp/hyb --mixer gdn --attention-every 4 >/dev/null
$hyla hybrid assets/teacher-small --out /tmp/hyb-mixed --layer-types full_attention,gdn,dsla,hypenet,full_attention,gdn,dsla,hypenet >/dev/null
ok=1
for m in /tmp/hyb /tmp/hyb-mixed; do
  for b in 1 4; do
    g=$($hyla generate $m -p "The history of the" -n 64 --dtype float32 --no-stream --ignore-eos --batch $b)
    e=$($hyla generate $m -p "The history of the" -n 64 --dtype float32 --no-stream --ignore-eos --batch $b --eager)
    if [[ "$g" == "$e" ]]; then echo "graph == eager: $m batch $b"; else ok=0; echo "MISMATCH $m batch $b"; echo "graph: $g"; echo "eager: $e"; fi
  done
done
# The fused GDN decode kernel (kernels/gdn_decode.cu) against the LibTorch reference
# step (HYLA_GDN_DECODE=reference): same greedy text, float32, CUDA graphs and eager.
for b in 1 4; do
  for mode in "" --eager; do
    f=$($hyla generate /tmp/hyb -p "The history of the" -n 64 --dtype float32 --no-stream --ignore-eos --batch $b $mode)
    r=$(HYLA_GDN_DECODE=reference $hyla generate /tmp/hyb -p "The history of the" -n 64 --dtype float32 --no-stream --ignore-eos --batch $b $mode)
    if [[ "$f" == "$r" ]]; then echo "fused kernel == reference: batch $b ${mode:-graph}"; else ok=0; echo "MISMATCH fused vs reference batch $b ${mode:-graph}"; echo "fused: $f"; echo "reference: $r"; fi
  done
done
$hyla generate /tmp/hyb -p "The history of the" -n 64 --ignore-eos --stats 2>&1 | tail -1
[[ $ok == 1 ]] && echo "hybrid CUDA-graph decode: all equal"
python3 bench/hybrid_decode.py --hyla $hyla --reference --out "${OUT:-/tmp}/hybrid_decode.json" 2>&1 | grep -v Warning
