#!/usr/bin/env bash
# The built-in `statemachine` workflow type: every transition kind (all_success, any_failure,
# success_rate then/else, named job outcomes, otherwise), terminal completed and failed, the
# environment shell jobs see, a loop bounded by max_transitions, a polling loop with "wait", the
# `status` query, recovery after SIGKILL of the worker in the middle of a state (each job runs
# to completion once), the example definitions, and bad input that stores nothing.
source "$AJ_TEST_LIB"
command -v jq >/dev/null || exit 77

ledger="$T/ledger"
: >"$ledger"
EX="$(dirname "$0")/../../examples/statemachine"

# job NAME COMMAND [EXTRA]: a job that logs "STATE JOB VISIT WF" to the ledger, then runs COMMAND.
job() {
    printf '{"name":"%s","run":["sh","-c","echo $AJ_STATE $AJ_JOB $AJ_VISIT $AJ_WORKFLOW_ID >> %s; %s"],"max_attempts":1%s}' \
        "$1" "$ledger" "$2" "${3:-}"
}
# start ID FILE: starts a state machine and checks that it printed its id.
start() {
    run aj wf start statemachine --id "$1" --input-file "$2"
    [ "$RC" = 0 ] || fail "start $1 exited $RC"
    expect_eq "$1" "$OUT" "start $1 printed"
}
show() { aj wf show "$1" --json; }
# rules ID: the rules that decided each visit, comma-separated (from the result or the error).
report() {
    local s
    s=$(show "$1")
    if [ "$(jq -r .state <<<"$s")" = completed ]; then
        jq -r .result <<<"$s"
    else
        jq -r '.error | sub("^[^{]*"; "")' <<<"$s"
    fi
}

# 1. all_success, success_rate (then), outcome: completed; the jobs' environment; a typed job.
cat >"$T/pipeline.json" <<JSON
{"initial":"build","max_transitions":10,"states":{
  "build":{"jobs":[$(job compile true),{"name":"lint","type":"echo","payload":{"ok":true}}],
           "on":{"all_success":"test","any_failure":"failed"}},
  "test":{"jobs":[$(job unit true),$(job flaky 'exit 100'),$(job e2e true)],
          "on":{"success_rate":{"at_least":0.6,"then":"deploy","else":"failed"}}},
  "deploy":{"jobs":[$(job push true)],"on":{"outcome":{"push":{"completed":"done","dead":"failed"}}}},
  "done":{"terminal":"completed"},
  "failed":{"terminal":"failed"}}}
JSON
start p1 "$T/pipeline.json"
drain
s=$(show p1)
expect_eq completed "$(jq -r .state <<<"$s")" "p1 state"
r=$(report p1)
expect_eq build,test,deploy,done "$(jq -r '.path | join(",")' <<<"$r")" "p1 path"
expect_eq all_success,success_rate,outcome "$(jq -r '[.visits[].rule] | join(",")' <<<"$r")" "p1 rules"
expect_eq dead "$(jq -r .visits[1].jobs.flaky <<<"$r")" "p1 flaky outcome"
expect_contains "$(jq -r .visits[1].errors.flaky <<<"$r")" "exit status 100" "p1 flaky error"
expect_eq true "$(jq -r .results.build.lint.ok <<<"$r")" "p1 typed job result"
expect_eq 3 "$(jq -r .transitions <<<"$r")" "p1 transitions"
# Jobs of a state start together, in the order listed, and finish in any order.
expect_eq build/compile,build/lint,test/unit,test/flaky,test/e2e,deploy/push \
    "$(jq -r '[.events[] | select(.type=="activity_scheduled") | .name] | join(",")' <<<"$s")" \
    "p1 activity_scheduled names"
expect_eq build/compile,build/lint,deploy/push,test/e2e,test/unit \
    "$(jq -r '[.events[] | select(.type=="activity_completed") | .name] | sort | join(",")' <<<"$s")" \
    "p1 activity_completed names"
grep -qx "build compile 1 p1" "$ledger" || fail "job environment: $(cat "$ledger")"
grep -qx "deploy push 1 p1" "$ledger" || fail "job environment: $(cat "$ledger")"
# The status query answers with the same report after the end.
expect_ok aj wf query p1 status
expect_eq build,test,deploy,done "$(jq -r '.path | join(",")' <<<"$OUT")" "status query"

