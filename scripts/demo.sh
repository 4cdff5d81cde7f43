#!/usr/bin/env bash
# The main job: installs what the build needs, builds aj, and runs a demo workload through
# workers on the embedded SQLite store (aj-demo.db in the current directory), printing progress
# and a summary. Extra arguments go to `aj demo` (see `aj demo --help`).
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
echo "demo: checking the packages the build needs (scripts/setup.sh)"
"$top/scripts/setup.sh"
echo "demo: building aj in $top/build (the first build takes a minute)"
"$top/scripts/build.sh" "$top/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -- --target aj_cli
echo "demo: running aj demo"
exec "$top/build/aj" demo "$@"
