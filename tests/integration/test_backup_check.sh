#!/usr/bin/env bash
# test_backup_check.sh — `aj backup` writes a consistent copy that is itself a store (also while
# a worker runs) and never overwrites; `aj check` verifies records against indexes.
source "${AJ_TEST_LIB:?}"

done_id=$(submit --type echo --payload '{"keep":"me"}')
dead=$(submit -- sh -c 'exit 100')
drain
sched=$(submit --type echo --delay 1h --idempotency-key k)
ready=$(submit --queue idle --type echo --payload '[1,2,3]')

expect_ok aj check
expect_match '^checked [1-9][0-9]* records: consistent$' "$OUT" "check output"
expect_ok aj check --json
expect_eq true "$(jget consistent)" "check --json consistent"
expect_eq '[]' "$(jget problems)" "check --json problems"
[ "$(jget records)" -ge 4 ] || fail "check counted $(jget records) records for 4 jobs"

if ! on_sqlite; then
    # A PostgreSQL store has no `aj backup` yet (issue 12: pg_dump, or `aj copy` to a file): it is
    # refused as bad input and writes nothing; check still holds after a worker ran.
    expect_error 2 "does not support backups" aj backup "$T/b1.db"
    [ ! -e "$T/b1.db" ] || fail "a refused backup left a file behind"
    for i in $(seq 200); do echo "$i"; done >"$T/lines"
    aj submit --queue busy --type echo --payload-lines "$T/lines" >/dev/null || fail "submit lines"
    drain --queue busy --concurrency 2
    expect_ok aj stats --json
    expect_eq 201 "$(jget jobs.completed)" "completed jobs after the worker"
    expect_ok aj check
    expect_match '^checked [1-9][0-9]* records: consistent$' "$OUT" "check after the worker"
    echo "PASS test_backup_check (postgres)"
    exit 0
fi
expect_ok aj backup "$T/b1.db"
expect_eq "" "$OUT" "backup prints nothing"
[ -s "$T/b1.db" ] || fail "the backup file is missing or empty"
B=(--db "sqlite:$T/b1.db")
expect_eq "$(state_counts)" "$(jget jobs "$("$AJ_BIN" "${B[@]}" stats --json)")" "the backup's counts"
expect_ok "$AJ_BIN" "${B[@]}" job show "$ready" --json
expect_eq '[1,2,3]' "$(jget payload)" "a job read from the backup"
expect_ok "$AJ_BIN" "${B[@]}" job show "$done_id" --json
expect_eq '{"keep":"me"}' "$(jget result)" "a result read from the backup"
expect_ok "$AJ_BIN" "${B[@]}" check
expect_ok "$AJ_BIN" "${B[@]}" dlq ls --json
expect_eq "$dead" "$(jget 0.id)" "the dead-letter queue of the backup"

# Never overwrite; a missing directory is a store error.
sum=$(cksum <"$T/b1.db")
expect_error 2 "already exists" aj backup "$T/b1.db"
expect_eq "$sum" "$(cksum <"$T/b1.db")" "an existing backup is untouched"
expect_error 1 "" aj backup "$T/missing/b.db"
expect_exit 2 aj backup
expect_ok aj backup --json "$T/b2.db"
expect_eq "$T/b2.db" "$(jget path)" "backup --json"

# Online: a backup while a worker runs jobs is consistent.
for i in $(seq 200); do echo "$i"; done >"$T/lines"
aj submit --queue busy --type echo --payload-lines "$T/lines" >/dev/null || fail "submit lines"
start_worker --queue busy --concurrency 2
expect_ok aj backup "$T/b3.db"
stop_worker TERM
expect_ok "$AJ_BIN" --db "sqlite:$T/b3.db" check
expect_ok "$AJ_BIN" --db "sqlite:$T/b3.db" stats --json
sum=$(perl -MJSON::PP -e 'my $j = decode_json($ARGV[0])->{jobs}; my $s = 0; $s += $_ for values %$j; print $s' "$OUT")
expect_eq 204 "$sum" "every job is in the online backup"
expect_ok aj check

echo "PASS test_backup_check"
