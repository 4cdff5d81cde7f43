#!/usr/bin/env bash
# test_worker_env.sh — what a shell job gets of its worker's environment: never AJ_DB (the store's
# location, with which a job could open the store and change other jobs) unless the worker passes
# it with --pass-env; everything else by default; with --env-clear only what --pass-env names.
source "${AJ_TEST_LIB:?}"

# A job that prints the variables under test ("unset" for a missing one).
probe() {
    submit -- sh -c 'echo "db=${AJ_DB-unset} secret=${SECRET_TOKEN-unset} lang=${AJ_TEST_LANG-unset} id=${AJ_JOB_ID-unset}"'
}

# drain_env ARGS...: drains with the store named only by AJ_DB, as an operator's unit file would,
# and a secret in the environment.
drain_env() {
    run env AJ_DB="$DB" SECRET_TOKEN=s3cret AJ_TEST_LANG=de timeout 60 "$AJ_BIN" worker --drain "$@"
    [ "$RC" = 0 ] || fail "aj worker --drain $* exited $RC"
}

output() {
    job_field "$1" result.output
}

# Default: the environment without AJ_DB.
id=$(probe)
drain_env
expect_eq "db=unset secret=s3cret lang=de id=$id" "$(output "$id")" "default environment"

# --env-clear: neither AJ_DB nor the secret; the job's own variables still.
id=$(probe)
drain_env --env-clear
expect_eq "db=unset secret=unset lang=unset id=$id" "$(output "$id")" "--env-clear"

# --pass-env names what passes (repeatable, both spellings), AJ_DB included when asked.
id=$(probe)
drain_env --env-clear --pass-env AJ_TEST_LANG --pass-env=AJ_DB
expect_eq "db=$DB secret=unset lang=de id=$id" "$(output "$id")" "--env-clear --pass-env"
id=$(probe)
drain_env --pass-env AJ_DB
expect_eq "db=$DB secret=s3cret lang=de id=$id" "$(output "$id")" "--pass-env AJ_DB alone"

# The payload's env is the submitter's choice and is set on top.
id=$(submit --type shell --payload '{"argv":["sh","-c","echo ${SECRET_TOKEN-unset}"],"env":{"SECRET_TOKEN":"given"}}')
drain_env --env-clear
expect_eq "given" "$(output "$id")" "the payload's env with --env-clear"

# Bad names are refused before anything runs.
expect_error 2 "not a variable name" aj worker --drain --pass-env 'A=B'
expect_error 2 "not a variable name" aj worker --drain --pass-env ''
expect_error 2 "needs a value" aj worker --drain --pass-env
expect_ok aj worker --help
expect_contains "$OUT" "--env-clear" "worker --help"
expect_contains "$OUT" "--pass-env NAME" "worker --help"

echo "PASS test_worker_env"
