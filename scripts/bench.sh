#!/usr/bin/env bash
# Runs the benchmark (bench/bench.c) on a release build. Arguments go to aj_bench
# (--dir DIR to measure a particular disk, --jobs N, --quick).
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
"$top/scripts/setup.sh"
cmake -S "$top" -B "$top/build-bench" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$top/build-bench" -j"$(nproc 2>/dev/null || echo 2)" --target aj_bench >/dev/null
exec "$top/build-bench/bench/aj_bench" "$@"
