#!/usr/bin/env bash
# test_deps_bad_input.sh — bad input to `aj submit --after/--on-dep-failure`, `aj dag submit`
# and `aj dag show` exits non-zero with one line "aj: ..." naming the problem, and stores
# nothing: bad syntax, bad JSON and missing fields exit 2, as do cycles (the message names the
# cycle path), self-edges, unknown names, duplicate names and a path of 101 jobs; an unknown
# job id exits 3.
source "${AJ_TEST_LIB:?}"

keep=$(submit --type echo)
before=$(state_counts)

# --- aj submit --after ---
expect_error 2 "--after 'x': item 1 is not a job id" aj submit --type echo --after x
expect_error 2 "--after '1,,2': item 2" aj submit --type echo --after 1,,2
expect_error 2 "--after '0'" aj submit --type echo --after 0
expect_error 2 "--after" aj submit --type echo --after
expect_error 2 "--on-dep-failure needs --after" aj submit --type echo --on-dep-failure wait
expect_error 2 "--on-dep-failure" aj submit --type echo --after "$keep" --on-dep-failure maybe
expect_error 3 "dependency 987654321: no such job" aj submit --type echo --after 987654321
expect_error 3 "987654321" aj submit --type echo --after "$keep,987654321"

# --- aj dag submit ---
bad_dag() {
    local code=$1 pattern=$2 text=$3
    printf '%s' "$text" >"$T/g.json"
    expect_error "$code" "$pattern" aj dag submit "$T/g.json"
}
bad_dag 2 "not valid JSON: line 1" '{"jobs":['
bad_dag 2 "not valid JSON" ''
bad_dag 2 "must be an object" '[1]'
bad_dag 2 'has no "jobs"' '{}'
bad_dag 2 'unknown field "job"' '{"job":[]}'
bad_dag 2 '"jobs" must be a non-empty array' '{"jobs":[]}'
bad_dag 2 'job 1 must be an object' '{"jobs":[1]}'
bad_dag 2 'job 1 has no "name"' '{"jobs":[{"run":["true"]}]}'
bad_dag 2 "job 1 ('a') needs \"run\"" '{"jobs":[{"name":"a"}]}'
bad_dag 2 '"run" must be a non-empty array of strings' '{"jobs":[{"name":"a","run":[]}]}'
bad_dag 2 '"run" must be a string' '{"jobs":[{"name":"a","run":[1]}]}'
bad_dag 2 '"run" makes a shell job' '{"jobs":[{"name":"a","run":["x"],"type":"echo"}]}'
bad_dag 2 'unknown field "retries"' '{"jobs":[{"name":"a","run":["x"],"retries":3}]}'
bad_dag 2 '"after" must be an array' '{"jobs":[{"name":"a","run":["x"],"after":"b"}]}'
bad_dag 2 '"timeout" is not a duration' '{"jobs":[{"name":"a","run":["x"],"timeout":"1y"}]}'
bad_dag 2 '"on_dep_failure" must be cascade, ignore or wait' \
    '{"jobs":[{"name":"a","run":["x"],"on_dep_failure":"skip"}]}'
bad_dag 2 'job 2: "name" may not hold whitespace or control characters' \
    '{"jobs":[{"name":"a","run":["x"]},{"name":"b c","run":["x"]}]}'
bad_dag 2 'job 1: "name" may not hold whitespace' '{"jobs":[{"name":"a\tb","run":["x"]}]}'
bad_dag 2 "queue name" '{"jobs":[{"name":"a","run":["x"],"queue":"a b"}]}'
bad_dag 2 "cycle: a -> b -> c -> a" \
    '{"jobs":[{"name":"a","after":["c"],"run":["x"]},{"name":"b","after":["a"],"run":["x"]},{"name":"c","after":["b"],"run":["x"]}]}'
bad_dag 2 "job 'a' depends on itself" '{"jobs":[{"name":"a","after":["a"],"run":["x"]}]}'
bad_dag 2 "job 'b' waits on unknown job 'nope'" \
    '{"jobs":[{"name":"a","run":["x"]},{"name":"b","after":["nope"],"run":["x"]}]}'
bad_dag 2 "duplicate job name 'a' (jobs 1 and 2)" \
    '{"jobs":[{"name":"a","run":["x"]},{"name":"a","run":["y"]}]}'
bad_dag 3 "dependency 987654321: no such job" \
    '{"jobs":[{"name":"a","run":["x"]},{"name":"b","after":["a",987654321],"run":["x"]}]}'
# A path of 101 jobs: rejected; 100 is the limit.
chain() {
    perl -e 'print "{\"jobs\":[", join(",", map { "{\"name\":\"s$_\",\"type\":\"echo\"" .
        ($_ ? ",\"after\":[\"s" . ($_ - 1) . "\"]" : "") . "}" } 0 .. $ARGV[0] - 1), "]}"' "$1"
}
bad_dag 2 "job 's100' is at depth 101" "$(chain 101)"
perl -e 'print "{\"jobs\":[", join(",", map { "{\"name\":\"j$_\",\"type\":\"echo\"}" } 0 .. 100000), "]}"' >"$T/too_many.json"
expect_error 2 "graph has 100001 jobs, over the limit of 100000" aj dag submit "$T/too_many.json"
expect_error 2 "cannot read" aj dag submit "$T/missing.json"
expect_error 2 "missing FILE.json" aj dag submit
expect_eq "$before" "$(state_counts)" "nothing stored by bad input"

# The limit itself is accepted, and one more job through --after is not.
chain 100 >"$T/c100.json"
expect_ok aj dag submit "$T/c100.json" --json
last=$(jget s99)
expect_error 2 "over the limit of 100" aj submit --type echo --after "$last"

# --- aj dag show ---
expect_error 2 "not a positive decimal integer" aj dag show x
expect_error 2 "missing JOBID" aj dag show
expect_error 3 "987654321" aj dag show 987654321
expect_ok aj dag show "$keep" --json
expect_eq 1 "$(jget jobs.length)" "a job without dependencies is a graph of one"
expect_eq null "$(jget graph)" "not a submitted graph"

echo "PASS test_deps_bad_input"
