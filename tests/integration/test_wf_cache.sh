#!/usr/bin/env bash
# The activity result cache through the declarative saga's "cache" field: a hit runs no job and
# is recorded as activity_completed with "cached":true; workflow scope is shared by the runs of
# one id only, global scope by every workflow; `aj stats` shows entries, hits and misses; a
# malformed "cache" is refused with exit 2 and nothing stored.
. "$AJ_TEST_LIB"

ledger="$T/ledger"
events_of() { # ID -> the events array of the latest run
    local s
    s=$(aj wf show "$1" --json) || fail "wf show $1"
    jget events "$s"
}

# 1. Global scope: a "type" step (payload the same in every workflow).
global='{"steps":[{"name":"fetch","type":"echo","payload":{"k":1},"cache":{"ttl":"1h","scope":"global","version":"v1"}}]}'
expect_ok aj wf start saga --id g-1 --input "$global"
drain
expect_ok aj wf start saga --id g-2 --input "$global"
drain
expect_ok aj wf result g-2
expect_eq '{"fetch":{"k":1}}' "$OUT" "g-2's result came from the cache"
ev=$(events_of g-2)
expect_eq 1 "$(jcount '$_->{type} eq "activity_completed" && $_->{cached}' "$ev")" "g-2 hit recorded as cached"
expect_eq 0 "$(jcount '$_->{type} eq "activity_started"' "$ev")" "no job for the hit"
expect_eq 0 "$(jcount '$_->{type} eq "activity_completed" && $_->{cached}' "$(events_of g-1)")" "g-1 missed"
expect_ok aj job ls --json
expect_eq 1 "$(jcount '$_->{type} eq "echo"')" "one echo job for two workflows"
# Another version is another entry.
expect_ok aj wf start saga --id g-3 --input "${global/\"v1\"/\"v2\"}"
drain
expect_ok aj job ls --json
expect_eq 2 "$(jcount '$_->{type} eq "echo"')" "a new version runs the job"

# 2. Workflow scope: a program step; a rerun of the id hits, another id misses.
cat >"$T/w.json" <<JSON
{"steps":[{"name":"build","run":["sh","-c","echo build >> $ledger; echo built"],"cache":{"ttl":"1h"}}]}
JSON
expect_ok aj wf start saga --id w-1 --input-file "$T/w.json"
drain
expect_ok aj wf start saga --id w-1 --rerun --input-file "$T/w.json"
drain
expect_ok aj wf show w-1 --json
expect_eq 2 "$(jget run)" "rerun"
expect_eq completed "$(jget state)" "rerun state"
expect_eq 1 "$(jcount '$_->{type} eq "activity_completed" && $_->{cached}' "$(jget events)")" "rerun hit"
expect_eq 1 "$(wc -l <"$ledger")" "the program ran once for two runs"
expect_ok aj wf start saga --id w-2 --input-file "$T/w.json"
drain
expect_eq 2 "$(wc -l <"$ledger")" "another id does not share a workflow-scoped entry"

# 3. aj stats: entries, hits and misses (every process's counters, flushed on exit).
expect_ok aj stats --json
expect_eq 4 "$(jget activity_cache.entries)" "entries (g v1, g v2, w-1, w-2)"
expect_eq 2 "$(jget totals.activity_cache_hits)" "hits"
expect_eq 4 "$(jget totals.activity_cache_misses)" "misses"
expect_eq 4 "$(jget totals.activity_cache_fills)" "fills"
expect_ok aj check

# 4. Bad input: refused at start, nothing stored.
before=$(aj wf ls --json)
bad() { expect_error 2 "$1" aj wf start saga --input "{\"steps\":[{\"name\":\"x\",\"type\":\"echo\",\"cache\":$2}]}"; }
bad '"cache" must be an object' '"1h"'
bad '"ttl" must be a positive duration' '{}'
bad '"ttl" must be a positive duration' '{"ttl":"5"}'
bad '"ttl" must be a positive duration' '{"ttl":"0s"}'
bad '"scope" must be "workflow" or "global"' '{"ttl":"1h","scope":"galaxy"}'
bad '"version" must be a string' '{"ttl":"1h","version":3}'
bad 'unknown field "tll" in "cache"' '{"ttl":"1h","tll":"2h"}'
expect_eq "$before" "$(aj wf ls --json)" "bad input stored nothing"
echo "wf cache ok"
