#!/usr/bin/env bash
# build.sh DIR [CMAKE_ARGS...] [-- BUILD_ARGS...]: configures and builds into DIR, saying what it
# does: a line when it configures, then the build's progress. On a terminal the progress is one
# line rewritten in place ("build: [ 45%] Building C object ..."); elsewhere (CI logs) a line at
# every 10%. Warnings and errors are always shown; on failure the last 40 lines of the full log
# ($DIR/build.log) are printed. Used by demo.sh, test.sh and bench.sh.
set -euo pipefail
dir=$1
shift
cfg=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do
    cfg+=("$1")
    shift
done
[ $# -gt 0 ] && shift
top="$(cd "$(dirname "$0")/.." && pwd)"
mkdir -p "$dir"
log="$dir/build.log"
echo "build: configuring $dir (cmake ${cfg[*]:-})"
if ! cmake -S "$top" -B "$dir" "${cfg[@]}" >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "build: cmake failed (full log: $log)" >&2
    exit 1
fi
echo "build: compiling with $(nproc 2>/dev/null || echo 2) jobs"
tty=0
[ -t 1 ] && tty=1
set +e
cmake --build "$dir" -j"$(nproc 2>/dev/null || echo 2)" "$@" 2>&1 | tee -a "$log" | awk -v tty="$tty" '
    /(warning|error):|Error [0-9]/ { if (tty && shown) printf "\n"; print; shown = 0; fflush(); next }
    match($0, /^\[ *[0-9]+%\]/) {
        pct = substr($0, RSTART + 1, RLENGTH - 3) + 0
        line = substr($0, 1, 100)
        if (tty) { printf "\rbuild: %-100s", line; shown = 1; fflush() }
        else if (pct >= next_pct) { print "build: " line; next_pct = int(pct / 10) * 10 + 10; fflush() }
    }
    END { if (tty && shown) printf "\n" }'
rc=${PIPESTATUS[0]}
set -e
if [ "$rc" -ne 0 ]; then
    tail -n 40 "$log" >&2
    echo "build: failed (full log: $log)" >&2
    exit "$rc"
fi
echo "build: done"
