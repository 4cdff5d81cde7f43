#!/usr/bin/env bash
# The main job: installs what the build needs, builds aj, and runs a demo workload through
# workers on the embedded SQLite store (aj-demo.db in the current directory), printing progress
# and a summary. Extra arguments go to `aj demo` (see `aj demo --help`).
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
"$top/scripts/setup.sh"
cmake -S "$top" -B "$top/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$top/build" -j"$(nproc 2>/dev/null || echo 2)" --target aj_cli >/dev/null
exec "$top/build/aj" demo "$@"
