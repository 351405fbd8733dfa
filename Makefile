# Quick start: `make demo` runs a method comparison on Fashion-MNIST; `make test` runs the tests.
BUILD ?= build
JOBS ?= 2
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=Release

.PHONY: setup build demo test test-all bench clean

setup:
	@scripts/setup

$(BUILD)/CMakeCache.txt: | setup
	cmake -S . -B $(BUILD) -G Ninja $(CMAKE_FLAGS)

build: setup $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

demo: build
	$(BUILD)/credence compare --data "fmnist:train?n=10000" --test fmnist:test \
	  --model mlp:256,256 --methods "map,laplace,ensemble:members=3" \
	  --json $(BUILD)/demo.json --force

# Unit and integration tests (the CI set); `make test-all` adds the slow label.
test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) -LE slow

test-all: build
	cd $(BUILD) && ctest --output-on-failure -j 1

bench: build
	$(BUILD)/bench/map_throughput

clean:
	rm -rf $(BUILD)
