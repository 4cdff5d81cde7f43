#!/usr/bin/env bash
# test_full_disk.sh — a worker whose outcome cannot be recorded because the disk is full (issue
# 10, item 5). The store lives on a small tmpfs; a shell job fills it and exits 0, so recording
# its completion fails with "storage full". The worker must keep the job's lease and record the
# completion once space returns: the job runs exactly once. Needs root (mount); skipped
# otherwise.
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

# The job notes its run outside the full disk, then fills the disk and succeeds.
id=$(submit --lease 2s --max-attempts 3 -- \
    sh -c "echo run >> '$T/runs'; dd if=/dev/zero of='$MNT/filler' bs=64k 2>/dev/null; exit 0")
start_worker --concurrency 1
wait_for 30 test -s "$T/runs"
# Full for several leases: heartbeats, the outcome and the reaper all fail meanwhile.
wait_for 30 grep -q "could not record a job outcome; keeping its lease" "$T/worker.log"
sleep 6
rm -f "$MNT/filler"
wait_for 60 state_is "$id" completed
expect_eq 1 "$(job_field "$id" attempts)" "attempts"
expect_eq 1 "$(wc -l <"$T/runs")" "runs of the job"
stop_worker
expect_contains "$(cat "$T/worker.log")" "recorded a job outcome after store errors" \
    "the worker says the outcome was recorded in the end"
echo "full disk ok"
