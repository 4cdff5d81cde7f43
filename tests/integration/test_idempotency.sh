#!/usr/bin/env bash
# test_idempotency.sh — an idempotency key returns the first job's id and creates nothing; the
# same key for a different job is a conflict (exit 4); keys are per queue.
source "${AJ_TEST_LIB:?}"

a=$(submit --type echo --payload '{"n":1}' --idempotency-key order-42)
b=$(submit --type echo --payload '{"n":1}' --idempotency-key order-42)
expect_eq "$a" "$b" "the same key returns the first id"
expect_ok aj submit --type echo --payload '{"n":1}' --idempotency-key order-42 --json
expect_eq "{\"id\":$a}" "$OUT" "the same key with --json"
expect_eq order-42 "$(job_field "$a" idempotency_key)" "idempotency_key shown"
expect_ok aj job ls --json
expect_eq 1 "$(jget length)" "a repeated key creates nothing"
counts=$(state_counts)

# The same key with another payload or type: exit 4, nothing created.
expect_error 4 "" aj submit --type echo --payload '{"n":2}' --idempotency-key order-42
expect_error 4 "" aj submit --type other --payload '{"n":1}' --idempotency-key order-42
expect_eq "$counts" "$(state_counts)" "a conflicting key creates nothing"

# Keys are per queue; other keys are other jobs.
c=$(submit --queue q2 --type echo --payload '{"n":1}' --idempotency-key order-42)
[ "$c" != "$a" ] || fail "the same key in another queue returned the first queue's job"
d=$(submit --type echo --payload '{"n":1}' --idempotency-key order-43)
[ "$d" != "$a" ] || fail "another key returned the same job"

# The key still holds once the first job has finished.
drain
e=$(submit --type echo --payload '{"n":1}' --idempotency-key order-42)
expect_eq "$a" "$e" "the key after the job completed"

# Keys that are not printable text are refused like names (exit 2), nothing created.
counts=$(state_counts)
expect_error 2 "contains a control character" aj submit --type echo --idempotency-key $'k\x01'
expect_error 2 "is not valid UTF-8" aj submit --type echo --idempotency-key $'k\xff'
expect_eq "$counts" "$(state_counts)" "refused keys create nothing"

echo "PASS test_idempotency"
