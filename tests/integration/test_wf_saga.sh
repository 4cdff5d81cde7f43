#!/usr/bin/env bash
# `aj wf` with the built-in declarative saga: steps as shell activities, compensation in reverse
# order on failure, compensation_failed, the environment steps see, history events, exit codes
# and bad input that stores nothing.
set -euo pipefail
AJ=${AJ_BIN:?}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
export AJ_DB="sqlite:$dir/aj.db"
if [ "${AJ_TEST_STORE:-sqlite}" = postgres ]; then
    AJ_DB=${AJ_TEST_PG_URL:?AJ_TEST_STORE=postgres runs only inside tests/pg/pg_harness.sh}
fi
ledger="$dir/ledger"

step() { # NAME COMMAND -> a step that logs NAME and its environment, then runs COMMAND
    printf '["sh","-c","echo %s $AJ_STEP $AJ_ATTEMPT ${AJ_COMPENSATING:-0} $AJ_WORKFLOW_ID >> %s; %s"]' \
        "$1" "$ledger" "$2"
}

# 1. All steps succeed: completed, one activity_completed per step, named after the step.
cat >"$dir/ok.json" <<JSON
{"steps":[{"name":"reserve","run":$(step reserve true),"compensate":$(step unreserve true)},
          {"name":"charge","run":$(step charge true),"max_attempts":2,"timeout":"10s","lease":"5s"}]}
JSON
id=$("$AJ" wf start saga --id ok-1 --input-file "$dir/ok.json")
[ "$id" = ok-1 ] || fail "start printed '$id'"
timeout 60 "$AJ" worker --drain 2>/dev/null || fail "drain failed"
"$AJ" wf result ok-1 >/dev/null || fail "ok-1 did not complete"
show=$("$AJ" wf show ok-1 --json)
[ "$(jq -r .state <<<"$show")" = completed ] || fail "state: $show"
[ "$(jq '[.events[] | select(.type=="activity_completed")] | length' <<<"$show")" = 2 ] || fail "activity_completed count: $show"
[ "$(jq -r '[.events[] | select(.type=="activity_completed") | .name] | join(",")' <<<"$show")" = reserve,charge ] || fail "names"
grep -q "^reserve reserve 1 0 ok-1$" "$ledger" || fail "step environment: $(cat "$ledger")"

# 2. A failing step: compensations of completed steps in reverse, AJ_COMPENSATING=1.
: >"$ledger"
cat >"$dir/fail.json" <<JSON
{"steps":[{"name":"a","run":$(step a true),"compensate":$(step undo-a true)},
          {"name":"b","run":$(step b true),"compensate":$(step undo-b true)},
          {"name":"c","run":$(step c 'exit 1'),"max_attempts":2,"compensate":$(step undo-c true)}]}
JSON
"$AJ" wf start saga --id fail-1 --input-file "$dir/fail.json" >/dev/null
"$AJ" --json wf start saga --input-file "$dir/fail.json" | jq -e .id >/dev/null || fail "--json start"
timeout 60 "$AJ" worker --drain 2>/dev/null || fail "drain failed"
show=$("$AJ" wf show fail-1 --json)
[ "$(jq -r .state <<<"$show")" = compensated ] || fail "state: $(jq -c '[.state,.error]' <<<"$show")"
[ "$(jq -r '[.events[] | select(.type=="compensation_completed") | .name] | join(",")' <<<"$show")" = b,a ] || fail "compensation order"
[ "$(jq '[.events[] | select(.type=="activity_failed")] | length' <<<"$show")" = 2 ] || fail "one activity_failed per attempt"
[ "$(jq '[.events[] | select(.type=="activity_completed" and (.name|startswith("undo")))] | length' <<<"$show")" = 0 ] || fail "compensations recorded as activities"
grep -q "^undo-b b 1 1 fail-1$" "$ledger" || fail "compensation environment: $(cat "$ledger")"
[ "$(grep -n undo-b "$ledger" | cut -d: -f1 | head -1)" -lt "$(grep -n undo-a "$ledger" | cut -d: -f1 | head -1)" ] || fail "reverse order in the ledger"
set +e
"$AJ" wf result fail-1 2>/dev/null
rc=$?
set -e
[ $rc = 4 ] || fail "result of a compensated saga exited $rc"

# 3. A compensation that is dead-lettered: compensation_failed.
cat >"$dir/cfail.json" <<JSON
{"steps":[{"name":"a","run":$(step a true),"compensate":$(step undo-a 'exit 100')},
          {"name":"b","run":$(step b 'exit 100')}]}
JSON
"$AJ" wf start saga --id cfail-1 --input-file "$dir/cfail.json" >/dev/null
timeout 60 "$AJ" worker --drain 2>/dev/null || fail "drain failed"
[ "$("$AJ" wf show cfail-1 --json | jq -r .state)" = compensation_failed ] || fail "compensation_failed"