# 2. any_failure into a terminal failed state: the run fails, naming the state, with the report.
cat >"$T/anyfail.json" <<JSON
{"initial":"build","states":{
  "build":{"jobs":[$(job compile 'exit 3'),$(job lint true)],
           "on":{"all_success":"done","any_failure":"broken"}},
  "done":{"terminal":"completed"},
  "broken":{"terminal":"failed"}}}
JSON
start f1 "$T/anyfail.json"
drain
s=$(show f1)
expect_eq failed "$(jq -r .state <<<"$s")" "f1 state"
expect_contains "$(jq -r .error <<<"$s")" "reached terminal state 'broken' (failed)" "f1 error"
r=$(report f1)
expect_eq build,broken "$(jq -r '.path | join(",")' <<<"$r")" "f1 path"
expect_eq any_failure "$(jq -r .visits[0].rule <<<"$r")" "f1 rule"
expect_eq completed "$(jq -r .visits[0].jobs.lint <<<"$r")" "f1: every job of the state ran"
expect_exit 4 aj wf result f1

# 3. success_rate below the threshold takes "else"; a dead named outcome; "otherwise".
cat >"$T/else.json" <<JSON
{"initial":"test","states":{
  "test":{"jobs":[$(job a true),$(job b 'exit 100'),$(job c 'exit 100')],
          "on":{"success_rate":{"at_least":0.9,"then":"done","else":"deploy"}}},
  "deploy":{"jobs":[$(job push 'exit 100')],
            "on":{"outcome":{"push":{"completed":"done","dead":"rollback"}}}},
  "rollback":{"jobs":[$(job undo true)],"on":{"otherwise":"rolled_back"}},
  "done":{"terminal":"completed"},
  "rolled_back":{"terminal":"failed"}}}
JSON
start e1 "$T/else.json"
drain
expect_eq failed "$(show e1 | jq -r .state)" "e1 state"
r=$(report e1)
expect_eq test,deploy,rollback,rolled_back "$(jq -r '.path | join(",")' <<<"$r")" "e1 path"
expect_eq success_rate_else,outcome,otherwise "$(jq -r '[.visits[].rule] | join(",")' <<<"$r")" \
    "e1 rules"

# 4. A loop bounded by max_transitions: the 4th transition is refused and the run fails.
cat >"$T/loop.json" <<JSON
{"initial":"spin","max_transitions":3,"states":{
  "spin":{"jobs":[$(job j true)],"on":{"outcome":{"j":{"completed":"spin","dead":"done"}}}},
  "done":{"terminal":"completed"}}}
JSON
start l1 "$T/loop.json"
drain
s=$(show l1)
expect_eq failed "$(jq -r .state <<<"$s")" "l1 state"
expect_contains "$(jq -r .error <<<"$s")" "max_transitions (3) reached" "l1 error"
expect_eq 4 "$(grep -c '^spin j .* l1$' "$ledger")" "l1 job runs"
expect_eq "spin/j,spin/j#2,spin/j#3,spin/j#4" \
    "$(jq -r '[.events[] | select(.type=="activity_completed") | .name] | join(",")' <<<"$s")" \
    "l1 activity names per visit"
expect_ok aj wf query l1 status
expect_eq 3 "$(jq -r .transitions <<<"$OUT")" "l1 transitions in status"

# 5. A polling loop that ends: "wait" is a durable timer before the jobs of each visit.
cat >"$T/poll.json" <<JSON
{"initial":"poll","states":{
  "poll":{"wait":"20ms","jobs":[$(job ready '[ $AJ_VISIT -ge 3 ]')],
          "on":{"outcome":{"ready":{"completed":"done","dead":"poll"}}}},
  "done":{"terminal":"completed"}}}
JSON
start w1 "$T/poll.json"
drain
s=$(show w1)
expect_eq completed "$(jq -r .state <<<"$s")" "w1 state"
expect_eq poll,poll,poll,done "$(report w1 | jq -r '.path | join(",")')" "w1 path"
expect_eq 3 "$(jq '[.events[] | select(.type=="timer_fired")] | length' <<<"$s")" "w1 timers"

