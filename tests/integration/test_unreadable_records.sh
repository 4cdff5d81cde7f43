#!/usr/bin/env bash
# test_unreadable_records.sh — job records a process cannot decode (a newer format byte, as a
# newer aj would write during a rolling upgrade, or a truncated record) are left exactly as they
# are, with their index entries: claims move on to the jobs behind them, promotion and the reaper
# skip them, the worker logs each once, `aj stats` counts them (jobs_unreadable) and keeps them in
# its totals, and `aj check` names them (exit 1). Issue 10, item 1.
source "${AJ_TEST_LIB:?}"
command -v sqlite3 >/dev/null || { echo "sqlite3 CLI not installed: skipped"; exit 77; }
F="$T/aj.db"

# sql STATEMENT: runs SQL on the store file with the sqlite3 CLI.
sql() {
    sqlite3 -cmd '.timeout 10000' "$F" "$1" || fail "sqlite3: $1"
}
# jobkey ID: the job record's key as an SQL blob literal ('J' + 8-byte big-endian id).
jobkey() {
    printf "X'4A%016X'" "$1"
}
# rows_of ID: every stored row whose key ends in the job's id (its record and index entries).
rows_of() {
    sql "SELECT hex(k), hex(v), ver FROM kv WHERE substr(k, -8) = substr($(jobkey "$1"), 2)
         ORDER BY k"
}

# A running job whose worker died: its lease expires while its record is unreadable (reaper).
leased=$(submit --queue r --lease 1s --max-attempts 5 -- sleep 3)
start_worker --queue r
wait_for 30 state_is "$leased" running
{
    kill -KILL "$WORKER_PID"
    wait "$WORKER_PID"
} 2>/dev/null

# Ready jobs at the head of the queue whose records cannot be read, with good ones behind them.
newer=$(submit --queue q -- true)
cut=$(submit --queue q -- true)
good1=$(submit --queue q -- true)
good2=$(submit --queue q -- true)
# A delayed job that falls due while unreadable (promotion).
due=$(submit --queue q --delay 1s -- true)

sql "UPDATE kv SET v = X'09' || substr(v, 2) WHERE k = $(jobkey "$newer")"
sql "UPDATE kv SET v = substr(v, 1, 20) WHERE k = $(jobkey "$cut")"
sql "UPDATE kv SET v = X'09' || substr(v, 2) WHERE k = $(jobkey "$due")"
sql "UPDATE kv SET v = X'09' || substr(v, 2) WHERE k = $(jobkey "$leased")"
declare -A before
for id in "$newer" "$cut" "$due" "$leased"; do
    before[$id]=$(rows_of "$id")
    [ "$(printf '%s\n' "${before[$id]}" | wc -l)" -ge 2 ] || fail "job $id has no index entry"
done
expect_ok aj stats --json
total_before=$(perl -MJSON::PP -e 'my $j = decode_json(join "", <STDIN>); my $t = 0;
    $t += $_ for values %{$j->{jobs}}; print $t' <<<"$OUT")
expect_eq 6 "$total_before" "jobs in the store"

sleep 1.2 # the lease has expired and the delayed job is due
drain --queue q,r
log=$ERR
state_is "$good1" completed || fail "a good job behind unreadable ones did not run"
state_is "$good2" completed || fail "the second good job did not run"
for id in "$newer" "$cut" "$due" "$leased"; do
    expect_eq "${before[$id]}" "$(rows_of "$id")" "job $id's record and index entries"
    [ "$(printf '%s\n' "$log" | grep -c "level=warn.*job=$id ")" = 1 ] ||
        fail "the worker did not log job $id exactly once"
done
expect_line "job=$newer error=AJ_EFORMAT" "$log" "the newer record's log line"
expect_line "job=$cut error=AJ_ECORRUPT" "$log" "the truncated record's log line"

expect_ok aj stats --json
expect_eq 4 "$(jget totals.jobs_unreadable)" "jobs_unreadable"
total_after=$(perl -MJSON::PP -e 'my $j = decode_json(join "", <STDIN>); my $t = 0;
    $t += $_ for values %{$j->{jobs}}; print $t' <<<"$OUT")
expect_eq "$total_before" "$total_after" "jobs in the store after the drain"

expect_exit 1 aj check
for id in "$newer" "$due" "$leased"; do
    expect_line "^job $id: record cannot be decoded: .*format 9 is newer" "$OUT" "check on $id"
done
expect_line "^job $cut: record cannot be decoded: .*corrupt" "$OUT" "check on $cut"
expect_line "^checked [0-9]+ records: 4 problems$" "$OUT" "check summary"
expect_contains "$ERR" "not consistent" "check's error"

# A second drain changes nothing either and logs each record again (a new process).
drain --queue q,r
for id in "$newer" "$cut" "$due" "$leased"; do
    expect_eq "${before[$id]}" "$(rows_of "$id")" "job $id after a second drain"
done
echo "ok"
