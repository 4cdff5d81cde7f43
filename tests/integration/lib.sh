# lib.sh — helpers for the integration tests, which drive the real `aj` binary.
#
# Sourced by every tests/integration/test_*.sh (ctest passes AJ_BIN and AJ_TEST_LIB). Each test
# gets a fresh temporary directory $T with a store $DB (sqlite:$T/aj.db, or a fresh PostgreSQL
# database under AJ_TEST_STORE=postgres) that `aj` uses, fails on
# the first unmet expectation with a message naming it, and removes $T and any background process
# it started on exit. JSON is read with perl's core JSON::PP, which every Debian machine that can
# build the project has (build-essential needs perl).

set -u

: "${AJ_BIN:?AJ_BIN must name the aj binary}"
unset AJ_DB # only --db decides which store a test touches

T=$(mktemp -d "${TMPDIR:-/tmp}/aj-it.XXXXXX") || exit 1
DB="sqlite:$T/aj.db"
# AJ_TEST_STORE=postgres (ctest's pg_integration_* entries, inside tests/pg/pg_harness.sh): the
# store is the harness's private PostgreSQL server instead, fresh for this test.
if [ "${AJ_TEST_STORE:-sqlite}" = postgres ]; then
    DB=${AJ_TEST_PG_URL:?AJ_TEST_STORE=postgres runs only inside tests/pg/pg_harness.sh}
fi
OUT=""
ERR=""
RC=0
_AJ_PIDS=()

_aj_cleanup() {
    local p
    for p in "${_AJ_PIDS[@]}"; do
        kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    # A test that made a file immutable (an unwritable store as root) and failed before it
    # undid that would otherwise leave $T behind.
    chattr -R -i "$T" 2>/dev/null
    rm -rf "$T"
}
trap _aj_cleanup EXIT
# A failure inside $(...) runs in a subshell: it signals the test's shell to stop as well.
trap 'exit 1' USR1

# sanitized: true in a sanitizer build, where the slowest cases (storing and hashing 64 MiB
# payloads, the biggest graphs) are left to the normal build, which runs every test too.
sanitized() {
    [ -n "${AJ_SANITIZE:-}" ]
}

# on_sqlite: true when this test's store is a SQLite file (checks of file facts: modes, -wal).
on_sqlite() {
    [ "${DB#sqlite:}" != "$DB" ]
}

# fail MESSAGE: stops the test with a message and what the last command printed.
fail() {
    local msg="$*"
    echo "FAIL ($(basename "$0")): ${msg:0:500}" >&2
    echo "  last exit: $RC" >&2
    [ -n "$OUT" ] && printf '%s\n' "${OUT:0:2000}" | head -20 | sed 's/^/  stdout: /' >&2
    [ -n "$ERR" ] && printf '%s\n' "${ERR:0:2000}" | head -20 | sed 's/^/  stderr: /' >&2
    [ "$BASHPID" != "$$" ] && kill -USR1 $$
    exit 1
}

# aj ARGS...: the binary on this test's store.
aj() {
    "$AJ_BIN" --db "$DB" "$@"
}

# run CMD...: runs a command, keeping its stdout in $OUT, stderr in $ERR, exit code in $RC.
run() {
    "$@" >"$T/.out" 2>"$T/.err"
    RC=$?
    OUT=$(cat "$T/.out")
    ERR=$(cat "$T/.err")
}

# expect_exit CODE CMD...: runs CMD and fails unless it exits with CODE.
expect_exit() {
    local want=$1
    shift
    run "$@"
    [ "$RC" = "$want" ] || fail "expected exit $want from: $*"
}

# expect_ok CMD...: expect_exit 0.
expect_ok() {
    expect_exit 0 "$@"
}

# expect_error CODE PATTERN CMD...: CMD exits CODE with exactly one stderr line, "aj: ...",
# containing the fixed string PATTERN, and prints nothing on stdout.
expect_error() {
    local want=$1 pattern=$2
    shift 2
    expect_exit "$want" "$@"
    [ "$(printf '%s\n' "$ERR" | wc -l)" = 1 ] || fail "expected one stderr line from: $*"
    case "$ERR" in
    "aj: "*) ;;
    *) fail "the error does not start with 'aj: ': $*" ;;
    esac
    case "$ERR" in
    *"$pattern"*) ;;
    *) fail "the error does not mention '$pattern': $*" ;;
    esac
    [ -z "$OUT" ] || fail "expected nothing on stdout from: $*"
}

# expect_eq WANT GOT WHAT: fails unless WANT = GOT.
expect_eq() {
    [ "$1" = "$2" ] || fail "$3: expected '$1', got '$2'"
}

# expect_match REGEX GOT WHAT: fails unless GOT matches the extended regex.
expect_match() {
    [[ $2 =~ $1 ]] || fail "$3: '$2' does not match /$1/"
}

# expect_line REGEX TEXT WHAT: fails unless a line of TEXT matches the extended regex.
expect_line() {
    printf '%s\n' "$2" | grep -Eq -- "$1" || fail "$3: no line matches /$1/"
}

