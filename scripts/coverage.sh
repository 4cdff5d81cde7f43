#!/usr/bin/env bash
# coverage.sh [BUILD_DIR]: builds with gcov instrumentation (-DAJ_COVERAGE=ON, -O0) into
# BUILD_DIR (default build-cov), runs the tests, and writes an HTML report of line and branch
# coverage of src/ to BUILD_DIR/coverage/index.html (one page per file, branches marked), a JSON
# summary beside it, and prints the branch coverage of src/store, src/core and src/runtime.
# CTEST_ARGS selects tests (default: every test; e.g. CTEST_ARGS="-LE crash" for a quicker run).
# Installs gcovr first when it is missing (scripts/setup.sh with AJ_SETUP_COVERAGE=1).
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
cd "$top"
dir=${1:-build-cov}
echo "coverage: checking the packages (scripts/setup.sh, AJ_SETUP_COVERAGE=1)"
AJ_SETUP_COVERAGE=1 ./scripts/setup.sh
./scripts/build.sh "$dir" -DCMAKE_BUILD_TYPE=Debug -DAJ_COVERAGE=ON
# Counts from an earlier run would be added to this one's.
find "$dir" -name '*.gcda' -delete
echo "coverage: running the tests (ctest ${CTEST_ARGS:-})"
# shellcheck disable=SC2086 # CTEST_ARGS holds several words on purpose
if ! ctest --test-dir "$dir" -j"$(nproc 2>/dev/null || echo 2)" ${CTEST_ARGS:-} >"$dir/coverage-ctest.log" 2>&1; then
    # A failing test still leaves counts; the report is written, and the failure is said.
    echo "coverage: some tests failed (see $dir/coverage-ctest.log):" >&2
    grep -E '^\s+[0-9]+ - ' "$dir/coverage-ctest.log" >&2 || true
fi
out="$dir/coverage"
rm -rf "$out"
mkdir -p "$out"
echo "coverage: writing the report (gcovr)"
gcovr --root "$top" --object-directory "$dir" --filter "$top/src/" -j "$(nproc 2>/dev/null || echo 2)" \
    --html-details "$out/index.html" --html-title "Aspen Jobs coverage" \
    --json-summary "$out/summary.json" --json-summary-pretty --print-summary
python3 - "$out/summary.json" <<'EOF'
import json, sys
files = json.load(open(sys.argv[1]))["files"]
print("coverage: branch coverage by layer (branches taken / branches)")
for layer in ("src/store", "src/core", "src/runtime"):
    fs = [f for f in files if f["filename"].startswith(layer + "/")]
    total = sum(f["branch_total"] for f in fs)
    taken = sum(f["branch_covered"] for f in fs)
    lines = sum(f["line_total"] for f in fs)
    lcov = sum(f["line_covered"] for f in fs)
    pct = 100.0 * taken / total if total else 0.0
    lpct = 100.0 * lcov / lines if lines else 0.0
    print(f"  {layer:12s} branches {pct:5.1f}% ({taken}/{total})   lines {lpct:5.1f}% ({lcov}/{lines})")
EOF
echo "coverage: report in $out/index.html"
