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

.PHONY: setup configure build test test-cpp test-py demo clean fuzz

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
	$(MAKE) --no-print-directory test-cpp test-py

demo: build
	@scripts/demo.sh $(BUILD)/hyla

# libFuzzer on the safetensors header parser (clang, ASan+UBSan, no LibTorch linked).
# New inputs go to build-fuzz/corpus_safetensors; the seeds in tests/fuzz stay as they are.
FUZZ_SECONDS ?= 60
fuzz: setup
	CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DHYLA_FUZZ=ON \
	  -DCMAKE_PREFIX_PATH="$$($(PY) -c 'import torch; print(torch.utils.cmake_prefix_path)')"
	cmake --build build-fuzz -j $(JOBS) --target fuzz_safetensors
	mkdir -p build-fuzz/corpus_safetensors
	./build-fuzz/fuzz_safetensors -max_total_time=$(FUZZ_SECONDS) -dict=tests/fuzz/safetensors.dict \
	  build-fuzz/corpus_safetensors tests/fuzz/corpus_safetensors

clean:
	rm -rf $(BUILD) build-fuzz