# 4. History: JSON lines, chained, 1-based seq.
"$AJ" wf history ok-1 | jq -s -e '(.[0].seq == 1) and (.[0].type == "workflow_started") and
    ([range(1; length) as $i | .[$i].prev_id == .[$i-1].id] | all)' >/dev/null || fail "history chain"
[ "$("$AJ" wf ls --state compensated --json | jq length)" = 2 ] || fail "wf ls --state"
[ "$("$AJ" stats --json | jq .workflows.completed)" = 1 ] || fail "stats workflows"

# 5. Bad input: exit 2, nothing stored.
before=$("$AJ" wf ls --json | jq length)
expect() { local want=$1; shift; set +e; "$@" >/dev/null 2>"$dir/err"; local rc=$?; set -e
    [ $rc = "$want" ] || fail "'$*' exited $rc, wanted $want: $(cat "$dir/err")"
    [ "$(wc -l <"$dir/err")" -le 1 ] || fail "'$*' printed more than one error line"; }
expect 2 "$AJ" wf start saga --input '{"steps":[{"name":"x","run":["true"]},{"name":"x","run":["true"]}]}'
expect 2 "$AJ" wf start saga --input '{"steps":[{"name":"x"}]}'
expect 2 "$AJ" wf start saga --input '{"steps":[{"name":"x","run":[]}]}'
expect 2 "$AJ" wf start saga --input '{"steps":[{"name":"x","run":["true"],"timeout":"5"}]}'
expect 2 "$AJ" wf start saga --input 'not json'
expect 2 "$AJ" wf start no-such-type --input '{}'
expect 2 "$AJ" wf start saga --id 'bad id' --input-file "$dir/ok.json"
head -c 1048577 /dev/zero | tr '\0' ' ' >"$dir/big"
expect 2 "$AJ" wf start saga --input-file "$dir/big"
expect 4 "$AJ" wf start saga --id ok-1 --input-file "$dir/ok.json"
expect 3 "$AJ" wf signal nobody go
expect 4 "$AJ" wf signal ok-1 go
expect 3 "$AJ" wf show nobody
expect 4 "$AJ" wf resume ok-1
expect 2 "$AJ" wf ls --state sleeping
[ "$("$AJ" wf ls --json | jq length)" = "$before" ] || fail "bad input stored something"
# --rerun starts a new run of a finished id.
"$AJ" wf start saga --id ok-1 --rerun --input-file "$dir/ok.json" >/dev/null
[ "$("$AJ" wf show ok-1 --json | jq .run)" = 2 ] || fail "rerun"
# 6. A task of a workflow type no process here can run does not hold --drain.
"$AJ" submit --queue aj.wf/elsewhere --type aj.wf --payload '"runs-elsewhere"' >/dev/null
timeout 30 "$AJ" worker --drain 2>/dev/null || fail "--drain waited for a workflow type it cannot run"
[ "$("$AJ" job ls --queue aj.wf/elsewhere --state ready --json | jq length)" = 1 ] || fail "foreign task touched"
# 7. Cancel while a step runs: its job is cancelled (the shell killed, never finishing), and the
#    completed steps are compensated; the running step is not (it did not complete).
: >"$ledger"
cat >"$dir/slow.json" <<JSON
{"steps":[{"name":"a","run":$(step a true),"compensate":$(step undo-a true)},
          {"name":"b","run":$(step b "sleep 300; echo b-finished >> $ledger"),"compensate":$(step undo-b true)}]}
JSON
"$AJ" wf start saga --id slow-1 --input-file "$dir/slow.json" >/dev/null
"$AJ" worker 2>"$dir/worker.log" &
worker=$!
for _ in $(seq 300); do grep -q "^b b 1" "$ledger" 2>/dev/null && break; sleep 0.1; done
grep -q "^b b 1" "$ledger" || fail "step b never started: $(cat "$ledger")"
"$AJ" wf cancel slow-1
for _ in $(seq 600); do
    st=$("$AJ" wf show slow-1 --json | jq -r .state)
    [ "$st" = running ] || [ "$st" = compensating ] || break
    sleep 0.1
done
kill "$worker"; wait "$worker" || true
[ "$st" = compensated ] || fail "cancelled saga ended '$st'"
grep -q "^undo-a a 1 1 slow-1$" "$ledger" || fail "undo-a did not run: $(cat "$ledger")"
! grep -q "undo-b\|b-finished" "$ledger" || fail "the cancelled step completed or was compensated: $(cat "$ledger")"
bjob=$("$AJ" wf show slow-1 --json | jq -r '.events[] | select(.type=="activity_scheduled" and .name=="b") | .aux')
[ "$("$AJ" job show "$bjob" --json | jq -r .state)" = cancelled ] || fail "step b's job was not cancelled"
echo "wf saga ok"
