# The two commands a user needs: `make demo` and `make test`. Both install what is
# missing (scripts/setup.sh, cached under ~/.cache/hyla), then build.
SHELL := /bin/bash
CACHE ?= $(HOME)/.cache/hyla
VENV  := $(CACHE)/venv
PY    := $(VENV)/bin/python
BUILD ?= build
JOBS  ?= $(shell nproc)
export CCACHE_DIR ?= $(CACHE)/ccache
export CCACHE_MAXSIZE ?= 5G

.PHONY: setup configure build test test-cpp test-py test-fuzz demo clean fuzz fuzz-build

setup:
	@scripts/setup.sh

$(BUILD)/build.ninja: CMakeLists.txt | setup
	TORCH_CUDA_ARCH_LIST="9.0a" cmake -S . -B $(BUILD) -G Ninja \
	  -DCMAKE_PREFIX_PATH="$$($(PY) -c 'import torch; print(torch.utils.cmake_prefix_path)')" \
	  -DPython3_EXECUTABLE=$(PY) $(CMAKE_ARGS)

configure: $(BUILD)/build.ninja

build: setup configure
	cmake --build $(BUILD) -j $(JOBS)

test-cpp: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-py: build
	HYLA_BIN=$(CURDIR)/$(BUILD)/hyla HYLA_TESTKIT=$(CURDIR)/$(BUILD)/hyla_testkit \
	  $(PY) -m pytest -q tests/py

test: build
	$(MAKE) --no-print-directory test-cpp test-py test-fuzz

demo: build
	@scripts/demo.sh $(BUILD)/hyla

# libFuzzer on the safetensors header parser (clang, ASan+UBSan, no LibTorch linked).
# `make fuzz`: a long run (FUZZ_SECONDS); new inputs go to build-fuzz/corpus_safetensors,
# the seeds in tests/fuzz stay as they are. `make test` runs test-fuzz: the seeds and the
# kept corpus replayed, then a short bounded run (FUZZ_TEST_SECONDS); libFuzzer's last
# line ("Done N runs in S second(s)") is the executions count of that run.
FUZZ_SECONDS ?= 60
FUZZ_TEST_SECONDS ?= 30
FUZZ_ARGS = -dict=tests/fuzz/safetensors.dict -rss_limit_mb=2048 -print_final_stats=0
build-fuzz/build.ninja: CMakeLists.txt | setup
	CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DHYLA_FUZZ=ON \
	  -DCMAKE_PREFIX_PATH="$$($(PY) -c 'import torch; print(torch.utils.cmake_prefix_path)')" >/dev/null 2>&1

fuzz-build: build-fuzz/build.ninja
	set -o pipefail; cmake --build build-fuzz -j $(JOBS) --target fuzz_safetensors | { grep -v "no work to do" || true; }
	mkdir -p build-fuzz/corpus_safetensors

fuzz: fuzz-build
	./build-fuzz/fuzz_safetensors -max_total_time=$(FUZZ_SECONDS) $(FUZZ_ARGS) \
	  build-fuzz/corpus_safetensors tests/fuzz/corpus_safetensors

test-fuzz: fuzz-build
	@echo "[fuzz] replay of the seed and kept corpus, then $(FUZZ_TEST_SECONDS) s of fuzzing"
	@./build-fuzz/fuzz_safetensors -runs=0 $(FUZZ_ARGS) tests/fuzz/corpus_safetensors build-fuzz/corpus_safetensors \
	  2>&1 | grep -E "INITED|Done|ERROR|SUMMARY" ; test $${PIPESTATUS[0]} -eq 0
	@./build-fuzz/fuzz_safetensors -max_total_time=$(FUZZ_TEST_SECONDS) $(FUZZ_ARGS) \
	  build-fuzz/corpus_safetensors tests/fuzz/corpus_safetensors 2>&1 | grep -E "Done|ERROR|SUMMARY|crash-" ; \
	  test $${PIPESTATUS[0]} -eq 0

clean:
	rm -rf $(BUILD) build-fuzz
