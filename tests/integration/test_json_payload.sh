#!/usr/bin/env bash
# test_json_payload.sh — payloads are JSON values as RFC 8259 defines them: valid text that
# jansson cannot hold (integers beyond 64 bits, 1e999, duplicate keys) is accepted and shown
# byte for byte, embedded as JSON; the whitespace around a value is not part of it (a file's
# final newline does not count against the 64 MiB limit); invalid text is refused with its line
# and column; a shell payload is held at submit to the rules its runner applies.
source "${AJ_TEST_LIB:?}"

# Valid JSON that jansson would refuse or rewrite: kept exactly, embedded as JSON everywhere.
big='{"n":123456789012345678901234567890,"u":18446744073709551615,"r":1e999,"d":{"a":1,"a":2},"s":"\ud83d\ude00\u0000"}'
id=$(submit --type echo --queue jp --payload "$big")
expect_ok aj job show "$id" --json
expect_contains "$OUT" "\"payload\":$big" "a big-number payload embedded exactly"
expect_ok aj job show "$id"
expect_line "^payload: +\\{\"n\":123456789012345678901234567890," "$OUT" "human show of the payload"
drain --queue jp
expect_ok aj job ls --json --queue jp
expect_contains "$OUT" "\"result\":$big" "the echo result embedded exactly in job ls"
expect_ok aj job wait "$id" --json
expect_contains "$OUT" "\"payload\":$big" "job wait --json"
perl -MJSON::PP -e 'JSON::PP->new->allow_bignum->decode($ARGV[0])' "$OUT" ||
    fail "job wait --json is not valid JSON"

# Every JSON value kind at the top level, and the ways to give it.
for v in 0 -0 -1.5e-3 '"s"' true false null '[]' '{}' '[{"a":[]}]' 1E+2; do
    i=$(submit --type echo --payload "$v")
    expect_ok aj job show "$i" --json
    expect_contains "$OUT" "\"payload\":$v," "payload $v"
done

# The whitespace around the value is not part of it; the whitespace inside is kept out of the
# one-line JSON output.
i=$(submit --type echo --payload $' \n {"a": [1, 2]}\n\t')
expect_ok aj job show "$i" --json
expect_contains "$OUT" '"payload":{"a":[1,2]},' "whitespace around and inside"
printf '{\n  "from": "file",\n  "list": [ 1,\n 2 ]\n}\n' >"$T/pretty.json"
i=$(submit --type echo --queue pf --payload-file "$T/pretty.json")
expect_ok aj job ls --json --queue pf
expect_eq 1 "$(jcount "\$_->{id} == $i && \$_->{payload}{from} eq 'file'")" "a pretty file payload"
[ "$(printf '%s\n' "$OUT" | grep -c '"from":"file"')" = 1 ] || fail "a job spans several lines of job ls --json"
i=$(printf '  [1]  ' | "$AJ_BIN" --db "$DB" submit --type echo --queue lines --payload-lines -)
expect_eq 1 "$i" "a payload line with spaces around it"

# Exactly 64 MiB with a final newline (as editors save files) is 64 MiB; one byte more is not.
# (Read back with jq: JSON::PP takes minutes over 64 MiB.)
if ! sanitized; then
perl -e 'print "\"", "a" x (67108864 - 2), "\"\n"' >"$T/max-nl.json"
i=$(submit --type echo --payload-file "$T/max-nl.json")
expect_eq 67108862 "$("$AJ_BIN" --db "$DB" job show "$i" --json | jq -j .payload | wc -c)" \
    "64 MiB and a newline"
fi
perl -e 'print "\n\"", "a" x (67108864 - 1), "\"\n"' >"$T/over-nl.json"
expect_error 2 "payload is 67108865 bytes, over the 64 MiB limit" \
    aj submit --type echo --payload-file "$T/over-nl.json"

i=$(submit --type echo --queue deep --payload "$(perl -e 'print "[" x 2048, "]" x 2048')")
[ -n "$i" ] || fail "2048 levels of nesting"
counts=$(state_counts)

