#!/usr/bin/env bash
# test_priority.sh — with one worker thread, ready jobs run lowest priority number first, and
# FIFO within equal priority.
source "${AJ_TEST_LIB:?}"

order="$T/order"
# job NAME PRIORITY: a shell job that appends NAME to the order file.
job() {
    submit --priority "$2" -- sh -c 'echo "$1" >>"$2"' sh "$1" "$order" >/dev/null
}
job low low
job max 4294967295
job normal1 normal
job ten 10
job critical critical
job high high
job normal2 1024
job zero 0
job low2 2048
job normal3 normal

drain --concurrency 1
expect_eq "critical zero ten high normal1 normal2 normal3 low low2 max" "$(tr '\n' ' ' <"$order" | sed 's/ $//')" \
    "the order jobs ran in"

echo "PASS test_priority"
