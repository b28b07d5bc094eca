#!/usr/bin/env bash
# Run ON THE DEVICE machine (via the device tool, with carry [".carry"]): unpacks the
# carried Debian packages into a private prefix, builds hyla with CUDA against the
# image's PyTorch, and runs the tests there: the C++ unit tests, and the oracle tests of
# the model, mixers, hybrid, decoding (CUDA graphs vs eager) and CLI with hyla on the GPU.
#   scripts/device/build.sh [build|test|all]      (default: all)
set -euo pipefail
cd "$(dirname "$0")/../.."
what="${1:-all}"
prefix=/tmp/hyla-prefix
py="${PYTHON:-python3}"
if [[ ! -f $prefix/.done ]]; then
  mkdir -p $prefix
  for f in .carry/debs/*.deb; do dpkg-deb -x "$f" $prefix; done
  touch $prefix/.done
fi
inc=$prefix/usr/include
lib=$prefix/usr/lib/x86_64-linux-gnu
export CPATH="$inc${CPATH:+:$CPATH}"
export LIBRARY_PATH="$lib${LIBRARY_PATH:+:$LIBRARY_PATH}"
export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PKG_CONFIG_PATH="$lib/pkgconfig:$prefix/usr/share/pkgconfig"
# pkg-config files carry prefix=/usr; point them at the private prefix.
export PKG_CONFIG_SYSROOT_DIR=$prefix
torch_prefix="$($py -c 'import torch; print(torch.utils.cmake_prefix_path)')"
if [[ $what == build || $what == all ]]; then
  TORCH_CUDA_ARCH_LIST="9.0a" cmake -S . -B build-cuda -G Ninja -DHYLA_CUDA=ON \
    -DCMAKE_PREFIX_PATH="$torch_prefix;$prefix/usr;$lib/cmake;$prefix/usr/share/cmake" \
    -DCMAKE_BUILD_TYPE=Release ${HYLA_CMAKE_ARGS:-} >/tmp/hyla-cmake.log 2>&1 || { tail -40 /tmp/hyla-cmake.log; exit 1; }
  cmake --build build-cuda -j "$(nproc)" ${HYLA_BUILD_TARGET:+--target $HYLA_BUILD_TARGET} 2>&1 | tail -5
fi
if [[ $what == test || $what == all ]]; then
  out="${OUT:-/tmp/hyla-out}"
  mkdir -p "$out"
  # C++ unit tests as CI runs them (CPU), then the ops and mixer tests again on the GPU.
  # A failing part is reported and the next still runs; the exit status is the worst.
  status=0
  (cd build-cuda && ctest --output-on-failure -j 8 2>&1 | tail -6) || status=1
  (cd build-cuda && HYLA_TEST_DEVICE=cuda ctest --output-on-failure -j 4 -R "GatedDelta|GatedLinear|MixerKinds|GdnDecode" 2>&1 |
     tail -6) || status=1
  # The oracle tests, with the testkit and the CLI computing on the GPU
  # (HYLA_TEST_DEVICE=cuda: float32 bound 1e-4, bf16 6e-2, CUDA-graph decode vs eager).
  # fla (the mixer oracle) travels as pure-Python wheels in .carry/wheels (pack.sh).
  site=/tmp/fla-site
  if [[ ! -d $site/fla ]]; then
    $py -m pip install --quiet --no-index --no-deps --target $site .carry/wheels/*.whl 2>&1 | tail -3
  fi
  export PYTHONPATH=$site${PYTHONPATH:+:$PYTHONPATH}
  HYLA_BIN=$PWD/build-cuda/hyla HYLA_TESTKIT=$PWD/build-cuda/hyla_testkit HYLA_TEST_DEVICE=cuda \
    $py -m pytest -q -n 8 -p no:cacheprovider --junitxml="$out/pytest-cuda.xml" \
    tests/py/test_model_hf.py tests/py/test_mixers.py tests/py/test_gdn_fla.py tests/py/test_hybrid.py \
    tests/py/test_hybrid_bad_input.py tests/py/test_cli.py tests/py/test_train.py tests/py/test_export_fla.py \
    2>&1 | grep -v -i warning | tail -25 || status=1
  exit $status
fi
