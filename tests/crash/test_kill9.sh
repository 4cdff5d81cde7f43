#!/usr/bin/env bash
# Crash test: several `aj worker` processes run a few thousand shell jobs that append their id
# to a ledger file; workers are killed with SIGKILL at random moments and restarted. Afterwards:
# every job completed, none is lost or stuck, the store's indexes match its records, and a job
# ran more than once only if a worker running it was killed (its lease expired, naming that
# worker's pid).
set -euo pipefail
AJ=${AJ_BIN:?AJ_BIN must name the aj binary}
JOBS=${AJ_CRASH_JOBS:-2000}
WORKERS=3
CHAOS_SECONDS=${AJ_CRASH_SECONDS:-15}
SEED=${AJ_CRASH_SEED:-$RANDOM}
RANDOM=$SEED
echo "crash test: $JOBS jobs, $WORKERS workers, seed $SEED"

dir=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; echo "seed was $SEED" >&2; exit 1; }

export AJ_DB="sqlite:$dir/aj.db"
ledger="$dir/ledger"
: >"$ledger"
# Each job appends "id attempt" with one write (O_APPEND; shorter than PIPE_BUF, so atomic).
for ((i = 0; i < JOBS; i++)); do
    printf '{"argv":["sh","-c","echo \\"$AJ_JOB_ID $AJ_ATTEMPT\\" >> %s"]}\n' "$ledger"
done >"$dir/lines"
count=$("$AJ" submit --type shell --payload-lines "$dir/lines" --lease 2s --max-attempts 1000 \
    --backoff fixed:10ms)
[ "$count" = "$JOBS" ] || fail "submitted $count jobs, wanted $JOBS"

start_worker() {
    "$AJ" worker --concurrency 4 >>"$dir/worker.log" 2>&1 &
    pids+=($!)
    echo "$!" >>"$dir/started"
}
for ((w = 0; w < WORKERS; w++)); do start_worker; done

killed="$dir/killed"
: >"$killed"
end=$((SECONDS + CHAOS_SECONDS))
while [ $SECONDS -lt $end ]; do
    sleep "0.$((RANDOM % 8 + 2))"
    victim_index=$((RANDOM % ${#pids[@]}))
    victim=${pids[$victim_index]}
    if kill -9 "$victim" 2>/dev/null; then
        wait "$victim" 2>/dev/null || true
        echo "$victim" >>"$killed"
        unset "pids[$victim_index]"
        pids=("${pids[@]}")
        start_worker
    fi
done
echo "killed $(wc -l <"$killed") workers"
# Let the survivors finish, then drain with a fresh worker.
for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
pids=()
timeout 300 "$AJ" worker --concurrency 4 --drain >>"$dir/worker.log" 2>&1 ||
    fail "draining worker failed (log: $(tail -5 "$dir/worker.log"))"

stats=$("$AJ" stats --json)
completed=$(jq '.jobs.completed' <<<"$stats")
[ "$completed" = "$JOBS" ] || fail "only $completed of $JOBS jobs completed: $stats"
for s in scheduled ready running dead cancelled; do
    [ "$(jq ".jobs.$s" <<<"$stats")" = 0 ] || fail "jobs left $s: $stats"
done
"$AJ" check >/dev/null || fail "aj check found problems"

# Every job ran at least once; duplicates only where a killed worker held the job.
python3 - "$ledger" "$killed" "$JOBS" "$AJ" <<'PY' || fail "ledger check failed"
import collections, json, subprocess, sys
ledger, killed_file, jobs, aj = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
runs = collections.Counter()
for line in open(ledger):
    job_id, attempt = line.split()
    runs[int(job_id)] += 1
killed = {line.strip() for line in open(killed_file) if line.strip()}
if len(runs) != jobs:
    sys.exit(f"{len(runs)} distinct jobs ran, wanted {jobs}")
dups = [j for j, n in runs.items() if n > 1]
for j in dups:
    job = json.loads(subprocess.check_output([aj, "job", "show", str(j), "--json"]))
    err = job.get("error") or ""
    # error: "lease expired: worker HOST:PID:RAND stopped heartbeating"
    worker = err.split("worker ", 1)[1].split(" ")[0] if "worker " in err else ""
    parts = worker.split(":")
    if len(parts) < 3 or parts[-2] not in killed:
        started = open(ledger.rsplit("/", 1)[0] + "/started").read().split()
        sys.exit(f"job {j} ran {runs[j]} times but no killed worker held it (error: {err!r}; "
                 f"killed: {sorted(killed)}; started: {started})")
    if job["attempts"] < runs[j]:
        sys.exit(f"job {j} ran {runs[j]} times with only {job['attempts']} attempts")
print(f"ledger ok: {jobs} jobs, {len(dups)} re-run after their worker was killed")
PY
echo "crash test passed"
