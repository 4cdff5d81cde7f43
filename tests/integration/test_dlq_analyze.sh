#!/usr/bin/env bash
# test_dlq_analyze.sh — the dead-letter inspector: `aj dlq stats` and `aj dlq analyze`, text and
# --json, with filters; each finding (dominant_error, dominant_type, stale, repeated_redrive) is
# made to appear and then to disappear, by the data and by its flag; bad input exits 2; and the
# --error / --older-than filters of ls, redrive and purge select what analyze reports.
source "${AJ_TEST_LIB:?}"

# dead_echo N: makes N more dead echo jobs. A shell job is the only kind `aj worker` can fail,
# so these die another way: each waits on a delayed job (--after) that is then cancelled, and
# is dead-lettered at once as dependency_failed. (Leases shorter than AJ_LEASE_MIN_MS, which
# once made them expire before the job started, are refused.)
dead_echo() {
    local want=$1 i parent id
    for ((i = 0; i < want; i++)); do
        parent=$(submit --queue parents --type echo --delay 1h --payload '{}')
        id=$(submit --queue other --type echo --max-attempts 1 --after "$parent" --payload '{}')
        expect_ok aj job cancel "$parent"
        expect_eq dead "$(job_field "$id" state)" "a job whose dependency was cancelled"
    done
}

# finding KIND [JSON]: the finding of that kind in `aj dlq analyze --json` output, or "null".
finding() {
    printf '%s' "${2-$OUT}" | perl -MJSON::PP -e '
        my $r = JSON::PP->new->decode(do { local $/; <STDIN> });
        my @f = grep { $_->{kind} eq $ARGV[0] } @{$r->{findings}};
        print @f ? JSON::PP->new->canonical->encode($f[0]) : "null";
    ' "$1" || fail "not an analysis: ${OUT:0:200}"
}

# An empty dead-letter queue: nothing to say.
expect_ok aj dlq stats --json
expect_eq '{"by_queue":{},"by_reason":{},"by_type":{},"total":0}' \
    "$(printf '%s' "$OUT" | perl -MJSON::PP -e 'print JSON::PP->new->canonical->encode(decode_json(<STDIN>))')" \
    "stats of an empty queue"
expect_ok aj dlq analyze --json
expect_eq 0 "$(jget total)" "analyze: empty"
expect_eq 0 "$(jget findings.length)" "analyze: no findings when empty"
expect_eq null "$(jget oldest)" "analyze: no oldest when empty"
expect_ok aj dlq analyze
expect_line '^findings: none$' "$OUT" "analyze text when empty"

# Phase A: five shell jobs dead with "exit status N", N differing: one error group.
for n in 3 4 5 6 7; do
    submit --queue work --max-attempts 1 -- sh -c "exit $n" >/dev/null
done
drain
expect_ok aj dlq stats --json
expect_eq 5 "$(jget total)" "stats total"
expect_eq 5 "$(jget by_queue.work)" "stats by queue"
expect_eq 5 "$(jget by_type.shell)" "stats by type"
expect_eq 5 "$(jget by_reason.max_attempts)" "stats by reason"
expect_ok aj dlq stats
expect_line '^total: 5$' "$OUT" "stats text total"
expect_line '^  work +5$' "$OUT" "stats text queue row"

expect_ok aj dlq analyze --json
A=$OUT
expect_eq 5 "$(jget total "$A")" "analyze total"
expect_eq 1 "$(jget error_groups "$A")" "numbers are normalised into one group"
expect_eq "exit status <n>" "$(jget top_errors.0.error "$A")" "top error group"
expect_eq 5 "$(jget top_errors.0.count "$A")" "top error count"
f=$(finding dominant_error "$A")
[ "$f" != null ] || fail "dominant_error should appear: 5 of 5 share one error"
expect_eq 5 "$(jget count "$f")" "dominant_error count"
expect_eq 5 "$(jget total "$f")" "dominant_error total"
expect_eq "exit status <n>" "$(jget subject "$f")" "dominant_error subject"
expect_contains "$(jget message "$f")" "5 of 5 dead letters (100%)" "dominant_error cites its counts"
expect_contains "$(jget recommendation "$f")" "aj dlq redrive --all --error 'exit status'" \
    "dominant_error recommends a command"
f=$(finding dominant_type "$A")
[ "$f" != null ] || fail "dominant_type should appear: 5 of 5 are shell jobs"
expect_eq shell "$(jget subject "$f")" "dominant_type subject"
expect_eq null "$(finding stale "$A")" "no stale finding for fresh dead letters"
expect_eq null "$(finding repeated_redrive "$A")" "no repeated_redrive before any redrive"
for key in kind message count total recommendation; do
    [ "$(jget "findings.0.$key" "$A")" != null ] || fail "a finding has no $key"
done

# The minimum count and the share are flags: above them, the dominant findings go.
expect_ok aj dlq analyze --json --dominant-min 6
expect_eq null "$(finding dominant_error)" "dominant_error below --dominant-min"
expect_eq null "$(finding dominant_type)" "dominant_type below --dominant-min"

# Phase B: other errors and another type. 5 of 11 share an error: no dominant error any more;
# shell is 8 of 11 (72%): the dominant type at a 60% bar.
for i in 1 2 3; do
    submit --queue work --max-attempts 1 -- sh -c 'kill -TERM $$' >/dev/null
done
drain
dead_echo 3
expect_ok aj dlq analyze --json --dominant-share 60
expect_eq 11 "$(jget total)" "analyze total after phase B"
expect_eq null "$(finding dominant_error)" "dominant_error disappears at 5 of 11"
f=$(finding dominant_type)
expect_eq 8 "$(jget count "$f")" "dominant_type: 8 shell jobs"
expect_eq 11 "$(jget total "$f")" "dominant_type: of 11"
expect_ok aj dlq analyze --json --dominant-share 80
expect_eq null "$(finding dominant_type)" "dominant_type under --dominant-share 80"

