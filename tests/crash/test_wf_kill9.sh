#!/usr/bin/env bash
# Workflow crash test: worker processes are SIGKILLed at random moments while a few hundred
# declarative sagas run shell steps that append to a ledger. Afterwards: every workflow reached
# a terminal state; each completed step has exactly one completion event; failed sagas ran their
# compensations in reverse order; and no step ran again after its completion was recorded
# (a step may run more than once only before its completion event exists).
set -euo pipefail
AJ=${AJ_BIN:?AJ_BIN must name the aj binary}
N=${AJ_WF_CRASH_N:-200}
CHAOS_SECONDS=${AJ_WF_CRASH_SECONDS:-12}
SEED=${AJ_CRASH_SEED:-$RANDOM}
RANDOM=$SEED
echo "workflow crash test: $N sagas, seed $SEED"
dir=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$dir"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; echo "seed was $SEED" >&2; exit 1; }
export AJ_DB="sqlite:$dir/aj.db"
ledger="$dir/ledger"
: >"$ledger"

# Every 5th saga fails at its third step and compensates.
step() { printf '["sh","-c","echo $AJ_WORKFLOW_ID %s $(date +%%s%%N) >> %s; %s"]' "$1" "$ledger" "$2"; }
for ((i = 0; i < N; i++)); do
    last=true
    [ $((i % 5)) = 0 ] && last='exit 100'
    printf '{"steps":[{"name":"s1","run":%s,"compensate":%s,"lease":"2s","max_attempts":10},{"name":"s2","run":%s,"compensate":%s,"lease":"2s","max_attempts":10},{"name":"s3","run":%s,"lease":"2s","max_attempts":10}]}\n' \
        "$(step s1 true)" "$(step c1 true)" "$(step s2 true)" "$(step c2 true)" "$(step s3 "$last")"
done >"$dir/lines"
"$AJ" wf start saga --input-lines "$dir/lines" >"$dir/ids"
[ "$(wc -l <"$dir/ids")" = "$N" ] || fail "started $(wc -l <"$dir/ids") sagas"

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
echo "killed $kills workers"; ls "$dir" >/dev/null || echo "dir vanished"
for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
pids=()
timeout 300 "$AJ" worker --concurrency 4 --drain >>"$dir/worker.log" 2>&1 || fail "drain failed"

"$AJ" wf ls --json >"$dir/wfs.json"
[ "$(jq 'map(select(.state=="completed")) | length' "$dir/wfs.json")" = $((N - N / 5)) ] ||
    fail "completed: $(jq -c 'group_by(.state) | map({(.[0].state): length}) | add' "$dir/wfs.json")"
[ "$(jq 'map(select(.state=="compensated")) | length' "$dir/wfs.json")" = $((N / 5)) ] ||
    fail "compensated: $(jq -c 'group_by(.state) | map({(.[0].state): length}) | add' "$dir/wfs.json")"
while read -r id; do
    "$AJ" wf history "$id" >"$dir/h.$id"
done <"$dir/ids"
python3 - "$dir" "$ledger" <<'PY' || fail "history/ledger check failed"
import json, os, sys, collections
d, ledger = sys.argv[1], sys.argv[2]
runs = collections.defaultdict(list)  # (wf, step) -> [ns]
for line in open(ledger):
    wf, step, ns = line.split()
    runs[(wf, step)].append(int(ns))
for wf in [l.strip() for l in open(os.path.join(d, "ids"))]:
    events = [json.loads(l) for l in open(os.path.join(d, "h." + wf))]
    done = collections.Counter(e["name"] for e in events if e["type"] == "activity_completed")
    for name, n in done.items():
        if n != 1:
            sys.exit(f"{wf}: step {name} has {n} completion events")
    # No step ran after its completion was recorded.
    for e in events:
        if e["type"] == "activity_completed":
            recorded_ms = int(e["hlc"]) >> 16
            late = [t for t in runs[(wf, e["name"])] if t // 1000000 > recorded_ms + 5]
            if late:
                sys.exit(f"{wf}: step {e['name']} ran again after its completion was recorded")
    comps = [e["name"] for e in events if e["type"] == "compensation_completed"]
    if comps and comps != ["s2", "s1"]:
        sys.exit(f"{wf}: compensations ran as {comps}, wanted s2, s1")
print("histories and ledger consistent")
PY
echo "workflow crash test passed"
