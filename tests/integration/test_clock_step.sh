#!/usr/bin/env bash
# test_clock_step.sh — wall clock steps under a live `aj worker` (issue 10, item 2). The worker
# runs under libfaketime with its offset read from a file at every call, and the monotonic clock
# left real (FAKETIME_DONT_FAKE_MONOTONIC=1), as when an operator or NTP steps CLOCK_REALTIME.
# Each shell job (3 s lease, one attempt allowed) must run once and complete across a step of
# +45 s, of +2 h (with a one-minute --timeout), and of -5 min and back — never be killed or
# dead-lettered as lease_expired or timeout.
source "${AJ_TEST_LIB:?}"

FAKETIME_LIB=/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1
if [ ! -e "$FAKETIME_LIB" ]; then
    echo "SKIP: libfaketime is not installed (scripts/setup.sh installs it)"
    exit 0
fi
if sanitized; then
    echo "SKIP: a sanitizer runtime must come first in the library list; LD_PRELOAD cannot"
    exit 0
fi

# step OFFSET: sets the worker's wall clock to real time + OFFSET (e.g. +45s, -300s).
step() {
    printf '%s\n' "$1" >"$T/faketime"
}
step +0s
LD_PRELOAD=$FAKETIME_LIB FAKETIME_TIMESTAMP_FILE=$T/faketime FAKETIME_NO_CACHE=1 \
    FAKETIME_DONT_FAKE_MONOTONIC=1 start_worker --concurrency 2

# job NAME SECONDS ARGS...: a shell job that notes each run in $T/NAME.runs, then sleeps.
job() {
    local name=$1 secs=$2
    shift 2
    submit --queue steps --lease 3s --max-attempts 1 "$@" -- \
        sh -c "echo run >> '$T/$name.runs'; sleep $secs"
}

# ran_once ID NAME: the job completed after exactly one run.
ran_once() {
    wait_for 60 state_is "$1" completed
    expect_eq 1 "$(job_field "$1" attempts)" "$2: attempts"
    expect_eq 1 "$(wc -l <"$T/$2.runs")" "$2: runs"
}

# +45 s: every stored lease expiry is suddenly 42 s in the past.
id=$(job forward 4)
wait_for 30 state_is "$id" running
sleep 1
step +45s
ran_once "$id" forward

# +2 h with a one-minute execution timeout: the job has run for seconds, not two hours.
id=$(job timeout 4 --timeout 1m)
wait_for 30 state_is "$id" running
sleep 1
step +7245s
ran_once "$id" timeout

# -5 min, then back: heartbeats in between write expiries on a clock five minutes behind.
id=$(job backforth 5)
wait_for 30 state_is "$id" running
sleep 1
step +6945s
sleep 2
step +7245s
ran_once "$id" backforth

stop_worker
log=$(cat "$T/worker.log")
expect_contains "$log" "the wall clock stepped" "the worker noticed the steps"
if grep -Eq 'lease expired|timed out|stopped heartbeating' "$T/worker.log"; then
    fail "a healthy job was expired or timed out: $(grep -E 'lease expired|timed out' "$T/worker.log")"
fi
expect_ok "$AJ_BIN" --db "$DB" dlq ls --json
expect_eq 0 "$(jget length)" "nothing was dead-lettered"
echo "clock steps ok"
