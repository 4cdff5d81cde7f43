#!/usr/bin/env bash
# test_drain.sh — `aj worker --drain` exits 0 once no job of its queues is ready or running and
# none becomes ready within 60 s: it waits for near delays and retries, not for far ones, and
# ignores other queues; a queue named twice is served once.
source "${AJ_TEST_LIB:?}"

# An empty store drains at once.
start=$(date +%s)
drain
[ $(($(date +%s) - start)) -lt 5 ] || fail "draining an empty store took too long"

# Ready jobs run; a job delayed 2 hours stays scheduled and does not hold the drain.
ids=()
for i in 1 2 3 4 5; do ids+=("$(submit --type echo --payload "$i")"); done
far=$(submit --type echo --delay 2h)
start=$(date +%s)
drain
[ $(($(date +%s) - start)) -lt 10 ] || fail "a job delayed 2h held the drain"
for i in "${ids[@]}"; do
    expect_eq completed "$(job_field "$i" state)" "job $i after the drain"
done
expect_eq scheduled "$(job_field "$far" state)" "a job delayed 2h"

# A job delayed 2 s is within the horizon: the drain waits for it.
near=$(submit --type echo --delay 2s)
start=$(date +%s%N)
drain
ms=$((($(date +%s%N) - start) / 1000000))
expect_eq completed "$(job_field "$near" state)" "a job delayed 2s"
[ "$ms" -ge 1000 ] || fail "the drain returned after ${ms}ms, before the delayed job was due"

# A retry waiting for its backoff is within the horizon too.
retry=$(submit --max-attempts 3 --backoff fixed:1s -- sh -c '[ "$AJ_ATTEMPT" -ge 2 ]')
drain
expect_eq completed "$(job_field "$retry" state)" "a job retried after 1s"
expect_eq 2 "$(job_field "$retry" attempts)" "attempts of the retried job"

# --queue: only its queues count; a ready job elsewhere neither runs nor holds the drain.
other=$(submit --queue other --type echo)
mine=$(submit --queue mine --type echo)
start=$(date +%s)
drain --queue mine,third
[ $(($(date +%s) - start)) -lt 10 ] || fail "a job of another queue held the drain"
expect_eq completed "$(job_field "$mine" state)" "a job of the drained queue"
expect_eq ready "$(job_field "$other" state)" "a job of another queue"

# A queue named twice is served once (the same job must not be claimed twice), and drains.
twice=$(submit --queue dup --type echo)
start=$(date +%s)
drain --queue dup,mine,dup
[ $(($(date +%s) - start)) -lt 10 ] || fail "--queue dup,mine,dup did not drain at once"
expect_eq completed "$(job_field "$twice" state)" "a job of a queue named twice"
[ "$(grep -c 'claim failed' <<<"$ERR")" = 0 ] || fail "claims failed with a queue named twice"

# A drain stopped by SIGTERM before it is done exits 1.
blocker=$(submit --queue block --lease 2s -- sleep 24.68)
start_worker --queue block --drain --shutdown-timeout 100ms
wait_for 20 state_is "$blocker" running
kill -TERM "$WORKER_PID"
wait "$WORKER_PID"
expect_eq 1 "$?" "exit of a drain interrupted by SIGTERM"
grep -q 'drain interrupted by SIGTERM' "$T/worker.log" || fail "no message for the interrupted drain"
expect_eq ready "$(job_field "$blocker" state)" "an unfinished job is given back on stop"

echo "PASS test_drain"
