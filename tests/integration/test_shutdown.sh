#!/usr/bin/env bash
# Graceful shutdown of `aj worker`: SIGTERM stops claiming and lets a running job finish within
# the deadline; past --shutdown-timeout the job's process group is killed and the job is released
# (its attempt not counted), so another worker can run it.
set -euo pipefail
AJ=${AJ_BIN:?}
dir=$(mktemp -d)
wpid=
cleanup() { [ -n "$wpid" ] && kill -9 "$wpid" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
export AJ_DB="sqlite:$dir/aj.db"

wait_state() { # ID STATE
    for _ in $(seq 1 200); do
        [ "$("$AJ" job show "$1" --json | jq -r .state)" = "$2" ] && return 0
        sleep 0.05
    done
    fail "job $1 never became $2 (is $("$AJ" job show "$1" --json | jq -r .state))"
}

# 1. A job shorter than the deadline finishes; the worker exits 0.
id=$("$AJ" submit -- sh -c 'sleep 1; echo finished')
"$AJ" worker --concurrency 1 2>"$dir/w1.log" &
wpid=$!
wait_state "$id" running
kill -TERM "$wpid"
wait "$wpid" || fail "worker exited $? after SIGTERM"
wpid=
[ "$("$AJ" job show "$id" --json | jq -r .state)" = completed ] || fail "job did not complete"
"$AJ" job show "$id" --json | jq -e '.result.output | contains("finished")' >/dev/null ||
    fail "output missing"

# 2. A job longer than the deadline is stopped and released; its side effect file shows that
# the process group (including a grandchild) was killed.
id=$("$AJ" submit -- sh -c "sleep 30 & echo \$! > $dir/grandchild; wait")
"$AJ" worker --concurrency 1 --shutdown-timeout 500ms 2>"$dir/w2.log" &
wpid=$!
wait_state "$id" running
for _ in $(seq 1 100); do [ -s "$dir/grandchild" ] && break; sleep 0.05; done
start=$(date +%s%N)
kill -INT "$wpid"
wait "$wpid" || fail "worker exited $? after SIGINT"
wpid=
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
[ "$elapsed_ms" -lt 10000 ] || fail "shutdown took ${elapsed_ms} ms"
job=$("$AJ" job show "$id" --json)
[ "$(jq -r .state <<<"$job")" = ready ] || fail "job not released: $job"
[ "$(jq -r .attempts <<<"$job")" = 0 ] || fail "released attempt was counted: $job"
gc=$(cat "$dir/grandchild")
for _ in $(seq 1 40); do kill -0 "$gc" 2>/dev/null || break; sleep 0.05; done
if kill -0 "$gc" 2>/dev/null && ! grep -q zombie "/proc/$gc/status" 2>/dev/null &&
    ! grep -q '^State:.*Z' "/proc/$gc/status" 2>/dev/null; then
    fail "grandchild $gc survived the shutdown"
fi
echo "shutdown ok"
