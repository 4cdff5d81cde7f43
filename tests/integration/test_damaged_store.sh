#!/usr/bin/env bash
# test_damaged_store.sh — a store file damaged behind SQLite's back: `aj check` names the storage
# error and exits 1 instead of printing "checked 0 records: 0 problems"; `aj stats` and
# `aj worker --drain` exit 1 naming it instead of printing counts or idling. Issue 10, items 6/7.
source "${AJ_TEST_LIB:?}"
F="$T/aj.db"

seq 800 | sed 's/.*/{"argv":["true"]}/' >"$T/p.txt"
expect_ok aj submit --type shell --payload-lines "$T/p.txt"
expect_ok aj check
# Fold the WAL into the main file (aj leaves it at exit), so the damage below hits the records.
python3 -c 'import sqlite3,sys; sqlite3.connect(sys.argv[1]).execute("PRAGMA wal_checkpoint(TRUNCATE)")' "$F" ||
    fail "cannot checkpoint the store"
# Overwrite 200 bytes in every fourth page from the fourth on (the schema page stays intact).
perl -e 'open my $f, "+<", $ARGV[0] or die; my $size = -s $f;
    for (my $off = 4096 * 3; $off < $size; $off += 4096 * 4) {
        seek $f, $off + 100, 0; print $f "\xff" x 200 }' "$F" || fail "cannot damage the file"

expect_exit 1 aj check
expect_contains "$ERR" "malformed" "check names the storage error"
[[ $OUT != *"checked"* ]] || fail "check printed a summary of a store it could not read: $OUT"
expect_exit 1 aj check --json
expect_contains "$ERR" "malformed" "check --json names the storage error"
expect_exit 1 aj stats
expect_contains "$ERR" "malformed" "stats names the storage error"
run timeout 60 "$AJ_BIN" --db "$DB" worker --drain
[ "$RC" = 1 ] || fail "worker --drain on a damaged store exited $RC (124: it hung)"
expect_contains "$ERR" "malformed" "the worker names the storage error"
echo ok
