#!/usr/bin/env bash
# Builds and runs every test: a normal build (all tests), an ASan+UBSan build (all but the long
# crash tests and the integration scripts re-run on PostgreSQL, which the normal build runs), and
# a TSan build (the tests labelled "threads"). Tests that need PostgreSQL start a private server.
# Installs the build dependencies first when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "test: checking the packages the build needs (scripts/setup.sh)"
./scripts/setup.sh
jobs=$(nproc 2>/dev/null || echo 2)
export CTEST_OUTPUT_ON_FAILURE=1

run_suite() { # NAME BUILD_DIR CTEST_ARGS... (cmake flags come from CMAKE_FLAGS)
    local name=$1 dir=$2
    shift 2
    echo "=== $name ==="
    # shellcheck disable=SC2086 # CMAKE_FLAGS holds several words on purpose
    ./scripts/build.sh "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo $CMAKE_FLAGS
    echo "test: running $name ($dir)"
    ctest --test-dir "$dir" -j"$jobs" "$@"
}

CMAKE_FLAGS="" run_suite "tests" build
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    CMAKE_FLAGS="-DAJ_SANITIZE=address,undefined" run_suite "tests under ASan+UBSan" build-asan -LE crash -E '^pg_integration_'
TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
    CMAKE_FLAGS="-DAJ_SANITIZE=thread" run_suite "threaded tests under TSan" build-tsan -L threads -LE crash -E '^pg_integration_'
echo "all test suites passed"