# Phase C: more of the other type; shell is 8 of 15 (53%): no dominant type at 60%.
dead_echo 4
expect_ok aj dlq analyze --json --dominant-share 60
expect_eq 15 "$(jget total)" "analyze total after phase C"
expect_eq null "$(finding dominant_type)" "dominant_type disappears at 8 of 15"
expect_eq null "$(finding dominant_error)" "still no dominant error"

# Filters apply to the analysis: the echo jobs alone are all one type.
expect_ok aj dlq analyze --json --type echo
expect_eq 7 "$(jget total)" "analyze --type echo"
expect_eq echo "$(jget subject "$(finding dominant_type)")" "dominant type within the filter"
expect_eq 7 "$(jget by_reason.dependency_failed)" "analyze --type echo by reason"
expect_ok aj dlq stats --json --queue other
expect_eq 7 "$(jget total)" "stats --queue other"
expect_eq 7 "$(jget by_type.echo)" "stats --queue other by type"

# Repeated redrives: a job redriven twice that died again each time.
rid=$(jget 0.id "$(aj dlq ls --json --error 'exit status 7')")
[[ $rid =~ ^[0-9]+$ ]] || fail "no dead job with exit status 7"
for i in 1 2; do
    expect_ok aj dlq redrive "$rid"
    drain
    expect_eq dead "$(job_field "$rid" state)" "the redriven job died again"
done
expect_ok aj dlq analyze --json
f=$(finding repeated_redrive)
[ "$f" != null ] || fail "repeated_redrive should appear after two redrives"
expect_eq 1 "$(jget count "$f")" "repeated_redrive count"
expect_eq "$rid" "$(jget example_id "$f")" "repeated_redrive names the job"
expect_contains "$(jget message "$f")" "1 of 15 dead letters died again after 2 or more redrives" \
    "repeated_redrive cites its counts"
expect_eq 1 "$(jget redrives.redriven)" "redrive counts: redriven"
expect_eq 2 "$(jget redrives.total)" "redrive counts: total"
expect_eq 2 "$(jget redrives.max)" "redrive counts: max"
expect_eq 1 "$(jget redrives.histogram.2)" "redrive histogram"
expect_ok aj dlq analyze --json --redrive-threshold 3
expect_eq null "$(finding repeated_redrive)" "repeated_redrive under --redrive-threshold 3"

# Stale dead letters: none at the default 7d; all of them past a 4s threshold. (4s leaves the
# jobs that die again below a few seconds of slack, even under sanitizers.)
expect_eq null "$(finding stale "$(aj dlq analyze --json)")" "nothing is 7 days old"
sleep 4.5
expect_ok aj dlq analyze --json --stale-after 4s
f=$(finding stale)
[ "$f" != null ] || fail "stale should appear with --stale-after 1s"
expect_eq 15 "$(jget count "$f")" "stale count"
expect_eq 4000 "$(jget threshold "$f")" "stale threshold in ms"
expect_contains "$(jget recommendation "$f")" "--older-than 4s" "stale recommends the filter"
oldest=$(jget oldest.id)
[ "$(jget oldest.age_ms)" -ge 4000 ] || fail "the oldest dead letter's age"
[ "$(jget average_age_ms)" -ge 4000 ] || fail "average age"
[ "$(jget newest.id)" != null ] || fail "newest"
expect_ok aj dlq analyze --stale-after 4s
expect_line '^  stale: 15 of 15 dead letters are older than 4s' "$OUT" "analyze text: stale line"
expect_line "^oldest: +job $oldest, dead since " "$OUT" "analyze text: oldest line"
expect_line '^ +[0-9]+ +[0-9]+% +exit status <n>$' "$OUT" "analyze text: top errors row"

# --error and --older-than select for ls, redrive and purge: the stale ones go, and the
# finding with them.
expect_ok aj dlq ls --json --error 'killed by signal'
expect_eq 3 "$(jget length)" "ls --error"
expect_ok aj dlq redrive --all --error 'killed by signal' --older-than 4s --json
expect_eq 3 "$(jget count)" "redrive --all --error --older-than"
drain
expect_ok aj dlq ls --json --older-than 4s
expect_eq 12 "$(jget length)" "ls --older-than leaves out the fresh ones"
expect_ok aj dlq purge --all --older-than 4s
expect_eq 12 "$OUT" "purge --all --older-than"
expect_ok aj dlq analyze --json --stale-after 4s
expect_eq 3 "$(jget total)" "after the purge"
expect_eq null "$(finding stale)" "stale disappears once the old ones are purged"
expect_eq null "$(finding repeated_redrive)" "repeated_redrive went with the purge"

# Bad input: exit 2, one line, nothing printed.
expect_error 2 "--stale-after" aj dlq analyze --stale-after soon
expect_error 2 "--dominant-share" aj dlq analyze --dominant-share 0
expect_error 2 "--dominant-share" aj dlq analyze --dominant-share 101
expect_error 2 "--redrive-threshold" aj dlq analyze --redrive-threshold 0
expect_error 2 "--top" aj dlq analyze --top many
expect_error 2 "--reason" aj dlq stats --reason sleepy
expect_exit 2 aj dlq analyze --bogus
expect_exit 2 aj dlq stats extra-argument
expect_ok aj dlq analyze --help
expect_contains "$OUT" "timeout after <n>s" "analyze --help documents the grouping rule"

echo "PASS test_dlq_analyze"
