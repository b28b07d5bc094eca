#!/usr/bin/env bash
# Run HERE (the CPU dev machine): gathers what the device machine lacks into the
# git-ignored folder .carry/ (named in the device tool's `carry`):
#   .carry/debs/*.deb      header/library packages from Debian (the device has no registry)
#   .carry/data/           token shards or corpora a device run needs (optional, by caller)
#   .carry/wheels/*.whl    fla's pure-Python wheels for run_all.sh's `fla` step (the device
#                          has torch and transformers, but no fla and maybe no einops)
#   .carry/fla_check/      `hyla export --format fla` checkpoints and hyla's logits for that
#                          step (check_fla_export.py --prepare; needs $BUILD/hyla, ~10 MB)
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .carry/debs
pkgs=(nlohmann-json3-dev libcli11-dev libpcre2-dev libpcre2-8-0 libpcre2-16-0 libpcre2-32-0 libpcre2-posix3
      libtomlplusplus-dev libtomlplusplus3 libgtest-dev libgloo-dev libgloo0 libicu-dev libicu72)
cd .carry/debs
for p in "${pkgs[@]}"; do
  ls "${p}"_*.deb >/dev/null 2>&1 || apt-get download "$p" >/dev/null 2>&1 || echo "warn: could not download $p"
done
cd ../..
# fla pinned as in requirements-test.txt; einops is fla-core's one dependency the device may lack.
mkdir -p .carry/wheels
py="${PYTHON:-$HOME/.cache/hyla/venv/bin/python}"
wheels=($(grep -E '^(flash-linear-attention|fla-core)==' requirements-test.txt) einops==0.8.2)
for w in "${wheels[@]}"; do
  file="$(echo "${w%%==*}" | tr - _)-${w##*==}-"
  ls .carry/wheels/"$file"*.whl >/dev/null 2>&1 ||
    "$py" -m pip download --quiet --no-deps -d .carry/wheels "$w" || echo "warn: could not download $w"
done
build="${BUILD:-build}"
if [[ -x $build/hyla && -x $build/hyla_testkit ]]; then
  rm -rf .carry/fla_check
  if "$py" scripts/device/check_fla_export.py --prepare .carry/fla_check --hyla "$build/hyla" \
      --testkit "$build/hyla_testkit" >/tmp/hyla-fla-prepare.log 2>&1; then
    grep '^wrote' /tmp/hyla-fla-prepare.log
  else
    rm -rf .carry/fla_check
    echo "warn: could not prepare .carry/fla_check (see /tmp/hyla-fla-prepare.log)"
  fi
else
  echo "warn: $build/hyla not built; run_all.sh's fla step will need its build step"
fi
du -sh .carry | sed 's/^/carry size: /'
