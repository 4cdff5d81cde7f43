#!/usr/bin/env bash
# test_full_disk_queued.sh — a job a worker claimed ahead (queued for a free thread) while the
# disk is full. Its heartbeats cannot be written, so by the pool's own reckoning its lease runs
# out; the job's epoch is still current, though, and no other process has it. When space returns
# and a thread frees up, the worker must renew the lease and run the job — not drop it and let
# the reaper dead-letter it as lease_expired ("stopped heartbeating") without a single run.
# Issue 10, items 2/5 (a lease the worker holds itself never expires because of its own store
# errors). Needs root (mount); skipped otherwise.
source "${AJ_TEST_LIB:?}"

MNT=$T/mnt
mkdir -p "$MNT"
if ! mount -t tmpfs -o size=16m tmpfs "$MNT" 2>/dev/null; then
    echo "SKIP: cannot mount a tmpfs here (needs root)"
    exit 0
fi
trap '[ -n "${WORKER_PID:-}" ] && kill -KILL "$WORKER_PID" 2>/dev/null; wait 2>/dev/null;
      umount "$MNT"; _aj_cleanup' EXIT
DB="sqlite:$MNT/aj.db"

# The first job runs first (high priority) until told to stop; the second, claimed ahead of it,
# waits for the only thread and may run only once: one attempt, a 2 s lease. The disk fills
# while the first job runs, so the heartbeats of both fail, and then the first one's outcome.
expect_ok aj stats # creates the store before the worker opens it
start_worker --concurrency 1
first=$(submit --priority high --lease 2s --max-attempts 3 -- \
    sh -c "echo run >> '$T/first.runs'; while [ ! -e '$T/go' ]; do sleep 0.1; done")
second=$(submit --lease 2s --max-attempts 1 -- sh -c "echo run >> '$T/second.runs'")
wait_for 30 test -s "$T/first.runs"
wait_for 30 state_is "$second" running # claimed ahead, waiting for the only thread
dd if=/dev/zero of="$MNT/filler" bs=64k 2>/dev/null
sleep 6 # several leases without a heartbeat
touch "$T/go"
wait_for 30 grep -q "could not record a job outcome; keeping its lease" "$T/worker.log"
sleep 6
rm -f "$MNT/filler"
wait_for 60 state_is "$first" completed
wait_for 60 eval '! state_is "$second" running'
expect_eq completed "$(job_field "$second" state)" "the job claimed ahead: state"
expect_eq 1 "$(job_field "$second" attempts)" "the job claimed ahead: attempts"
expect_eq 1 "$(cat "$T/second.runs" 2>/dev/null | wc -l)" "the job claimed ahead: runs"
stop_worker
echo "full disk, job claimed ahead ok"
