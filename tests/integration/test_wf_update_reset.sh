#!/usr/bin/env bash
# `aj wf reset` and `aj wf update` on the built-in saga: a reset from the middle of a saga runs
# the steps after the reset point again and not the ones before; an update the workflow cannot
# take is refused with the workflow's message and leaves no trace in its history; the activity
# cache shows in `aj stats`; bad input for every new command and option (exit 2, 3 or 4, one
# error line, nothing changed).
. "$AJ_TEST_LIB"

ledger="$T/ledger"
step() { # NAME -> a step that appends NAME to the ledger
    printf '["sh","-c","echo %s >> %s"]' "$1" "$ledger"
}
events_of() { # ID [RUN] -> the events array of `aj wf show`
    local s
    if [ -n "${2-}" ]; then
        s=$(aj wf show "$1" --run "$2" --json) || fail "wf show $1 --run $2"
    else
        s=$(aj wf show "$1" --json) || fail "wf show $1"
    fi
    jget events "$s"
}

# 1. Reset from the middle of a saga.
cat >"$T/saga.json" <<JSON
{"steps":[{"name":"a","run":$(step a),"compensate":$(step undo-a)},
          {"name":"b","run":$(step b)},
          {"name":"c","run":$(step c)}]}
JSON
expect_ok aj wf start saga --id s-1 --input-file "$T/saga.json"
drain
expect_ok aj wf result s-1
expect_eq "a b c" "$(tr '\n' ' ' <"$ledger" | sed 's/ $//')" "first run's steps"
ev=$(events_of s-1)
seq_a=$(printf '%s' "$ev" | perl -MJSON::PP -e '
    my $a = JSON::PP->new->decode(do { local $/; <STDIN> });
    for (@$a) { if ($_->{type} eq "activity_completed" && $_->{name} eq "a") { print $_->{seq}; last } }')
[[ $seq_a =~ ^[0-9]+$ ]] || fail "no activity_completed for step a: $ev"
expect_ok aj wf reset s-1 --to-event "$seq_a" --reason "b and c again"
expect_eq "s-1 run 2" "$OUT" "reset output"
drain
expect_ok aj wf result s-1
expect_eq "a b c b c" "$(tr '\n' ' ' <"$ledger" | sed 's/ $//')" "steps after the reset point ran again, a did not"
run aj wf show s-1 --json
expect_eq 2 "$(jget run)" "new run"
expect_eq completed "$(jget state)" "new run's state"
ev2=$(jget events)
expect_eq 1 "$(jcount '$_->{type} eq "workflow_reset"' "$ev2")" "workflow_reset event"
expect_eq 1 "$(jcount '$_->{type} eq "activity_completed" && $_->{name} eq "a"' "$ev2")" "a copied once"
expect_eq "$seq_a" "$(jcount '$_->{seq} <= '"$seq_a" "$ev2")" "the copied prefix"
# The first run is still there, unchanged.
ev1=$(events_of s-1 1)
expect_eq "$(jget length "$ev")" "$(jget length "$ev1")" "run 1 history length"
expect_eq 1 "$(jcount '$_->{type} eq "workflow_completed"' "$ev1")" "run 1 completed"
seq_sched_b=$(printf '%s' "$ev2" | perl -MJSON::PP -e '
    my $a = JSON::PP->new->decode(do { local $/; <STDIN> });
    for (@$a) { if ($_->{type} eq "activity_scheduled" && $_->{name} eq "b") { print $_->{seq}; last } }')

# 2. Reset: bad input; nothing changes.
expect_error 2 "--to-event" aj wf reset s-1
expect_error 2 "--to-event" aj wf reset s-1 --to-event abc
expect_error 2 "--to-event" aj wf reset s-1 --to-event 0
expect_error 2 "there is no event 999" aj wf reset s-1 --to-event 999
expect_error 2 "activity_scheduled" aj wf reset s-1 --to-event "$seq_sched_b"
expect_error 3 "not found" aj wf reset nobody --to-event 1
expect_error 2 "workflow id" aj wf reset 'bad id' --to-event 1
expect_error 2 "reset reason is at most 1000 bytes" aj wf reset s-1 --to-event 1 --reason "$(head -c 1001 /dev/zero | tr '\0' r)"
expect_exit 0 aj wf show s-1 --json
expect_eq 2 "$(jget run)" "bad resets changed nothing"

# 3. Updates: a saga has no update handlers, so the workflow refuses one (where it waits for
# its step) with its message, and its history shows no trace of it.
cat >"$T/slow.json" <<JSON
{"steps":[{"name":"wait","run":["sh","-c","while [ ! -e $T/go ]; do sleep 0.05; done"]}]}
JSON
expect_ok aj wf start saga --id u-1 --input-file "$T/slow.json"
start_worker --concurrency 2
expect_error 2 "no update handler 'approve'" aj wf update u-1 approve --payload '{"ok":true}' --timeout 60s
expect_eq 0 "$(jcount '$_->{type} =~ /^update/' "$(events_of u-1)")" "a rejected update left a trace"
touch "$T/go"
expect_ok aj wf result u-1 --wait --timeout 60s
stop_worker
expect_eq 0 "$(jcount '$_->{type} =~ /^update/' "$(events_of u-1)")" "update events in the history"

# 4. Update: bad input (nothing is sent).
expect_error 2 "not valid JSON" aj wf update u-1 approve --payload '{bad'
expect_error 2 "--timeout" aj wf update u-1 approve --timeout soon
expect_error 2 "update name" aj wf update u-1 'bad name'
expect_error 2 "update name is empty" aj wf update u-1 '' --payload 1
expect_error 2 "--timeout '0s' must be more than zero" aj wf update u-1 approve --timeout 0s
expect_error 2 "workflow id" aj wf update 'bad id' approve
expect_error 3 "not found" aj wf update nobody approve
expect_error 4 "has finished" aj wf update u-1 approve
expect_exit 2 aj wf update u-1

# 5. Help for the new commands, and the cache in aj stats.
expect_ok aj wf update --help
expect_contains "$OUT" "Usage: aj wf update ID NAME" "update --help"
expect_ok aj wf reset --help
expect_contains "$OUT" "Usage: aj wf reset ID --to-event SEQ" "reset --help"
expect_ok aj stats --json
expect_eq 0 "$(jget activity_cache.entries)" "activity cache entries"
expect_eq 0 "$(jget totals.activity_cache_hits)" "activity cache hits"

# 6. An accepted update through the CLI, against the example cart's workers (examples/cart.c):
# the result is printed, a refused one is not recorded, and the cart's cached price list fills
# the activity cache.
cart="${AJ_BUILD_DIR:-}/examples/example_cart"
if [ -x "$cart" ]; then
    "$cart" "$DB" --worker 2>>"$T/cart.log" &
    cart_pid=$!
    _AJ_PIDS+=("$cart_pid")
    for ((i = 0; i < 600; i++)); do # until the worker has registered the type
        run aj wf start cart --id cart-9 --input '{}'
        [ "$RC" = 0 ] && break
        sleep 0.05
    done
    expect_eq 0 "$RC" "aj wf start cart"
    expect_ok aj wf update cart-9 add --payload '{"sku":"A-1","qty":3}' --timeout 60s
    expect_eq '{"items":3}' "$OUT" "update result"
    expect_error 2 "from 1 to 100" aj wf update cart-9 add --payload '{"sku":"A-1","qty":0}' --timeout 60s
    expect_ok aj --json wf update cart-9 add --payload '{"sku":"B-2","qty":1}'
    expect_eq 4 "$(jget items)" "update result with --json"
    expect_ok aj wf signal cart-9 checkout
    expect_ok aj wf result cart-9 --wait --timeout 60s
    expect_contains "$OUT" '"items":4' "cart result"
    ev=$(events_of cart-9)
    expect_eq 2 "$(jcount '$_->{type} eq "update_accepted"' "$ev")" "accepted updates recorded"
    expect_eq 2 "$(jcount '$_->{type} eq "update_completed"' "$ev")" "update results recorded"
    kill -TERM "$cart_pid"
    wait "$cart_pid" || fail "the cart worker exited $?"
    expect_ok aj stats --json
    expect_eq 1 "$(jget activity_cache.entries)" "activity cache entries after the cart"
    expect_eq 1 "$(jget totals.activity_cache_misses)" "activity cache misses"
    expect_eq 1 "$(jget totals.activity_cache_fills)" "activity cache fills"
else
    echo "examples not built: the CLI update against the cart example is skipped" >&2
fi
echo "wf update/reset ok"
