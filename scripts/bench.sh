#!/usr/bin/env bash
# Runs the benchmark (bench/bench.c) on a release build. Arguments go to aj_bench
# (--dir DIR to measure a particular disk, --jobs N, --quick).
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
echo "bench: checking the packages the build needs (scripts/setup.sh)"
"$top/scripts/setup.sh"
echo "bench: building aj_bench (Release) in $top/build-bench"
"$top/scripts/build.sh" "$top/build-bench" -DCMAKE_BUILD_TYPE=Release -- --target aj_bench
echo "bench: running aj_bench $*"
exec "$top/build-bench/bench/aj_bench" "$@"
