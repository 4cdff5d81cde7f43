#!/usr/bin/env bash
# test_sync_count.sh — one acknowledged change costs one durable commit: on an existing store,
# `aj submit`, `aj wf start`, `aj wf signal` and `aj job cancel` each fsync the store's files
# exactly once (the commit that is acknowledged), and a read-only command never. Counted with
# strace; id-block, queue-registry and counter writes ride on that one fsync (KV_APPLIED), and
# closing the store no longer checkpoints the WAL. SQLite also syncs the directory once after a
# process opens the WAL (its unix VFS does so for any journal it may have created); that is
# allowed, at most once. Skipped (77) where strace is missing or cannot trace.
source "${AJ_TEST_LIB:?}"

command -v strace >/dev/null 2>&1 || { echo "strace not installed: skipped"; exit 77; }
strace -f -o /dev/null true 2>/dev/null || { echo "strace cannot trace here: skipped"; exit 77; }

# syncs WHAT CMD...: runs CMD under strace and sets FILE_SYNCS (fsync/fdatasync of the store's
# files) and DIR_SYNCS (of directories).
syncs() {
    local what=$1
    shift
    [ "$1" = aj ] && set -- "$AJ_BIN" --db "$DB" "${@:2}" # strace runs binaries, not functions
    # LeakSanitizer cannot run under ptrace: an ASan build counts syncs without it.
    ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0" \
        strace -f -y -qq -e trace=fsync,fdatasync -o "$T/.strace" "$@" >"$T/.out" 2>"$T/.err" ||
        { OUT=$(cat "$T/.out"); ERR=$(cat "$T/.err"); fail "$what failed under strace"; }
    OUT=$(cat "$T/.out")
    FILE_SYNCS=$(grep -Ec "sync\([0-9]+<[^>]*aj\.db(-wal|-shm)?>" "$T/.strace")
    DIR_SYNCS=$(grep -Ec "sync\([0-9]+<$T>" "$T/.strace")
}

# one_commit WHAT CMD...: CMD makes exactly one durable commit.
one_commit() {
    local what=$1
    syncs "$@"
    expect_eq 1 "$FILE_SYNCS" "fsyncs of the store by $what"
    [ "$DIR_SYNCS" -le 1 ] || fail "$what synced the directory $DIR_SYNCS times"
}

# An existing store with the queues used below already registered.
submit --type echo >/dev/null
submit --type echo --queue q2 >/dev/null

one_commit "aj submit" aj submit --type echo
one_commit "aj submit to a new queue" aj submit --type echo --queue fresh
one_commit "aj submit with a payload and a key" aj submit --type echo --payload '{"a":1}' \
    --idempotency-key k1
victim=$(submit --type echo --delay 1h)
one_commit "aj job cancel" aj job cancel "$victim"
saga='{"steps":[{"name":"a","run":["true"]}]}'
one_commit "aj wf start" aj wf start saga --input "$saga"
wf=$OUT
one_commit "aj wf signal" aj wf signal "$wf" go

syncs "aj job show" aj job show "$victim"
expect_eq 0 "$FILE_SYNCS" "fsyncs of the store by a read-only command"
syncs "aj stats" aj stats
expect_eq 0 "$FILE_SYNCS" "fsyncs of the store by aj stats"
