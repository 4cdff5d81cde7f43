#!/usr/bin/env bash
# test_foreign_db.sh — `--db` naming another program's SQLite database (its own tables, even one
# called kv, or a meta table without aj's format record) is refused by every command, and the
# file is left byte for byte as it was, in its own journal mode, with no -wal or -shm file
# beside it. Issue 10, item 8.
source "${AJ_TEST_LIB:?}"
command -v sqlite3 >/dev/null || { echo "sqlite3 CLI not installed: skipped"; exit 77; }

sqlite3 "$T/app.db" "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT);
                     INSERT INTO users(name) VALUES ('ann');" || fail "sqlite3"
sqlite3 "$T/kv.db" "CREATE TABLE kv(k BLOB, v BLOB); INSERT INTO kv VALUES (x'01', x'02');" ||
    fail "sqlite3"
sqlite3 "$T/meta.db" "CREATE TABLE meta(name TEXT, val INTEGER);
                      CREATE TABLE kv(k BLOB PRIMARY KEY, v BLOB, ver INTEGER);" || fail "sqlite3"
for f in app kv meta; do
    cp "$T/$f.db" "$T/$f.orig"
    for cmd in "stats" "check" "submit -- true" "worker --drain"; do
        # shellcheck disable=SC2086
        expect_error 1 "is not an aj store" "$AJ_BIN" --db "sqlite:$T/$f.db" $cmd
        cmp -s "$T/$f.db" "$T/$f.orig" || fail "aj $cmd changed $f.db"
        [ ! -e "$T/$f.db-wal" ] && [ ! -e "$T/$f.db-shm" ] ||
            fail "aj $cmd left a -wal or -shm file beside $f.db"
        expect_eq delete "$(sqlite3 "$T/$f.db" 'PRAGMA journal_mode')" "$f.db's journal mode"
    done
done
# An empty file is a new store, as before.
: >"$T/empty.db"
expect_ok "$AJ_BIN" --db "sqlite:$T/empty.db" stats
echo ok
