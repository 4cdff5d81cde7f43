#!/usr/bin/env bash
# test_worker_outage.sh — `aj worker` on PostgreSQL outlives a server outage: the server is
# stopped (`pg_ctl stop -m immediate`, a crash) while jobs run, stays down 25 s (AJ_OUTAGE_S),
# and starts again. The worker must still be running afterwards, log each failed attempt and its
# recovery, and complete every job exactly once: an outcome the store could not take during the
# outage is kept and recorded once the server is back (the jobs' leases, 60 s, outlast the
# outage, so none runs twice).
#
# Runs inside tests/pg/pg_harness.sh with AJ_TEST_STORE=postgres (lib.sh then uses its server).
source "${AJ_TEST_LIB:?}"
: "${AJ_TEST_PG_HARNESS:?run inside tests/pg/pg_harness.sh}"

N=30
for i in $(seq $N); do
    submit --queue out --lease 60s --max-attempts 5 -- \
        sh -c "echo start \$AJ_JOB_ID >> $T/ledger; sleep 0.3; echo end \$AJ_JOB_ID >> $T/ledger" \
        >/dev/null
done
start_worker --queue out --concurrency 4
wait_for 60 grep -q "^end " "$T/ledger"

bash "$AJ_TEST_PG_HARNESS" stop || fail "cannot stop the server"
sleep "${AJ_OUTAGE_S:-25}"
kill -0 "$WORKER_PID" 2>/dev/null || fail "the worker exited while the server was down: $(tail -5 "$T/worker.log")"
bash "$AJ_TEST_PG_HARNESS" start || fail "cannot start the server"

done_count() {
    "$AJ_BIN" --db "$DB" stats --json 2>/dev/null | jq -e ".jobs.completed == $N" >/dev/null
}
wait_for 120 done_count
kill -0 "$WORKER_PID" 2>/dev/null || fail "the worker is not running after the outage"
# A failed claim logs "store unreachable; retrying", a job outcome the store could not take
# "could not record a job outcome; keeping its lease"; which of them meets the outage first
# depends on timing. Each logs its recovery.
grep -qE 'store unreachable; retrying|could not record a job outcome; keeping its lease' \
    "$T/worker.log" || fail "the worker logged no failed attempt: $(tail -5 "$T/worker.log")"
grep -qE 'store reachable again|recorded a job outcome after store errors' "$T/worker.log" ||
    fail "the worker did not log its recovery"
stop_worker TERM

# Each job ran to completion once, and started once (leases outlast the outage).
for id in $(aj job ls --queue out --json --limit 0 | jq -r '.[].id'); do
    expect_eq 1 "$(grep -c "^end $id$" "$T/ledger")" "job $id ran to completion once"
    expect_eq 1 "$(grep -c "^start $id$" "$T/ledger")" "job $id started once"
    expect_eq 1 "$(job_field "$id" attempts)" "job $id attempts"
done
expect_eq $N "$(grep -c '^end ' "$T/ledger")" "completions in the ledger"
expect_ok aj check
echo "PASS test_worker_outage"