# Invalid JSON: one line naming where and what.
bad() {
    expect_error 2 "$1" aj submit --type echo --payload "$2"
}
bad "line 1, column 1: no JSON value" ""
bad "line 1, column 2: no JSON value" " "
bad "column 4: expected a JSON value, found ']'" '[1,]'
bad "expected ':' after the key" '{"a"}'
bad "a number may not start with 0" '01'
bad "expected a digit after the decimal point" '1.'
bad "expected a JSON value, found '+'" '+1'
bad "expected a JSON value, found '.'" '.5'
bad "expected true" 'tru'
bad "expected null" 'nul'
bad "invalid escape" '"\x"'
bad "high surrogate without a low one" '"\ud800"'
bad "low surrogate without a high one" '"\udc00"'
bad "control character 0x09" "$(printf '"\t"')"
bad "invalid UTF-8 (byte 0xFF)" "$(printf '"\xff"')"
bad "invalid UTF-8 (byte 0xED)" "$(printf '"\xed\xa0\x80"')" # an encoded surrogate
bad "invalid UTF-8 (byte 0xC0)" "$(printf '"\xc0\xaf"')"     # overlong
bad "unexpected '2' after the JSON value" '1 2'
bad "no closing quote" '"abc'
bad "expected a string key, found '}'" '{"a":1,}'
bad "nest deeper than 2048" "$(perl -e 'print "[" x 2049, "]" x 2049')"
printf '{\n  "a": 1,\n  "b": \n}\n' >"$T/bad.json"
expect_error 2 "line 4, column 1: expected a JSON value, found '}'" \
    aj submit --type echo --payload-file "$T/bad.json"
printf '\xef\xbb\xbf{"a":1}\n' >"$T/bom.json"
expect_error 2 "a UTF-8 byte order mark is not JSON" aj submit --type echo --payload-file "$T/bom.json"
printf '1\n[1,\n' >"$T/bad-lines"
expect_error 2 "--payload-lines line 2 is not valid JSON: column 4:" \
    aj submit --type echo --payload-lines "$T/bad-lines"

# Shell payloads: what the runner would refuse is refused at submit, not dead-lettered later.
sh_bad() {
    expect_error 2 "$1" aj submit --type shell --payload "$2"
}
sh_bad "\"env\" names must be non-empty, without '='" '{"argv":["true"],"env":{"A=B":"c"}}'
sh_bad "\"env\" names must be non-empty, without '='" '{"argv":["true"],"env":{"":"c"}}'
sh_bad "\"env\" must be an object of strings" '{"argv":["true"],"env":{"A":1}}'
sh_bad "\"env\" must be an object of strings" '{"argv":["true"],"env":null}'
sh_bad "\"env\" has more than 1024 entries" \
    "{\"argv\":[\"true\"],\"env\":{$(seq 1025 | sed 's/.*/"V&":"x"/' | paste -sd,)}}"
sh_bad "\"cwd\" must be a non-empty string" '{"argv":["true"],"cwd":""}'
sh_bad "\"cwd\" must be a non-empty string" '{"argv":["true"],"cwd":null}'
sh_bad 'a string holds \u0000' '{"argv":["echo","a\u0000b"]}'
sh_bad "the shell runner cannot read it" '{"argv":["true"],"n":1e999}'
sh_bad '"argv" item 1 is not a string' '{"argv":["true",1]}'
expect_error 2 "argument 2 after '--' is not valid UTF-8" aj submit -- echo "$(printf '\xff')"
expect_eq "$counts" "$(state_counts)" "nothing stored after bad payloads"

# The shell rules that pass at submit pass at run time too.
ok=$(submit --queue sh --type shell --payload '{"argv":["sh","-c","echo \"$V $AJ_QUEUE\""],"env":{"V":"é ü"},"cwd":"/"}')
drain --queue sh
expect_eq completed "$(job_field "$ok" state)" "a shell payload with env and cwd"
expect_eq "é ü sh" "$(job_field "$ok" result.output)" "its output"

echo "PASS test_json_payload"
