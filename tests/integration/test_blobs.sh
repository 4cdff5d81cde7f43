#!/usr/bin/env bash
# test_blobs.sh — large payloads through the real aj binary: a 10 MiB payload file submitted
# twice (and once more from stdin) is stored once (aj stats --json "blobs": one blob, its chunk
# count, three references); shell jobs get the exact bytes (sha256sum of their stdin, which is
# the payload's "stdin" string); `aj job show` returns them; a dead job redriven still has its
# payload; purging dead jobs drops their references and, with the last one, the chunks;
# exactly 64 MiB is accepted (an echo result of the same bytes shares its blob); 64 MiB and one
# byte is refused naming the size and the limit, with nothing stored; `aj check` agrees.
source "${AJ_TEST_LIB:?}"
command -v jq >/dev/null || { echo "jq is needed" >&2; exit 77; }

blobs() {
    local s
    s=$("$AJ_BIN" --db "$DB" stats --json) || fail "aj stats failed"
    jget "blobs.$1" "$s"
}

# drain: as lib.sh's, with room for hashing 64 MiB several times in a sanitizer build.
drain() {
    run timeout 600 "$AJ_BIN" --db "$DB" worker --drain
    [ "$RC" = 0 ] || fail "aj worker --drain exited $RC"
}

# show ID FILTER: a field of `aj job show ID --json`, read with jq (JSON::PP takes minutes over
# tens of MiB).
show() {
    "$AJ_BIN" --db "$DB" job show "$1" --json >"$T/show.json" || fail "aj job show $1 failed"
    jq -r "$2" "$T/show.json" || fail "jq $2 on job $1"
}

show_state() {
    show "$1" .state
}

# payload FILE TAG: a shell payload whose program hashes its stdin (the 10 MiB of base64 in
# $T/data) into $T/got.ID, or exits 100 (dead at once) while $T/die exists. TAG makes payloads
# differ.
payload() {
    {
        printf '{"argv":["sh","-c","[ -e \\"$0/die\\" ] && exit 100; sha256sum > \\"$0/got.$AJ_JOB_ID\\"","%s","%s"],"stdin":"' "$T" "$2"
        cat "$T/data"
        printf '"}\n'
    } >"$1"
}

head -c 7864320 /dev/urandom | base64 -w0 >"$T/data"
expect_eq 10485760 "$(stat -c %s "$T/data")" "data size"
want=$(sha256sum <"$T/data" | cut -d' ' -f1)
payload "$T/p1.json" one
size=$(($(stat -c %s "$T/p1.json") - 1)) # the final newline is not part of the payload
chunks=$(((size + 262143) / 262144))

# The same payload three times: one blob.
a=$(submit --type shell --payload-file "$T/p1.json")
b=$(submit --type shell --payload-file "$T/p1.json")
c=$("$AJ_BIN" --db "$DB" submit --type shell --payload-file - <"$T/p1.json") || fail "submit from stdin"
expect_eq 1 "$(blobs count)" "one blob for three submits of the same payload"
expect_eq "$chunks" "$(blobs chunks)" "chunks of the 10 MiB payload"
expect_eq "$size" "$(blobs bytes)" "blob bytes"
expect_eq 3 "$(blobs refs)" "three references"
expect_eq 0 "$(blobs unreferenced)" "nothing unreferenced"
expect_ok aj check

# job show returns it exactly.
expect_eq "$want" "$(show "$b" .payload.stdin | tr -d '\n' | sha256sum | cut -d' ' -f1)" "job show payload"

# Workers hand the program the exact bytes.
drain
for id in $a $b $c; do
    expect_eq completed "$(show_state "$id")" "job $id"
    expect_eq "$want" "$(cut -d' ' -f1 "$T/got.$id")" "sha256 seen by job $id"
done

# Dead letters: the same payload dies, is redriven and still gets every byte.
touch "$T/die"
d=$(submit --type shell --payload-file "$T/p1.json")
drain
expect_eq dead "$(show_state "$d")" "job $d died"
expect_eq 4 "$(blobs refs)" "the dead job holds its reference"
rm "$T/die"
expect_ok aj dlq redrive "$d"
drain
expect_eq completed "$(show_state "$d")" "redriven job $d"
expect_eq "$want" "$(cut -d' ' -f1 "$T/got.$d")" "sha256 seen by the redriven job"

