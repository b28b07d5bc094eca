#!/usr/bin/env bash
# Run ON THE DEVICE machine (via the device tool, with carry [".carry"]): unpacks the
# carried Debian packages into a private prefix, builds hyla with CUDA against the
# image's PyTorch, and runs the test suite there (C++ tests on CUDA + oracle tests).
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
if [[ $what == build || $what == all || $what == test ]]; then
  TORCH_CUDA_ARCH_LIST="9.0a" cmake -S . -B build-cuda -G Ninja -DHYLA_CUDA=ON \
    -DCMAKE_PREFIX_PATH="$torch_prefix;$prefix/usr;$lib/cmake;$prefix/usr/share/cmake" \
    -DCMAKE_BUILD_TYPE=Release ${HYLA_CMAKE_ARGS:-} >/tmp/hyla-cmake.log 2>&1 || { tail -40 /tmp/hyla-cmake.log; exit 1; }
  cmake --build build-cuda -j "$(nproc)" ${HYLA_BUILD_TARGET:+--target $HYLA_BUILD_TARGET} 2>&1 | tail -5
fi
if [[ $what == test || $what == all ]]; then
  (cd build-cuda && HYLA_TEST_DEVICE=cuda ctest --output-on-failure -j 8 2>&1 | tail -15)
  HYLA_BIN=$PWD/build-cuda/hyla HYLA_TESTKIT=$PWD/build-cuda/hyla_testkit HYLA_TEST_DEVICE=cuda \
    $py -m pytest -q -x tests/py 2>&1 | tail -15
fi
