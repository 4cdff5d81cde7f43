#!/usr/bin/env bash
# test_worker_shell.sh — the built-in shell and echo types run by `aj worker --drain`: results,
# environment, merged output, stdin, permanent failure (exit 100), retries up to max attempts,
# execution timeout (the process is killed), env and cwd, and logfmt logs on stderr.
source "${AJ_TEST_LIB:?}"

Q=(--queue wq)
ok=$(submit "${Q[@]}" -- sh -c 'echo "id=$AJ_JOB_ID attempt=$AJ_ATTEMPT queue=$AJ_QUEUE"')
merged=$(submit "${Q[@]}" -- sh -c 'echo out; echo err >&2; cat; echo end')
envcwd=$(submit "${Q[@]}" --type shell \
    --payload '{"argv":["/bin/sh","-c","echo $AJ_TEST_VAR; pwd"],"env":{"AJ_TEST_VAR":"bar"},"cwd":"/"}')
perm=$(submit "${Q[@]}" -- sh -c 'echo giving up; exit 100')
retry=$(submit "${Q[@]}" --max-attempts 2 --backoff fixed:10ms -- sh -c 'echo "try $AJ_ATTEMPT"; exit 1')
again=$(submit "${Q[@]}" --max-attempts 3 --backoff fixed:10ms \
    -- sh -c '[ "$AJ_ATTEMPT" -ge 2 ] && echo "ok on $AJ_ATTEMPT" || exit 3')
killed=$(submit "${Q[@]}" --max-attempts 1 -- sh -c 'kill -9 $$')
slow=$(submit "${Q[@]}" --timeout 1s --max-attempts 1 -- sleep 31.4159)
echo_id=$(submit "${Q[@]}" --type echo --payload '{"x":[1,2],"s":"é"}')
other=$(submit --queue other --type echo)

start=$(date +%s)
drain "${Q[@]}" --concurrency 4
elapsed=$(($(date +%s) - start))
[ "$elapsed" -lt 20 ] || fail "the drain took ${elapsed}s"
worker_log=$ERR
worker_out=$OUT

# Success: result {"exit_code":0,"signal":...,"output":...}; environment AJ_JOB_ID/ATTEMPT/QUEUE.
expect_ok aj job show "$ok" --json
expect_eq completed "$(jget state)" "exit 0 completes"
expect_eq 1 "$(jget attempts)" "attempts of a job that succeeded"
expect_eq 0 "$(jget result.exit_code)" "result exit_code"
expect_eq "id=$ok attempt=1 queue=wq" "$(jget result.output)" "output and environment"
expect_match '^(0|null)$' "$(jget result.signal)" "result signal"
[ "$(jget finished_at)" != null ] || fail "finished_at of a completed job"

# stdout and stderr merged; stdin is /dev/null (cat ends at once).
expect_eq "out
err
end" "$(job_field "$merged" result.output)" "merged output, stdin from /dev/null"
expect_eq "bar
/" "$(job_field "$envcwd" result.output)" "env and cwd"

# Exit 100: dead at once, reason permanent_failure.
expect_ok aj job show "$perm" --json
expect_eq dead "$(jget state)" "exit 100"
expect_eq permanent_failure "$(jget dead_reason)" "exit 100 reason"
expect_eq 1 "$(jget attempts)" "exit 100 is not retried"
[ "$(jget error)" != null ] || fail "a dead job keeps its error"

# Exit 1 with --max-attempts 2: dead after 2 attempts, reason max_attempts.
expect_ok aj job show "$retry" --json
expect_eq dead "$(jget state)" "exit 1 twice"
expect_eq max_attempts "$(jget dead_reason)" "exit 1 twice reason"
expect_eq 2 "$(jget attempts)" "attempts of a job that always fails"
expect_ok aj job show "$again" --json
expect_eq completed "$(jget state)" "a job that succeeds on its second attempt"
expect_eq 2 "$(jget attempts)" "attempts of a job that succeeds on retry"
expect_eq "ok on 2" "$(jget result.output)" "AJ_ATTEMPT on the retry"

# A signal is a failure.
expect_ok aj job show "$killed" --json
expect_eq dead "$(jget state)" "killed by a signal"
expect_eq max_attempts "$(jget dead_reason)" "killed by a signal, no attempts left"

# --timeout 1s on sleep: dead with reason timeout, and the process is gone.
expect_ok aj job show "$slow" --json
expect_eq dead "$(jget state)" "timed out"
expect_eq timeout "$(jget dead_reason)" "timed out reason"
pgrep -f "sleep 31.4159" >/dev/null && fail "the timed-out process still runs"

# echo: the result is the payload.
expect_eq '{"s":"é","x":[1,2]}' "$(job_field "$echo_id" result)" "echo result"

# --queue wq left the other queue alone.
expect_eq ready "$(job_field "$other" state)" "a job of another queue"

# Logs: logfmt lines on stderr, nothing on stdout.
expect_line '^ts=[^ ]+ level=info msg=' "$worker_log" "worker log format"
expect_line 'msg=serving queues=wq concurrency=4 drain=1' "$worker_log" "worker start line"
expect_line 'msg=drained' "$worker_log" "worker drained line"
expect_line 'msg=exiting status=0' "$worker_log" "worker exit line"
[ -z "$worker_out" ] || fail "the worker printed on stdout"

# Without --queue the worker serves every queue.
drain
expect_eq completed "$(job_field "$other" state)" "a worker without --queue"

echo "PASS test_worker_shell"
