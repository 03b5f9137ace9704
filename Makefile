# Convenience targets around CMake. `make test` is what CI runs (see .ci/run and README.md).
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all setup configure build test demo clean sanitize

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

clean:
	rm -rf $(BUILD)
