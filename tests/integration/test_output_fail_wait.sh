#!/usr/bin/env bash
# test_output_fail_wait.sh — `aj submit --wait` whose stdout is closed or full (issue 10, item 4):
# it flushes the id before waiting, and that flush is where the write fails. The exit is still
# 5 (submitted, output failed) and stderr names the job and the real cause of the failure, not
# "Success" (an errno lost before the report).
source "${AJ_TEST_LIB:?}"

start_worker
for target in closed full; do
    if [ "$target" = closed ]; then
        aj submit --wait --type echo --payload 1 >&- 2>"$T/err"
    else
        aj submit --wait --type echo --payload 1 >/dev/full 2>"$T/err"
    fi
    RC=$?
    ERR=$(cat "$T/err")
    expect_eq 5 "$RC" "submit --wait with stdout $target: exit"
    expect_match '^aj: submitted job [1-9][0-9]*, but writing the output failed: ' "$ERR" \
        "submit --wait with stdout $target: the report"
    case "$ERR" in
    *": Success") fail "submit --wait with stdout $target: the report names no cause" ;;
    esac
done
expect_contains "$ERR" "No space left on device" "the cause with a full stdout"
stop_worker
echo "submit --wait output failures ok"
