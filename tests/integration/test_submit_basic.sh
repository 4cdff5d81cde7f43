#!/usr/bin/env bash
# test_submit_basic.sh — `aj submit` prints a bare id (or {"id":N}); the documented defaults and
# every flag are visible in `aj job show --json`; shell jobs from `-- PROGRAM ARG...`; payload
# from a file and stdin; --db, AJ_DB and global flags anywhere; the store file is created 0600.
source "${AJ_TEST_LIB:?}"

RFC3339='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$'

# A bare id on stdout, and nothing on stderr.
expect_ok aj submit --type echo --payload '{"a":1,"b":[true,null,"x"]}'
expect_match '^[1-9][0-9]*$' "$OUT" "submit output"
expect_eq "" "$ERR" "submit stderr"
id=$OUT
if on_sqlite; then
    [ "$(stat -c %a "$T/aj.db")" = 600 ] || fail "the store file is not mode 0600"
fi

# Defaults, as the issue lists them.
expect_ok aj job show "$id" --json
show=$OUT
expect_eq "$id" "$(jget id "$show")" "id"
expect_eq default "$(jget queue "$show")" "default queue"
expect_eq echo "$(jget type "$show")" "type"
expect_eq ready "$(jget state "$show")" "state"
expect_eq 1024 "$(jget priority "$show")" "default priority (normal)"
expect_eq 0 "$(jget attempts "$show")" "attempts"
expect_eq 3 "$(jget max_attempts "$show")" "default max attempts"
expect_eq 5m "$(jget timeout "$show")" "default timeout"
expect_eq 30s "$(jget lease "$show")" "default lease"
expect_eq exp:1s:2:5m "$(jget backoff "$show")" "default backoff"
expect_eq '{"a":1,"b":[true,null,"x"]}' "$(jget payload "$show")" "payload embedded as JSON"
expect_eq null "$(jget result "$show")" "result"
expect_eq null "$(jget error "$show")" "error"
expect_eq null "$(jget dead_reason "$show")" "dead_reason"
expect_eq null "$(jget started_at "$show")" "started_at"
expect_eq null "$(jget finished_at "$show")" "finished_at"
expect_eq null "$(jget idempotency_key "$show")" "idempotency_key"
expect_eq null "$(jget metadata "$show")" "metadata"
expect_match "$RFC3339" "$(jget created_at "$show")" "created_at"
expect_match "$RFC3339" "$(jget run_at "$show")" "run_at"

# The human form: aligned key: value lines.
expect_ok aj job show "$id"
expect_line '^state: +ready$' "$OUT" "human show state line"
expect_line "^id: +$id\$" "$OUT" "human show id line"
expect_contains "$OUT" '{"a":1,"b":[true,null,"x"]}' "human show payload"

# --json prints {"id":N}; ids are distinct.
expect_ok aj submit --type echo --json
expect_match '^\{"id":[1-9][0-9]*\}$' "$OUT" "submit --json"
id2=$(jget id)
[ "$id2" != "$id" ] || fail "two submits returned the same id $id"
expect_eq null "$(job_field "$id2" payload)" "no payload is JSON null"

# Every flag.
id3=$(submit --queue q1 --type t.x_1 --priority high --delay 1h --timeout 10s --lease 5s \
    --max-attempts 7 --backoff fixed:2s --metadata '{"trace":"abc"}' --payload '[1,2]')
expect_ok aj job show "$id3" --json
expect_eq q1 "$(jget queue)" "--queue"
expect_eq t.x_1 "$(jget type)" "--type"
expect_eq 512 "$(jget priority)" "--priority high"
expect_eq scheduled "$(jget state)" "--delay 1h state"
expect_eq 10s "$(jget timeout)" "--timeout"
expect_eq 5s "$(jget lease)" "--lease"
expect_eq 7 "$(jget max_attempts)" "--max-attempts"
expect_eq fixed:2s "$(jget backoff)" "--backoff"
expect_eq abc "$(jget metadata.trace)" "--metadata"
expect_eq '[1,2]' "$(jget payload)" "--payload array"
created=$(jget created_at)
run_at=$(jget run_at)
[[ $run_at > $created ]] || fail "--delay 1h: run_at $run_at is not after created_at $created"

for p in critical:0 low:2048 normal:1024 4294967295:4294967295 0:0 77:77; do
    i=$(submit --type echo --priority "${p%%:*}" --delay 1h)
    expect_eq "${p##*:}" "$(job_field "$i" priority)" "--priority ${p%%:*}"
done
for b in none exp:1s exp:1s:3 exp:500ms:2:1m list:1s,5s,1m; do
    i=$(submit --type echo --backoff "$b" --delay 1h)
    [ "$(job_field "$i" backoff)" != "" ] || fail "--backoff $b not shown"
