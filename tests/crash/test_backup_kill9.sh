#!/usr/bin/env bash
# Crash test: `aj backup` killed with SIGKILL in the middle of copying a store of about 60 MB
# leaves nothing under the backup's name (only PATH.partial, which must not read as a backup),
# and the next backup to the same path succeeds, takes the leftover over and writes a whole copy.
# Also: a second backup while one is writing the same path is refused, and a finished backup
# leaves no temporary file behind.
source "${AJ_TEST_LIB:?}"

JOBS=20000
# Payloads of about 3 KB, distinct so that nothing is deduplicated: the copy takes a moment.
perl -e 'my $p = "x" x 3000; print "\"$_$p\"\n" for 1 .. $ARGV[0]' "$JOBS" >"$T/lines"
aj submit --type echo --payload-lines "$T/lines" >/dev/null || fail "submit the store's jobs"

# jobs_in DB: the number of jobs in a store.
jobs_in() {
    local s
    s=$("$AJ_BIN" --db "sqlite:$1" stats --json) || fail "aj stats on $1"
    perl -MJSON::PP -e 'my $j = decode_json($ARGV[0])->{jobs}; my $s = 0; $s += $_ for values %$j; print $s' "$s"
}

B="$T/b.db"
mid_copy=0
# A kill can land after the copy finished on a loaded machine: then the backup must be whole;
# try again until one kill lands in the middle.
for attempt in 1 2 3 4 5; do
    rm -f "$B" "$B.partial" "$B.partial-journal"
    "$AJ_BIN" --db "$DB" backup "$B" &
    pid=$!
    _AJ_PIDS+=("$pid")
    # Wait until the copy has started writing (under either name), then kill it.
    while [ ! -s "$B" ] && [ ! -s "$B.partial" ] && kill -0 "$pid" 2>/dev/null; do :; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid"
    rc=$?
    if [ -e "$B" ]; then
        # Whatever is under the final name must be a whole, consistent copy.
        expect_eq "$JOBS" "$(jobs_in "$B")" "jobs in a backup found after kill -9 (exit $rc)"
        expect_ok "$AJ_BIN" --db "sqlite:$B" check
        continue
    fi
    [ "$rc" = 137 ] || fail "the backup exited $rc without writing $B"
    [ -e "$B.partial" ] || fail "a killed backup left neither $B nor $B.partial"
    mid_copy=1
    echo "attempt $attempt: killed in the middle of the copy"
    break
done
[ "$mid_copy" = 1 ] || fail "no kill landed in the middle of a backup in 5 attempts"

# The leftover does not block the next backup to the same path, which writes a whole copy.
expect_ok aj backup "$B"
expect_eq "$JOBS" "$(jobs_in "$B")" "jobs in the backup written after a killed one"
expect_ok "$AJ_BIN" --db "sqlite:$B" check
[ ! -e "$B.partial" ] || fail "$B.partial is left after a finished backup"
[ ! -e "$B.partial-journal" ] || fail "$B.partial-journal is left after a finished backup"
expect_eq 600 "$(stat -c %a "$B")" "the backup's mode"

# A backup already writing PATH (its PATH.partial locked) makes a second one fail at once, and
# nothing of the first is touched.
B2="$T/b2.db"
echo "in progress" >"$B2.partial"
exec 7<"$B2.partial"
flock -x 7 || fail "cannot lock $B2.partial"
expect_error 1 "another process is writing" aj backup "$B2"
[ ! -e "$B2" ] || fail "a refused backup wrote $B2"
expect_eq "in progress" "$(cat "$B2.partial")" "the other backup's file"
exec 7<&-
expect_ok aj backup "$B2"
expect_eq "$JOBS" "$(jobs_in "$B2")" "jobs in the backup after the lock was released"

echo "PASS test_backup_kill9"
