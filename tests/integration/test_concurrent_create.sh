#!/usr/bin/env bash
# test_concurrent_create.sh — processes that open a store that does not exist yet, all at once
# (`aj worker & aj submit ...` in a fresh directory). One creates it; the others must wait for
# it, not fail: switching a new file to WAL mode needs an exclusive lock, and SQLite reports a
# competitor's lock at once (SQLITE_BUSY, no busy handler) when waiting could deadlock. Before
# the fix about one opener in a hundred exited 1 with "switching to WAL mode: database is locked".
source "${AJ_TEST_LIB:?}"
on_sqlite || { echo "SKIP: SQLite stores only"; exit 0; }

for round in $(seq 150); do
    dir=$T/r$round
    mkdir "$dir"
    pids=()
    for i in 1 2 3 4 5 6 7 8; do
        "$AJ_BIN" --db "sqlite:$dir/aj.db" stats --json >"$dir/out.$i" 2>"$dir/err.$i" &
        pids+=($!)
    done
    for i in "${!pids[@]}"; do
        wait "${pids[$i]}" || {
            ERR=$(cat "$dir/err.$((i + 1))")
            fail "round $round: opener $((i + 1)) of a new store failed"
        }
    done
done
echo "concurrent creation ok"