# 6. Recovery: the worker is SIGKILLed while two jobs of a state run. A new worker
#    finishes the run; every job ran to completion exactly once, and the killed one ran again.
gate="$T/gate"
slow() { # NAME: logs start, waits for the gate, logs end
    printf '{"name":"%s","run":["sh","-c","echo start $AJ_JOB >> %s; while [ ! -e %s ]; do sleep 0.05; done; echo end $AJ_JOB >> %s"],"lease":"1s","max_attempts":5}' \
        "$1" "$T/crash" "$gate" "$T/crash"
}
cat >"$T/crash.json" <<JSON
{"initial":"work","states":{
  "work":{"jobs":[{"name":"j1","run":["sh","-c","echo start j1 >> $T/crash; echo end j1 >> $T/crash"]},
                  $(slow j2),$(slow j3)],
          "on":{"all_success":"done","any_failure":"failed"}},
  "done":{"terminal":"completed"},"failed":{"terminal":"failed"}}}
JSON
: >"$T/crash"
start k1 "$T/crash.json"
start_worker
wait_for 30 grep -q "start j2" "$T/crash"
# The jobs of a state run in parallel: the kill comes once j1's completion is recorded, so j1
# must not run again (j2 and j3 wait for the gate).
j1_recorded() {
    show k1 | jq -e '[.events[] | select(.type=="activity_completed" and .name=="work/j1")] | length == 1' >/dev/null
}
wait_for 30 j1_recorded
kill -KILL "$WORKER_PID"
wait "$WORKER_PID" 2>/dev/null
touch "$gate"
drain
s=$(show k1)
expect_eq completed "$(jq -r .state <<<"$s")" "k1 state after the crash"
for j in j1 j2 j3; do
    expect_eq 1 "$(grep -c "^end $j$" "$T/crash")" "k1: $j ran to completion"
    expect_eq 1 "$(jq "[.events[] | select(.type==\"activity_completed\" and .name==\"work/$j\")] | length" <<<"$s")" \
        "k1: completion events of $j"
done
expect_eq 2 "$(grep -c "^start j2$" "$T/crash")" "k1: j2 ran again after the kill"
expect_eq 1 "$(grep -c "^start j1$" "$T/crash")" "k1: j1 was not run again"

# 7. The example definitions run.
for f in "$EX"/*.json; do
    name=$(basename "$f" .json)
    start "ex-$name" "$f"
done
drain
for f in "$EX"/*.json; do
    name=$(basename "$f" .json)
    st=$(show "ex-$name" | jq -r .state)
    [ "$st" = completed ] || fail "example $name ended $st: $(show "ex-$name" | jq -r .error)"
done

# 8. Bad input: exit 2 with one line naming the problem; nothing stored.
before=$(aj wf ls --json | jq length)
ok_states='"done":{"terminal":"completed"}'
one='{"name":"j","run":["true"]}'
bad() { # PATTERN INPUT
    expect_error 2 "$1" aj wf start statemachine --input "$2"
}
bad 'no initial state' "{\"states\":{$ok_states}}"
bad "initial: unknown state 'nope'" "{\"initial\":\"nope\",\"states\":{$ok_states}}"
bad "states.a.on.all_success: unknown state 'dne'" \
    "{\"initial\":\"a\",\"states\":{\"a\":{\"jobs\":[$one],\"on\":{\"all_success\":\"dne\",\"any_failure\":\"done\"}},$ok_states}}"
bad "job name 'j' is used twice in state 'a'" \
    "{\"initial\":\"a\",\"states\":{\"a\":{\"jobs\":[$one,$one],\"on\":{\"otherwise\":\"done\"}},$ok_states}}"
bad 'states.a: a state needs "jobs" and "on"' \
    "{\"initial\":\"a\",\"states\":{\"a\":{\"jobs\":[$one]},$ok_states}}"
bad 'states.a: a state needs "jobs" and "on"' "{\"initial\":\"a\",\"states\":{\"a\":{},$ok_states}}"
bad "states.lost: unreachable from the initial state 'a'" \
    "{\"initial\":\"a\",\"states\":{\"a\":{\"jobs\":[$one],\"on\":{\"otherwise\":\"done\"}},\"lost\":{\"terminal\":\"failed\"},$ok_states}}"
bad '"at_least" is 1.5' \
    "{\"initial\":\"a\",\"states\":{\"a\":{\"jobs\":[$one],\"on\":{\"success_rate\":{\"at_least\":1.5,\"then\":\"done\",\"else\":\"done\"}}},$ok_states}}"
bad 'states.a.on.success_rate: needs "then"' \
    "{\"initial\":\"a\",\"states\":{\"a\":{\"jobs\":[$one],\"on\":{\"success_rate\":{\"at_least\":0.5}}},$ok_states}}"
bad 'leave some outcomes undecided' \
    "{\"initial\":\"a\",\"states\":{\"a\":{\"jobs\":[$one],\"on\":{\"all_success\":\"done\"}},$ok_states}}"
bad "states.a.on.outcome.x: state 'a' has no job 'x'" \
    "{\"initial\":\"a\",\"states\":{\"a\":{\"jobs\":[$one],\"on\":{\"outcome\":{\"x\":{\"completed\":\"done\"}},\"otherwise\":\"done\"}},$ok_states}}"
bad 'max_transitions: must be an integer' \
    "{\"initial\":\"a\",\"max_transitions\":0,\"states\":{\"a\":{\"jobs\":[$one],\"on\":{\"otherwise\":\"done\"}},$ok_states}}"
bad 'no terminal state' "{\"initial\":\"a\",\"states\":{\"a\":{\"jobs\":[$one],\"on\":{\"otherwise\":\"a\"}}}}"
bad 'states.a.jobs.j: unknown field "command"' \
    "{\"initial\":\"a\",\"states\":{\"a\":{\"jobs\":[{\"name\":\"j\",\"command\":\"x\"}],\"on\":{\"otherwise\":\"done\"}},$ok_states}}"
bad 'states.a.jobs.j: a job needs either "run" or "type"' \
    "{\"initial\":\"a\",\"states\":{\"a\":{\"jobs\":[{\"name\":\"j\"}],\"on\":{\"otherwise\":\"done\"}},$ok_states}}"
bad 'states.a.jobs.j: "timeout" must be a positive duration' \
    "{\"initial\":\"a\",\"states\":{\"a\":{\"jobs\":[{\"name\":\"j\",\"run\":[\"true\"],\"timeout\":\"5\"}],\"on\":{\"otherwise\":\"done\"}},$ok_states}}"
bad 'states.done: a terminal state has no' \
    "{\"initial\":\"done\",\"states\":{\"done\":{\"terminal\":\"completed\",\"jobs\":[$one]}}}"
bad '"terminal" must be "completed" or "failed"' "{\"initial\":\"done\",\"states\":{\"done\":{\"terminal\":\"ok\"}}}"
bad 'duplicate object key' "{\"initial\":\"done\",\"states\":{$ok_states,$ok_states}}"
bad 'expected an object' '[1,2]'
bad 'not valid JSON' '{"initial":'
printf '{"initial":"x","states":{}}\n' >"$T/bad.json"
expect_error 2 'states: must be a non-empty object' aj wf start statemachine --input-file "$T/bad.json"
expect_eq "$before" "$(aj wf ls --json | jq length)" "bad input stored a workflow"
expect_ok aj wf start --help
expect_contains "$OUT" statemachine "wf start --help"
# 9. The jobs of one state run in parallel: each one marks that it started and waits for the
# other's mark, so both complete only when they overlap in time (one after the other, the first
# would give up after its 20 s limit and the run would fail).
meet() { # NAME OTHER
    printf '{"name":"%s","run":["sh","-c","touch %s/meet.%s; i=0; while [ ! -e %s/meet.%s ]; do i=$((i+1)); [ $i -le 400 ] || exit 100; sleep 0.05; done"],"max_attempts":1}' \
        "$1" "$T" "$1" "$T" "$2"
}
cat >"$T/meet.json" <<JSON
{"initial":"both","states":{
  "both":{"jobs":[$(meet a b),$(meet b a)],"on":{"all_success":"done","any_failure":"failed"}},
  "done":{"terminal":"completed"},"failed":{"terminal":"failed"}}}
JSON
start m1 "$T/meet.json"
drain
s=$(show m1)
expect_eq completed "$(jq -r .state <<<"$s")" "m1: the jobs of one state overlapped ($(jq -r .error <<<"$s"))"
expect_eq 2 "$(jq '[.events[] | select(.type=="activity_completed")] | length' <<<"$s")" \
    "m1 completions"

echo "wf statemachine ok"
