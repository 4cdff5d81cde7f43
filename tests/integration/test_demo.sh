#!/usr/bin/env bash
# test_demo.sh — `aj demo`, the main job of the README: a small workload runs to exactly the
# expected outcome, with progress and a summary; --json prints the summary as one object; the
# demo store can be reused.
source "${AJ_TEST_LIB:?}"

cd "$T" || fail "cannot cd to $T"
expect_ok "$AJ_BIN" demo --jobs 300 --concurrency 2
[ -f "$T/aj-demo.db" ] || fail "the demo did not use sqlite:aj-demo.db by default"
expect_line '^demo: 300 echo jobs and 5 shell jobs on queue demo-[0-9]{8}-[0-9]{6}\.[0-9]{3} in sqlite:aj-demo\.db, 2 workers$' "$OUT" "demo header"
expect_line 'jobs submitted' "$OUT" "submit progress line"
expect_line '305/305 jobs finished' "$OUT" "progress line"
expect_line '^job [0-9]+ said: hello from job [0-9]+ \(attempt 1\)$' "$OUT" "a shell job's output"
expect_line '^  jobs completed +304 \(300 echo, 4 shell\)$' "$OUT" "completed"
expect_line '^  retried +1 ' "$OUT" "retried"
expect_line '^  dead-lettered +1 ' "$OUT" "dead-lettered"
expect_line '^  throughput +[0-9]+ jobs/s$' "$OUT" "throughput"
expect_line '^  fsyncs per job +[0-9.]+ ' "$OUT" "fsyncs per job"
expect_line '^  submit-to-start +p50 [0-9]+\.[0-9]{3} ms, p99 [0-9]+\.[0-9]{3} ms$' "$OUT" "latency"
expect_line '^outcome: as expected$' "$OUT" "outcome"

# Again on the same store, with --json and --db: only this run's jobs count.
expect_ok "$AJ_BIN" --db "sqlite:$T/aj-demo.db" demo --jobs 50 --json
expect_eq true "$(jget as_expected)" "demo --json as_expected"
expect_eq 55 "$(jget jobs)" "demo --json jobs"
expect_eq 54 "$(jget completed)" "demo --json completed"
expect_eq 1 "$(jget dead_lettered)" "demo --json dead_lettered"
expect_ok "$AJ_BIN" --db "sqlite:$T/aj-demo.db" dlq ls --json
expect_eq 2 "$(jget length)" "each demo run dead-letters one job"

echo "PASS test_demo"
