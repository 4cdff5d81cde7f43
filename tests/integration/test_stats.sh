#!/usr/bin/env bash
# test_stats.sh — `aj stats` counts every job state exactly, in the whole store, beside the
# engine counters.
source "${AJ_TEST_LIB:?}"

expect_ok aj stats --json
expect_eq '{"cancelled":0,"completed":0,"dead":0,"ready":0,"running":0,"scheduled":0}' \
    "$(jget jobs)" "stats of an empty store"
for k in submitted claimed completed failed retried dead_lettered lease_expired cancelled \
    redriven conflicts retries commits fsyncs; do
    expect_match '^[0-9]+$' "$(jget "counters.$k")" "counters.$k"
    expect_match '^[0-9]+$' "$(jget "totals.$k")" "totals.$k"
done
expect_eq 24 "$(jget totals.start_latency_hist_us.length)" "latency histogram buckets"
expect_match '^[0-9]+$' "$(jget latency_us.p50)" "latency_us.p50"
expect_match '^[0-9]+$' "$(jget latency_us.p99)" "latency_us.p99"

# 3 completed, 1 dead, 2 scheduled, 1 cancelled, 2 ready, 1 running.
for i in 1 2 3; do submit --queue a --type echo >/dev/null; done
submit --queue a -- sh -c 'exit 100' >/dev/null
drain --queue a
submit --queue b --type echo --delay 1h >/dev/null
submit --queue b --type echo --at 2099-01-01T00:00:00Z >/dev/null
c=$(submit --queue b --type echo --delay 1h)
aj job cancel "$c" || fail "cancel"
submit --queue b --type echo >/dev/null
submit --queue b --type echo >/dev/null
slow=$(submit --queue s -- sleep 26.535)
start_worker --queue s --concurrency 1 --shutdown-timeout 100ms
wait_for 20 state_is "$slow" running

expect_ok aj stats --json
expect_eq '{"cancelled":1,"completed":3,"dead":1,"ready":2,"running":1,"scheduled":2}' \
    "$(jget jobs)" "exact counts per state"
expect_eq 10 "$(jget totals.submitted)" "totals.submitted"
[ "$(jget totals.completed)" -ge 3 ] || fail "totals.completed"
[ "$(jget totals.dead_lettered)" -ge 1 ] || fail "totals.dead_lettered"
[ "$(jget totals.fsyncs)" -ge 1 ] || fail "totals.fsyncs"

expect_ok aj stats
expect_line '^  ready +2$' "$OUT" "human stats: ready"
expect_line '^  running +1$' "$OUT" "human stats: running"
expect_line '^  total +10$' "$OUT" "human stats: total"
expect_line '^  submitted +10$' "$OUT" "human stats: submitted"

aj job cancel "$slow" || fail "cancel the running job"
stop_worker TERM
expect_ok aj stats --json
expect_eq '{"cancelled":2,"completed":3,"dead":1,"ready":2,"running":0,"scheduled":2}' \
    "$(jget jobs)" "counts after cancelling the running job"

echo "PASS test_stats"
