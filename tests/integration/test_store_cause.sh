#!/usr/bin/env bash
# test_store_cause.sh — store errors whose real cause is the file system name it and the path,
# not SQLite's effect: a full disk ("no space left on device extending …-shm", not "disk I/O
# error"), a directory where -wal/-shm cannot be created, and a stale -shm another user left
# without write permission (not "attempt to write a readonly database"). Issue 10, item 9.
#
# Needs root: it mounts a small tmpfs to fill up, and runs aj as two unprivileged users (root
# bypasses permissions). Skipped (77) where that is impossible.
source "${AJ_TEST_LIB:?}"

[ "$(id -u)" = 0 ] || { echo "needs root (mount, setpriv): skipped"; exit 77; }
command -v setpriv >/dev/null || { echo "setpriv not installed: skipped"; exit 77; }
# Two unprivileged users: the store's owner (a writer) and a reader who may only read it.
W_UID=65534
R_UID=1
# They cannot reach the build directory when it is private (a clone in a mktemp -d directory):
# they run a copy of aj and of libaj.so in $T/bin.
BIN="$T/bin"
mkdir "$BIN" && cp "$AJ_BIN" "${AJ_BUILD_DIR:?}"/libaj.so.* "$BIN/" || fail "cannot copy aj to $BIN"
as_user() {
    local uid=$1
    shift
    [ "$1" = "$AJ_BIN" ] && set -- "$BIN/aj" "${@:2}"
    setpriv --reuid="$uid" --regid="$uid" --clear-groups env LD_LIBRARY_PATH="$BIN" "$@"
}
as_writer() { as_user $W_UID "$@"; }
as_reader() { as_user $R_UID "$@"; }
as_writer true 2>/dev/null && as_reader true 2>/dev/null ||
    { echo "cannot switch to uids $W_UID/$R_UID: skipped"; exit 77; }

MNT="$T/full"
_cause_cleanup() {
    mountpoint -q "$MNT" 2>/dev/null && umount "$MNT"
    _aj_cleanup
}
trap _cause_cleanup EXIT
# The unprivileged users must reach the directories below $T (mktemp made it 0700).
chmod 755 "$T"

# aj leaves -wal and -shm beside the store at exit (it does not checkpoint on close). The cases
# below need a store without them, as another SQLite program that checkpoints at close leaves it.
fold_wal() {
    python3 -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute("PRAGMA wal_checkpoint(TRUNCATE)"); c.close()' "$1" ||
        fail "cannot checkpoint $1"
    [ ! -e "$1-shm" ] && [ ! -e "$1-wal" ] || fail "the checkpointing close left -wal/-shm of $1"
}

# 1. A full disk: every command, reads too, names the full disk and the -shm it could not grow.
mkdir "$MNT"
if mount -t tmpfs -o size=1m tmpfs "$MNT" 2>/dev/null; then
    F="sqlite:$MNT/x.db"
    expect_ok "$AJ_BIN" --db "$F" submit -- true
    # A read needs no room while -shm is there; without it the reader must create it again.
    fold_wal "$MNT/x.db"
    [ ! -e "$MNT/x.db-shm" ] || fail "the checkpointing close left $MNT/x.db-shm"
    dd if=/dev/zero of="$MNT/fill" bs=4k 2>/dev/null # until the file system is full
    expect_exit 1 "$AJ_BIN" --db "$F" stats
    expect_contains "$ERR" "no space left on device extending '$MNT/x.db-shm'" "stats, disk full"
    [[ $ERR != *"disk I/O error"* || $ERR == *"no space left"* ]] || fail "stats blames I/O"
    expect_exit 1 "$AJ_BIN" --db "$F" submit -- true
    expect_contains "$ERR" "no space left on device" "submit, disk full"
    # Space returns: the store works again and kept its job.
    rm -f "$MNT/fill"
    expect_ok "$AJ_BIN" --db "$F" stats --json
    expect_eq 1 "$(jget jobs.ready)" "jobs after space returned"
    umount "$MNT"
else
    echo "cannot mount a tmpfs: the full-disk case is skipped"
fi

# 2. A directory the user cannot write: -wal and -shm cannot be created there.
RO="$T/ro"
mkdir "$RO"
expect_ok "$AJ_BIN" --db "sqlite:$RO/x.db" submit -- true
fold_wal "$RO/x.db"
chown $W_UID "$RO/x.db" # the user owns the store, not its directory
for cmd in "stats" "submit -- true"; do
    # shellcheck disable=SC2086 # $cmd is words on purpose
    expect_exit 1 as_writer "$AJ_BIN" --db "sqlite:$RO/x.db" $cmd
    expect_contains "$ERR" "cannot create '$RO/x.db-wal' and '$RO/x.db-shm': the directory '$RO' is not writable" "$cmd, read-only directory"
done

# 3. A stale -shm left by a reader: the reader could create it (a shared directory) but the
# writer cannot write it, so later writes fail; the message names the file, its mode and owner.
SH="$T/shared"
mkdir "$SH"
chmod 1777 "$SH"
expect_ok as_writer "$AJ_BIN" --db "sqlite:$SH/x.db" submit -- true
fold_wal "$SH/x.db"
chmod 644 "$SH/x.db"
expect_ok as_reader "$AJ_BIN" --db "sqlite:$SH/x.db" stats
[ -e "$SH/x.db-shm" ] || fail "the reader left no -shm file (the scenario needs one)"
chmod 444 "$SH/x.db-shm"
expect_exit 1 as_writer "$AJ_BIN" --db "sqlite:$SH/x.db" submit -- true
expect_contains "$ERR" "'$SH/x.db-shm' is not writable by this user (mode 0444, owner " "stale -shm"
expect_contains "$ERR" "uid $R_UID)" "stale -shm: its owner"
expect_contains "$ERR" "remove it while no process uses the store" "stale -shm: what to do"
# The reader's (empty) -wal is in the way too, and is named with it.
expect_contains "$ERR" "'$SH/x.db-wal' is not writable by this user (mode 0644, owner " "stale -wal"
# Doing what it says works, and nothing was lost.
rm -f "$SH/x.db-shm" "$SH/x.db-wal"
expect_ok as_writer "$AJ_BIN" --db "sqlite:$SH/x.db" submit -- true
expect_ok as_writer "$AJ_BIN" --db "sqlite:$SH/x.db" stats --json
expect_eq 2 "$(jget jobs.ready)" "jobs after the stale -shm was removed"

# 4. An immutable store (chattr +i, which binds root too): not blamed on its mode.
IM="$T/immutable"
mkdir "$IM"
expect_ok "$AJ_BIN" --db "sqlite:$IM/x.db" submit -- true
fold_wal "$IM/x.db"
if chattr +i "$IM/x.db" 2>/dev/null; then
    expect_exit 1 "$AJ_BIN" --db "sqlite:$IM/x.db" submit -- true
    expect_contains "$ERR" "'$IM/x.db' may not be written (immutable or append-only" "immutable"
    chattr -i "$IM/x.db"
else
    echo "chattr +i is not supported here: the immutable case is skipped"
fi
echo ok
