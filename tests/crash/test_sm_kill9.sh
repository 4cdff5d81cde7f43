#!/usr/bin/env bash
# State machine crash test: worker processes are SIGKILLed at random moments while state
# machines loop through a state three times (a gate job decides by $AJ_VISIT), then run a final
# state; every 5th one ends in its failed terminal state. Shell jobs append to a ledger.
# Afterwards: every run reached its terminal state along the expected path (count x3, finish,
# done|failed), each job of each visit has exactly one completion event, and no job ran again
# after its completion was recorded (a job may run more than once only before that).
set -euo pipefail
AJ=${AJ_BIN:?AJ_BIN must name the aj binary}
N=${AJ_SM_CRASH_N:-60}
CHAOS_SECONDS=${AJ_SM_CRASH_SECONDS:-10}
SEED=${AJ_CRASH_SEED:-$RANDOM}
RANDOM=$SEED
echo "state machine crash test: $N runs, seed $SEED"
dir=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$dir"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; echo "seed was $SEED" >&2; exit 1; }
export AJ_DB="sqlite:$dir/aj.db"
ledger="$dir/ledger"
: >"$ledger"

# job NAME COMMAND: logs "WF STATE JOB VISIT NS" and runs COMMAND.
job() {
    printf '{"name":"%s","run":["sh","-c","echo $AJ_WORKFLOW_ID $AJ_STATE $AJ_JOB $AJ_VISIT $(date +%%s%%N) >> %s; %s"],"lease":"2s","max_attempts":10}' \
        "$1" "$ledger" "$2"
}
for ((i = 0; i < N; i++)); do
    last=true
    [ $((i % 5)) = 0 ] && last='exit 100'
    printf '{"initial":"count","states":{"count":{"jobs":[%s,%s],"on":{"outcome":{"gate":{"completed":"finish","dead":"count"}}}},"finish":{"jobs":[%s,%s],"on":{"all_success":"done","any_failure":"failed"}},"done":{"terminal":"completed"},"failed":{"terminal":"failed"}}}\n' \
        "$(job work 'sleep 0.0$((RANDOM % 5))')" "$(job gate '[ $AJ_VISIT -ge 3 ] || exit 100')" \
        "$(job f1 true)" "$(job f2 "$last")"
done >"$dir/lines"
"$AJ" wf start statemachine --input-lines "$dir/lines" >"$dir/ids"
[ "$(wc -l <"$dir/ids")" = "$N" ] || fail "started $(wc -l <"$dir/ids") state machines"

start_worker() { "$AJ" worker --concurrency 4 >>"$dir/worker.log" 2>&1 & pids+=($!); }
for w in 1 2 3; do start_worker; done
end=$((SECONDS + CHAOS_SECONDS))
kills=0
while [ $SECONDS -lt $end ]; do
    sleep "0.$((RANDOM % 7 + 2))"
    i=$((RANDOM % ${#pids[@]}))
    if kill -9 "${pids[$i]}" 2>/dev/null; then
        wait "${pids[$i]}" 2>/dev/null || true
        unset "pids[$i]"; pids=("${pids[@]}"); kills=$((kills + 1))
        start_worker
    fi
done
echo "killed $kills workers"
# The last workers are killed too: a SIGTERM could reach one between its fork and its exec, and
# be lost (bash's own handler takes it), leaving it running for ever.
for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
pids=()
timeout 300 "$AJ" worker --concurrency 4 --drain >>"$dir/worker.log" 2>&1 || fail "drain failed"

"$AJ" wf ls --type statemachine --json >"$dir/wfs.json"
nfail=$(( (N + 4) / 5 ))
counts=$(jq -c 'group_by(.state) | map({(.[0].state): length}) | add' "$dir/wfs.json")
[ "$(jq 'map(select(.state=="completed")) | length' "$dir/wfs.json")" = $((N - nfail)) ] ||
    fail "completed: $counts"
[ "$(jq 'map(select(.state=="failed")) | length' "$dir/wfs.json")" = "$nfail" ] ||
    fail "failed: $counts"
while read -r id; do
    "$AJ" wf history "$id" >"$dir/h.$id"
done <"$dir/ids"
python3 - "$dir" "$ledger" <<'PY' || fail "history/ledger check failed"
import json, os, sys, collections
d, ledger = sys.argv[1], sys.argv[2]
runs = collections.defaultdict(list)  # (wf, activity name) -> [ns]
for line in open(ledger):
    wf, state, job, visit, ns = line.split()
    name = f"{state}/{job}" if visit == "1" else f"{state}/{job}#{visit}"
    runs[(wf, name)].append(int(ns))
ids = [l.strip() for l in open(os.path.join(d, "ids"))]
for i, wf in enumerate(ids):
    events = [json.loads(l) for l in open(os.path.join(d, "h." + wf))]
    done = collections.Counter(e["name"] for e in events if e["type"] == "activity_completed")
    want = {"count/work", "count/work#2", "count/work#3", "count/gate#3", "finish/f1"}
    if i % 5 != 0:
        want.add("finish/f2")
    if set(done) != want:
        sys.exit(f"{wf}: completed activities {sorted(done)}, wanted {sorted(want)}")
    for name, n in done.items():
        if n != 1:
            sys.exit(f"{wf}: {name} has {n} completion events")
    for e in events:
        if e["type"] == "activity_completed":
            recorded_ms = int(e["hlc"]) >> 16
            late = [t for t in runs[(wf, e["name"])] if t // 1000000 > recorded_ms + 5]
            if late:
                sys.exit(f"{wf}: {e['name']} ran again after its completion was recorded")
    final = events[-1]
    report = final["data"] if isinstance(final.get("data"), str) else json.dumps(final.get("data"))
    report = report[report.index("{"):]
    path = json.loads(report)["path"]
    end = "failed" if i % 5 == 0 else "done"
    if path != ["count", "count", "count", "finish", end]:
        sys.exit(f"{wf}: path {path}")
print("histories, paths and ledger consistent")
PY
echo "state machine crash test passed"
