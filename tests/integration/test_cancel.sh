#!/usr/bin/env bash
# test_cancel.sh — `aj job cancel`: scheduled and ready jobs never run; a running shell job is
# stopped (its process killed); a finished job cannot be cancelled (exit 4).
source "${AJ_TEST_LIB:?}"

sched=$(submit --type echo --delay 1h)
expect_ok aj job cancel "$sched"
expect_eq "" "$OUT" "cancel prints nothing"
expect_eq cancelled "$(job_field "$sched" state)" "a cancelled scheduled job"
[ "$(job_field "$sched" finished_at)" != null ] || fail "finished_at of a cancelled job"
expect_error 4 "already cancelled" aj job cancel "$sched"

ready=$(submit --queue c -- sh -c "touch '$T/ran'")
expect_ok aj job cancel "$ready" --json
expect_eq "{\"id\":$ready,\"state\":\"cancelled\"}" "$OUT" "cancel --json"
drain --queue c
[ -e "$T/ran" ] && fail "a cancelled job ran"
expect_eq cancelled "$(job_field "$ready" state)" "a cancelled ready job after a drain"
expect_eq 0 "$(job_field "$ready" attempts)" "a cancelled job's attempts"

done_id=$(submit --queue c --type echo)
drain --queue c
expect_eq completed "$(job_field "$done_id" state)" "setup: a completed job"
expect_error 4 "already completed" aj job cancel "$done_id"
dead=$(submit --queue c -- sh -c 'exit 100')
drain --queue c
expect_error 4 "already dead" aj job cancel "$dead"

expect_error 3 "job 123456789 not found" aj job cancel 123456789
expect_error 2 "not a positive decimal integer" aj job cancel x1

# A running job: its lease is revoked and its process group killed.
running=$(submit --queue slow --lease 2s -- sh -c 'sleep 27.1828; echo late')
start_worker --queue slow --concurrency 1
wait_for 20 state_is "$running" running
sleeping() { pgrep -f "sleep 27.1828" >/dev/null; }
wait_for 10 sleeping
expect_ok aj job cancel "$running"
expect_eq cancelled "$(job_field "$running" state)" "a cancelled running job"
not_sleeping() { ! sleeping; }
wait_for 20 not_sleeping
stop_worker TERM
expect_eq cancelled "$(job_field "$running" state)" "the worker's completion is refused"
expect_eq null "$(job_field "$running" result)" "a cancelled job has no result"

echo "PASS test_cancel"
