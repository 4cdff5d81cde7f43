#!/usr/bin/env bash
# test_payload_lines.sh — `aj submit --payload-lines`: one job per line, every line checked
# first, all or nothing; a blank line is an error naming its line number.
source "${AJ_TEST_LIB:?}"

printf '{"n":1}\n2\n"three"\n[4]\n{"n":5,"s":"x y"}\n' >"$T/five"
expect_ok aj submit --type echo --queue pl --payload-lines "$T/five"
expect_eq 5 "$OUT" "the count"
expect_ok aj job ls --json --queue pl
expect_eq 5 "$(jget length)" "five jobs"
expect_eq '{"n":1}' "$(jget 0.payload)" "line 1"
expect_eq 2 "$(jget 1.payload)" "line 2"
expect_eq three "$(jget 2.payload)" "line 3"
expect_eq '[4]' "$(jget 3.payload)" "line 4"
expect_eq '{"n":5,"s":"x y"}' "$(jget 4.payload)" "line 5"
expect_eq echo "$(jget 4.type)" "type"

# --json, stdin, CRLF, a last line without a newline, shared flags.
expect_ok aj submit --type echo --queue pl2 --priority high --payload-lines "$T/five" --json
expect_eq 5 "$(jget count)" "--json count"
expect_eq 5 "$(jget ids.length)" "--json ids"
expect_eq 512 "$(job_field "$(jget ids.0)" priority)" "flags apply to every line"
expect_ok sh -c "printf '1\r\n2\r\n3' | '$AJ_BIN' --db '$DB' submit --type echo --queue pl3 --payload-lines -"
expect_eq 3 "$OUT" "stdin, CRLF, no final newline"
expect_eq 3 "$(job_field "$(aj job ls --json --queue pl3 | perl -MJSON::PP -e 'print decode_json(join "", <STDIN>)->[2]{id}')" payload)" "the last line"
expect_ok aj submit --type shell --queue pl4 --payload-lines <(printf '{"argv":["true"]}\n{"argv":["echo","x"]}\n')
expect_eq 2 "$OUT" "shell lines"

counts=$(state_counts)

# A bad line 3: exit 2 naming line 3, nothing stored.
printf '{"n":1}\n{"n":2}\n{"n":\n{"n":4}\n' >"$T/bad3"
expect_error 2 "line 3" aj submit --type echo --payload-lines "$T/bad3"
printf '1\n\n3\n' >"$T/blank2"
expect_error 2 "line 2 is blank" aj submit --type echo --payload-lines "$T/blank2"
printf '1\n2\n  \t\n' >"$T/blank3"
expect_error 2 "line 3 is blank" aj submit --type echo --payload-lines "$T/blank3"
printf '1\n2\n\n' >"$T/trailing-blank"
expect_error 2 "line 3 is blank" aj submit --type echo --payload-lines "$T/trailing-blank"
: >"$T/empty"
expect_error 2 "no lines" aj submit --type echo --payload-lines "$T/empty"
expect_error 2 "line 2" aj submit --type shell --payload-lines <(printf '{"argv":["true"]}\n{"x":1}\n')
perl -e 'print "1\n\"", "a" x 67108864, "\"\n"' >"$T/toobig2"
expect_error 2 "line 2 is 67108866 bytes, over the 64 MiB limit" aj submit --type echo --payload-lines "$T/toobig2"
seq 100001 >"$T/toomany"
expect_error 2 "over the batch limit of 100000" aj submit --type echo --payload-lines "$T/toomany"
expect_error 2 "cannot read --payload-lines" aj submit --type echo --payload-lines "$T/missing"
expect_error 2 "exclude each other" aj submit --type echo --payload-lines "$T/five" --payload 1
expect_error 2 "exclude each other" aj submit --payload-lines "$T/five" -- echo
expect_error 2 "missing --type" aj submit --payload-lines "$T/five"
expect_error 2 "--idempotency-key" aj submit --type echo --payload-lines "$T/five" --idempotency-key k
expect_eq "$counts" "$(state_counts)" "nothing stored after bad input"

# A big batch is one submit.
seq 10000 >"$T/many"
expect_ok aj submit --type echo --queue big --payload-lines "$T/many"
expect_eq 10000 "$OUT" "10000 lines"
expect_ok aj stats --json
expect_eq 10015 "$(jget jobs.ready)" "ready after the big batch"
# Lists are complete unless --limit says otherwise (they used to stop at 1000 silently).
expect_ok aj job ls --json --queue big
expect_eq 10000 "$(jget length)" "job ls lists every job by default"
expect_eq 10000 "$(jget 9999.payload)" "the last line's job"
expect_ok aj job ls --queue big --state ready
expect_eq 10001 "$(printf '%s\n' "$OUT" | wc -l)" "job ls table: a header and every job"
expect_ok aj job ls --json --queue big --limit 1001
expect_eq 1001 "$(jget length)" "job ls --limit past a page"

# The jobs run; echo returns each payload.
drain --queue pl
expect_ok aj job ls --json --queue pl --state completed
expect_eq 5 "$(jget length)" "the lines ran"
expect_eq three "$(jget 2.result)" "echo of line 3"

echo "PASS test_payload_lines"
