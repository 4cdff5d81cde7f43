#!/usr/bin/env bash
# test_dlq.sh — the dead-letter queue: ls with every filter, show, export, redrive (same id,
# attempts reset) by id and by filter, purge by id and by filter, and their exit codes.
source "${AJ_TEST_LIB:?}"

d1=$(submit --queue dq -- sh -c 'echo one; exit 100')
d2=$(submit --queue dq -- sh -c 'exit 100')
d3=$(submit --queue dq -- sh -c 'exit 100')
d4=$(submit --queue other -- sh -c 'exit 100')
m1=$(submit --queue dq --max-attempts 1 -- sh -c 'exit 1')
done_id=$(submit --queue dq --type echo)
drain

# ls: every dead job; filters.
expect_ok aj dlq ls --json
expect_eq 5 "$(jget length)" "dlq ls"
all=$OUT
expect_eq 5 "$(jcount '$_->{state} eq "dead"' "$all")" "dlq ls lists dead jobs only"
expect_eq "$d1 $d2 $d3 $d4 $m1" "$(perl -MJSON::PP -e 'print join " ", map { $_->{id} } @{decode_json($ARGV[0])}' "$all")" "dlq ls in id order"
expect_ok aj dlq ls --json --queue dq
expect_eq 4 "$(jget length)" "dlq ls --queue"
expect_ok aj dlq ls --json --reason permanent_failure
expect_eq 4 "$(jget length)" "dlq ls --reason permanent_failure"
expect_ok aj dlq ls --json --reason max_attempts
expect_eq 1 "$(jget length)" "dlq ls --reason max_attempts"
expect_eq "$m1" "$(jget 0.id)" "dlq ls --reason max_attempts id"
expect_ok aj dlq ls --json --type shell
expect_eq 5 "$(jget length)" "dlq ls --type shell"
expect_ok aj dlq ls --json --type echo
expect_eq 0 "$(jget length)" "dlq ls --type echo"
expect_eq "[]" "$OUT" "an empty list is []"
expect_ok aj dlq ls --json --older-than 1h
expect_eq 0 "$(jget length)" "dlq ls --older-than 1h"
expect_ok aj dlq ls --json --limit 2
expect_eq 2 "$(jget length)" "dlq ls --limit"
m1_error=$(jget error "$(aj dlq show "$m1" --json)")
[ "$m1_error" != null ] && [ -n "$m1_error" ] || fail "a dead job has no error"
want=$(perl -MJSON::PP -e 'my ($a, $e) = @ARGV; print scalar grep { index($_->{error} // "", $e) >= 0 } @{JSON::PP->new->decode($a)}' "$all" "$m1_error")
expect_ok aj dlq ls --json --error "$m1_error"
expect_eq "$want" "$(jget length)" "dlq ls --error"
expect_eq 1 "$(jcount "\$_->{id} == $m1")" "dlq ls --error finds the job"
expect_ok aj dlq ls
expect_match '^ID +QUEUE +TYPE +REASON +ATTEMPTS' "$OUT" "dlq ls header"
expect_line "^$m1 +dq +shell +max_attempts +1/1 " "$OUT" "dlq ls row"

# show: a dead job; a job that is not dead is not in the dead-letter queue (exit 3).
expect_ok aj dlq show "$d1" --json
expect_eq "$d1" "$(jget id)" "dlq show id"
expect_eq permanent_failure "$(jget dead_reason)" "dlq show reason"
[ "$(jget dead_at)" != null ] || fail "dlq show: dead_at"
expect_ok aj dlq show "$d1"
expect_line '^dead reason: +permanent_failure$' "$OUT" "dlq show human"
expect_error 3 "not in the dead-letter queue" aj dlq show "$done_id"

# export: always a JSON array; filters apply.
expect_ok aj dlq export
expect_eq 5 "$(jget length)" "dlq export"
expect_eq "$d1" "$(jget 0.id)" "dlq export first id"
expect_ok aj dlq export --queue other
expect_eq 1 "$(jget length)" "dlq export --queue"
expect_eq "$d4" "$(jget 0.id)" "dlq export --queue id"

# redrive by id: same id, attempts reset, ready again; not dead any more: exit 4.
expect_ok aj dlq redrive "$d1"
expect_eq 1 "$OUT" "dlq redrive prints the count"
expect_ok aj job show "$d1" --json
expect_eq ready "$(jget state)" "a redriven job is ready"
expect_eq 0 "$(jget attempts)" "a redriven job's attempts are reset"
expect_eq 1 "$(jget redrives)" "redrives"
expect_eq null "$(jget dead_reason)" "a redriven job has no dead reason"
expect_error 4 "job $d1 is not in the dead-letter queue" aj dlq redrive "$d1"
expect_error 4 "not in the dead-letter queue" aj dlq purge "$done_id"

# Several ids: the good ones are done, each bad one is reported, the first decides the exit.
expect_exit 4 aj dlq redrive "$d2" "$done_id"
expect_eq ready "$(job_field "$d2" state)" "redrive of several ids"
expect_eq 1 "$(printf '%s\n' "$ERR" | wc -l)" "one error line per failed id"

# redrive --all with filters.
expect_ok aj dlq redrive --all --queue dq --reason permanent_failure --json
expect_eq 1 "$(jget count)" "dlq redrive --all --queue --reason"
expect_eq "[$d3]" "$(jget ids)" "dlq redrive --all ids"
expect_ok aj dlq redrive --all --queue nothing-here
expect_eq 0 "$OUT" "redrive --all with no match"

# They run again and die again: attempts count from zero.
drain --queue dq
expect_ok aj job show "$d1" --json
expect_eq dead "$(jget state)" "a redriven job that fails again"
expect_eq 1 "$(jget attempts)" "attempts after a redrive"
expect_eq 1 "$(jget redrives)" "redrives after dying again"

# purge by id: the job is gone.
expect_ok aj dlq purge "$d1"
expect_eq 1 "$OUT" "dlq purge prints the count"
expect_error 3 "job $d1 not found" aj job show "$d1"
expect_error 3 "job $d1 not found" aj dlq purge "$d1"

# purge --all with a filter, then everything.
expect_ok aj dlq purge --all --queue other --json
expect_eq 1 "$(jget count)" "dlq purge --all --queue"
expect_error 3 "not found" aj job show "$d4"
expect_ok aj dlq ls --json
remaining=$(jget length)
expect_ok aj dlq purge --all
expect_eq "$remaining" "$OUT" "dlq purge --all"
expect_ok aj dlq ls --json
expect_eq 0 "$(jget length)" "the dead-letter queue is empty"
expect_eq completed "$(job_field "$done_id" state)" "purge leaves other jobs alone"
expect_ok aj stats --json
expect_eq 0 "$(jget jobs.dead)" "stats after purge"

echo "PASS test_dlq"