# Purge: another payload, two dead jobs; purging one keeps the blob, purging both removes it
# and its chunks at once.
payload "$T/p2.json" two
touch "$T/die"
e=$(submit --type shell --payload-file "$T/p2.json")
f=$(submit --type shell --payload-file "$T/p2.json")
drain
rm "$T/die"
expect_eq 2 "$(blobs count)" "a second payload, a second blob"
expect_eq $((2 * chunks)) "$(blobs chunks)" "chunks of both"
expect_ok aj dlq purge "$e"
expect_eq 2 "$(blobs count)" "one reference left"
expect_eq 5 "$(blobs refs)" "references after one purge"
expect_ok aj dlq purge "$f"
expect_eq 1 "$(blobs count)" "the last reference took the blob"
expect_eq "$chunks" "$(blobs chunks)" "and its chunks"
expect_eq 4 "$(blobs refs)" "references after both purges"
expect_ok aj check

# The limit: exactly 64 MiB is accepted and runs; its echo result (the same bytes) shares the
# blob. One byte more is refused, naming the size and the limit, and nothing is stored.
if ! sanitized; then
perl -e 'print "\"", "a" x (64 * 1048576 - 2), "\""' >"$T/max.json"
m=$(submit --type echo --payload-file "$T/max.json")
expect_eq 2 "$(blobs count)" "the 64 MiB payload"
drain
expect_eq completed "$(show_state "$m")" "64 MiB echo job"
expect_eq 2 "$(blobs count)" "the echo result shares the payload's blob"
expect_eq 6 "$(blobs refs)" "payload and result references"
expect_eq "$(sha256sum <"$T/max.json" | cut -d' ' -f1)" \
    "$(show "$m" .result | tr -d '\n' | { printf '"'; cat; printf '"'; } | sha256sum | cut -d' ' -f1)" \
    "64 MiB result read back"
fi
perl -e 'print "\"", "a" x (64 * 1048576 - 1), "\""' >"$T/over.json"
before=$("$AJ_BIN" --db "$DB" stats --json) || fail "stats"
expect_error 2 "payload is 67108865 bytes, over the 64 MiB limit" aj submit --type echo --payload-file "$T/over.json"
expect_error 2 "payload is 67108865 bytes, over the 64 MiB limit" aj submit --type echo --payload-file - <"$T/over.json"
after=$("$AJ_BIN" --db "$DB" stats --json) || fail "stats"
expect_eq "$(jget blobs "$before")" "$(jget blobs "$after")" "nothing stored for the refused payload"
expect_eq "$(jget jobs "$before")" "$(jget jobs "$after")" "no job for the refused payload"
expect_ok aj check

# Bad input of what this added: a shell payload's "stdin" must be a string; a payload file that
# does not exist.
expect_error 2 'shell payload "stdin" must be a string' aj submit --type shell --payload '{"argv":["cat"],"stdin":5}'
expect_error 2 "--payload-file" aj submit --type echo --payload-file "$T/missing.json"
expect_exit 0 aj stats --help
expect_contains "$OUT" '"blobs"' "aj stats --help documents blobs"

# A submit killed (SIGKILL) while it stores a 64 MiB payload leaves the store consistent: a
# staged blob nothing refers to yet (collected after an hour), or the job with all of its
# chunks; never a job without them. Submitting the same bytes again then works.
if ! sanitized; then
perl -e 'print "\"", "b" x (64 * 1048576 - 2), "\""' >"$T/max2.json"
"$AJ_BIN" --db "$DB" submit --type echo --queue killed --payload-file "$T/max2.json" >/dev/null 2>&1 &
pid=$!
sleep 1
kill -KILL "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
expect_ok aj check
k=$(submit --type echo --queue killed --payload-file "$T/max2.json")
expect_eq 0 "$(blobs unreferenced)" "the staged blob is referenced now"
expect_eq "$(sha256sum <"$T/max2.json" | cut -d' ' -f1)" \
    "$(show "$k" .payload | tr -d '\n' | { printf '"'; cat; printf '"'; } | sha256sum | cut -d' ' -f1)" \
    "the payload after a killed submit"
expect_ok aj check
fi
