# A thin wrapper over CMake. The real build is CMakeLists.txt; the scripts install dependencies.
BUILD ?= build
PREFIX ?= /usr/local

.PHONY: all test demo install bench fuzz coverage format clean

all:
	./scripts/setup.sh
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=$(PREFIX)
	cmake --build $(BUILD) -j

test:
	./scripts/test.sh

demo:
	./scripts/demo.sh

install: all
	cmake --install $(BUILD)

bench: all
	./scripts/bench.sh

fuzz:
	CC=clang cmake -S . -B build-fuzz -DAJ_LIBFUZZER=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build build-fuzz -j

# gcov-instrumented build in build-cov, the tests, an HTML report in build-cov/coverage/.
coverage:
	./scripts/coverage.sh build-cov

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-asan build-tsan build-fuzz build-cov