done
i=$(submit --type echo --backoff list:1s,5s,1m --delay 1h)
expect_eq list:1s,5s,1m "$(job_field "$i" backoff)" "--backoff list round trip"
i=$(submit --type echo --delay 1h30m)
expect_eq scheduled "$(job_field "$i" state)" "--delay 1h30m"
i=$(submit --type echo --at 2099-01-02T03:04:05Z)
expect_eq scheduled "$(job_field "$i" state)" "--at in the future"
expect_eq 2099-01-02T03:04:05Z "$(job_field "$i" run_at)" "--at run_at"
i=$(submit --type echo --payload='"flag=value form"')
expect_eq "flag=value form" "$(job_field "$i" payload)" "--payload=VALUE"
i=$(submit --type echo --payload -1)
expect_eq -1 "$(job_field "$i" payload)" "a value that starts with '-'"
i=$(submit --type echo --idempotency-key=--json)
expect_eq --json "$(job_field "$i" idempotency_key)" "--flag=VALUE passes a value that looks like a flag"

# A shell job from `-- PROGRAM ARG...`; flags after -- belong to the program.
i=$(submit --queue sh -- echo hello --json "two words")
expect_ok aj job show "$i" --json
expect_eq shell "$(jget type)" "-- makes a shell job"
expect_eq sh "$(jget queue)" "queue of a shell job"
expect_eq '{"argv":["echo","hello","--json","two words"]}' "$(jget payload)" "shell payload"
i=$(submit --type shell -- true)
expect_eq shell "$(job_field "$i" type)" "--type shell with --"
i=$(submit --type shell --payload '{"argv":["/bin/echo","x"],"env":{"A":"b"},"cwd":"/"}')
expect_eq '["/bin/echo","x"]' "$(job_field "$i" payload.argv)" "shell payload via --payload"

# Payload from a file and from stdin, kept as given.
printf '{\n  "from": "file"\n}\n' >"$T/p.json"
i=$(submit --type echo --payload-file "$T/p.json")
expect_eq file "$(job_field "$i" payload.from)" "--payload-file"
i=$(printf '"from stdin"' | "$AJ_BIN" --db "$DB" submit --type echo --payload-file -)
expect_eq "from stdin" "$(job_field "$i" payload)" "--payload-file -"

# A payload of exactly 64 MiB is accepted; in a store of its own, so that the listings below
# stay small (and read back with jq: JSON::PP takes minutes over 64 MiB).
if ! sanitized; then
perl -e 'print "\"", "a" x (67108864 - 2), "\""' >"$T/max.json"
i=$("$AJ_BIN" --db "sqlite:$T/max.db" submit --type echo --payload-file "$T/max.json") ||
    fail "a 64 MiB payload was refused"
expect_eq 67108862 "$("$AJ_BIN" --db "sqlite:$T/max.db" job show "$i" --json | jq -j .payload | wc -c)" \
    "a 64 MiB payload"
fi

# Global flags anywhere; --db beats AJ_DB; AJ_DB is used without --db.
expect_ok "$AJ_BIN" job show "$id" --db "$DB" --json
expect_eq "$id" "$(jget id)" "--db after the command"
expect_ok "$AJ_BIN" --json job --db="$DB" show "$id"
expect_eq "$id" "$(jget id)" "--json before, --db= between the command words"
expect_ok env AJ_DB="$DB" "$AJ_BIN" job show "$id" --json
expect_eq "$id" "$(jget id)" "AJ_DB"
expect_ok env AJ_DB="sqlite:$T/other.db" "$AJ_BIN" --db "$DB" job show "$id" --json
expect_eq "$id" "$(jget id)" "--db over AJ_DB"
mkdir "$T/cwd"
(cd "$T/cwd" && "$AJ_BIN" submit --type echo >/dev/null) || fail "submit with the default store"
[ -f "$T/cwd/aj.db" ] || fail "the default store sqlite:aj.db was not created in the working directory"
expect_ok "$AJ_BIN" --db mem: submit --type echo
expect_match '^[1-9][0-9]*$' "$OUT" "the mem: store"

# job ls: a table and a JSON array with filters.
expect_ok aj job ls
expect_match '^ID +QUEUE +TYPE +STATE' "$OUT" "job ls header"
expect_contains "$OUT" "$id3" "job ls lists the job"
expect_ok aj job ls --json --limit 0
total=$(jget length)
expect_ok aj job ls --json --queue q1
expect_eq 1 "$(jget length)" "job ls --queue"
expect_eq "$id3" "$(jget 0.id)" "job ls --queue id"
expect_ok aj job ls --json --state ready
expect_eq "$(jcount '$_->{state} eq "ready"' "$(aj job ls --json --limit 0)")" "$(jget length)" \
    "job ls --state ready"
expect_ok aj job ls --json --type shell --limit 2
expect_eq 2 "$(jget length)" "job ls --type --limit"
expect_ok aj stats --json
sum=$(perl -MJSON::PP -e 'my $j = decode_json($ARGV[0])->{jobs}; my $s = 0; $s += $_ for values %$j; print $s' "$OUT")
expect_eq "$total" "$sum" "stats counts every listed job"

echo "PASS test_submit_basic"
