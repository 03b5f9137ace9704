# Convenience targets around CMake. `make test` is what CI runs (see .ci/run and README.md).
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all setup configure build test demo clean sanitize fuzz fuzz-build fuzz-merge format format-check lint \
	coverage

all: build

setup:
	scripts/setup.sh

configure:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) >/dev/null

build: configure
	cmake --build $(BUILD) -j $(JOBS)

# Set up (idempotent), build, and run every test with CTest's summary at the end.
test: setup build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# Set up, build, create the demo model once, and run the main job on the demo image.
demo: setup build
	scripts/demo.sh $(BUILD)

sanitize:
	$(MAKE) test BUILD=build-asan CMAKE_FLAGS="-DVLM_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug"

# clang-tidy over src/ and cli/ with the checks of .clang-tidy (each one justified there); must be clean.
lint: configure
	scripts/lint.sh $(BUILD) $(JOBS)

# Line coverage of make test (gcc --coverage + gcovr): build-cov/coverage.txt, build-cov/coverage/index.html.
coverage:
	$(MAKE) test BUILD=build-cov CMAKE_FLAGS="-DVLM_COVERAGE=ON -DVLM_CUDA=OFF -DCMAKE_BUILD_TYPE=Debug"
	scripts/coverage.sh build-cov

# Coverage-guided fuzzing (clang + libFuzzer, ASan + UBSan with float-cast-overflow): every
# tests/fuzz/fuzz_*.c for FUZZ_SECONDS each, one after another; fails on any finding
# (scripts/fuzz.sh). fuzz-merge adds what the runs found that reaches new coverage to the committed
# corpus (tests/fuzz/corpus/), minimised.
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?=

fuzz-build:
	cmake -S . -B $(FUZZ_BUILD) -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Fuzz -DVLM_FUZZ=ON -DVLM_CUDA=OFF >/dev/null
	cmake --build $(FUZZ_BUILD) --target fuzz_targets -j $(JOBS)

fuzz: fuzz-build
	scripts/fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

fuzz-merge: fuzz-build
	scripts/fuzz.sh --merge $(FUZZ_BUILD) $(FUZZ_TARGETS)

# Source files clang-format owns (.clang-format): everything but the fixtures.
FORMAT_FILES = $(shell git ls-files '*.c' '*.h' '*.cu' '*.inc' | grep -v '^tests/fixtures/')

format:
	clang-format -i $(FORMAT_FILES)

# Fails (and lists the files) when any file differs from clang-format's output.
format-check:
	@bad=$$(for f in $(FORMAT_FILES); do clang-format --dry-run -Werror "$$f" >/dev/null 2>&1 || echo "$$f"; done); \
	if [ -n "$$bad" ]; then echo "not clang-formatted (run make format):"; echo "$$bad"; exit 1; fi

clean:
	rm -rf $(BUILD)