# expect_contains TEXT PATTERN WHAT: fails unless TEXT contains the fixed string PATTERN.
expect_contains() {
    case "$1" in
    *"$2"*) ;;
    *) fail "$3: '$1' does not contain '$2'" ;;
    esac
}

# jget PATH [JSON]: the value at PATH in JSON (default $OUT). PATH is dot-separated keys and
# array indexes ("jobs.dead", "0.id", "payload.argv.1"); "length" as the last part gives an
# array's length or an object's size. Strings print raw, null as "null", booleans as
# true/false, arrays and objects as canonical compact JSON. Invalid JSON fails the test.
jget() {
    local path=$1 json=${2-$OUT} v
    v=$(printf '%s' "$json" | perl -MJSON::PP -e '
        my $path = $ARGV[0];
        my $text = do { local $/; <STDIN> };
        my $j = JSON::PP->new->allow_nonref->canonical;
        my $v = eval { $j->decode($text) };
        if ($@) { print STDERR "invalid JSON: $@"; exit 2; }
        for my $k (grep { length } split /\./, $path) {
            if ($k eq "length") {
                $v = ref $v eq "ARRAY" ? scalar @$v : ref $v eq "HASH" ? scalar keys %$v : -1;
            } elsif (ref $v eq "ARRAY") {
                $v = $v->[$k];
            } elsif (ref $v eq "HASH") {
                $v = $v->{$k};
            } else {
                $v = undef;
            }
        }
        if (!defined $v) { print "null"; }
        elsif (JSON::PP::is_bool($v)) { print $v ? "true" : "false"; }
        elsif (ref $v) { print $j->encode($v); }
        else { print $v; }
    ' "$path") || fail "jget $path: not valid JSON: ${json:0:200}"
    printf '%s' "$v"
}

# jcount PERL-EXPR [JSON]: how many elements $_ of the JSON array satisfy the perl expression,
# e.g. jcount '$_->{state} eq "dead"'.
jcount() {
    local expr=$1 json=${2-$OUT}
    printf '%s' "$json" | perl -MJSON::PP -e '
        my $expr = $ARGV[0];
        my $a = JSON::PP->new->decode(do { local $/; <STDIN> });
        my $f = eval "sub { local \$_ = shift; $expr }" or die $@;
        print scalar grep { $f->($_) } @$a;
    ' "$expr" || fail "jcount: not a JSON array: ${json:0:200}"
}

# state_counts: the "jobs" object of `aj stats --json`, canonical, for before/after comparisons.
state_counts() {
    local s
    s=$("$AJ_BIN" --db "$DB" stats --json) || fail "aj stats failed"
    jget jobs "$s"
}

# job_field ID PATH: one field of `aj job show ID --json`.
job_field() {
    local s
    s=$("$AJ_BIN" --db "$DB" job show "$1" --json) || fail "aj job show $1 failed"
    jget "$2" "$s"
}

# submit ARGS...: submits a job, checks that the output is a bare id, and prints it.
submit() {
    local id
    id=$("$AJ_BIN" --db "$DB" submit "$@") || fail "aj submit $* failed"
    [[ $id =~ ^[1-9][0-9]*$ ]] || fail "aj submit $* printed '$id', not an id"
    printf '%s' "$id"
}

# drain [ARGS...]: runs `aj worker --drain` (at most 60 s) and expects exit 0.
drain() {
    run timeout 60 "$AJ_BIN" --db "$DB" worker --drain "$@"
    [ "$RC" = 0 ] || fail "aj worker --drain $* exited $RC"
}

# start_worker ARGS...: starts `aj worker` in the background (log in $T/worker.log); sets
# WORKER_PID.
start_worker() {
    "$AJ_BIN" --db "$DB" worker "$@" 2>>"$T/worker.log" &
    WORKER_PID=$!
    _AJ_PIDS+=("$WORKER_PID")
}

# stop_worker [SIGNAL]: signals the background worker (TERM by default), waits at most 30 s for
# it, and fails unless it exits 0.
stop_worker() {
    local sig=${1:-TERM} i rc
    kill -"$sig" "$WORKER_PID" || fail "cannot signal the worker"
    for ((i = 0; i < 300; i++)); do
        kill -0 "$WORKER_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$WORKER_PID" 2>/dev/null && fail "the worker did not stop within 30s of SIG$sig"
    wait "$WORKER_PID"
    rc=$?
    [ "$rc" = 0 ] || fail "the worker exited $rc after SIG$sig"
}

# wait_for SECONDS CMD...: polls CMD every 0.1 s until it succeeds; fails after SECONDS.
wait_for() {
    local secs=$1 i
    shift
    for ((i = 0; i < secs * 10; i++)); do
        "$@" && return 0
        sleep 0.1
    done
    fail "timed out after ${secs}s waiting for: $*"
}

# state_is ID STATE: 0 when job ID is in STATE.
state_is() {
    [ "$(job_field "$1" state)" = "$2" ]
}
