#!/usr/bin/env bash
# test_unreadable_list.sh — `aj job ls` over a store holding a job record it cannot decode (a
# newer format, issue 10 item 1): the listing stops with exit 1, and its error names the job, as
# `aj job show` and `aj job ls --state` do, so that the operator can find the record. The
# record itself is left as it is.
source "${AJ_TEST_LIB:?}"
command -v sqlite3 >/dev/null || { echo "sqlite3 CLI not installed: skipped"; exit 77; }
on_sqlite || { echo "SKIP: SQLite stores only"; exit 0; }
F="$T/aj.db"

good=$(submit -- true)
newer=$(submit -- true)
key=$(printf "X'4A%016X'" "$newer")
sqlite3 -cmd '.timeout 10000' "$F" "UPDATE kv SET v = X'09' || substr(v, 2) WHERE k = $key" ||
    fail "sqlite3 update"
before=$(sqlite3 "$F" "SELECT hex(v) FROM kv WHERE k = $key")

for args in "" "--state ready"; do
    # shellcheck disable=SC2086 # the flags are words
    run aj job ls $args
    expect_eq 1 "$RC" "job ls $args: exit"
    expect_contains "$ERR" "job $newer: job record format 9 is newer" "job ls $args: the error"
done
expect_eq "$before" "$(sqlite3 "$F" "SELECT hex(v) FROM kv WHERE k = $key")" "the record"
expect_ok aj job show "$good"
echo "unreadable records in listings ok"
