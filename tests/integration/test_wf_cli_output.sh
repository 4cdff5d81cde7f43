#!/usr/bin/env bash
# What `aj wf` prints (issue 9, item 4): an event's aux is an unsigned 64-bit number (the top
# bit flags the last attempt of an activity) and `aj wf history` and `aj wf show --json` print it
# unsigned, never negative; `aj wf ls --help` names every field `aj --json wf ls` prints; the
# workflow guide no longer calls continue-as-new missing.
. "$AJ_TEST_LIB"

# 1. A saga whose only step is dead-lettered at its first attempt: activity_failed with aux
#    1 | 1 << 63.
expect_ok aj wf start saga --id bad-1 --input '{"steps":[{"name":"s","run":["false"],"max_attempts":1}]}'
drain
final=9223372036854775809
expect_ok aj wf history bad-1
hist=$OUT
line=$(printf '%s\n' "$hist" | grep '"type":"activity_failed"') || fail "no activity_failed line"
expect_contains "$line" "\"aux\":$final" "aj wf history prints aux unsigned"
printf '%s' "$hist" | grep -q '"aux":-' && fail "aj wf history printed a negative aux"
# Every line is still one JSON object with every field.
while IFS= read -r l; do
    expect_eq "seq,type,name,time,hlc,id,prev_id,data,aux" \
        "$(printf '%s' "$l" | perl -MJSON::PP -e '
            my $o = JSON::PP->new->decode(do { local $/; <STDIN> });
            print join(",", grep { exists $o->{$_} }
                qw(seq type name time hlc id prev_id data aux)), "\n"')" "history line fields"
done <<<"$hist"

expect_ok aj --json wf show bad-1
show=$OUT
expect_eq bad-1 "$(jget id "$show")" "show --json id"
expect_contains "$show" "\"type\":\"activity_failed\",\"name\":\"s\"" "show --json event"
aux=$(printf '%s' "$show" | perl -MJSON::PP -e '
    my $o = JSON::PP->new->decode(do { local $/; <STDIN> });
    for (@{$o->{events}}) { print "$_->{aux}" if $_->{type} eq "activity_failed" }')
expect_eq "$final" "$aux" "aj wf show --json prints aux unsigned"
printf '%s' "$show" | grep -q '"aux":-' && fail "aj wf show --json printed a negative aux"
expect_eq "$(printf '%s\n' "$hist" | wc -l)" "$(jget events.length "$show")" "every event shown"
# One "events" member: the spliced array replaces the count (a duplicate key, which JSON
# parsers resolve differently, was printed before).
expect_eq 1 "$(printf '%s' "$show" | grep -o '"events":' | wc -l)" "show --json has one events member"

# An activity_scheduled's aux (a job id) prints as before.
job=$(printf '%s' "$show" | perl -MJSON::PP -e '
    my $o = JSON::PP->new->decode(do { local $/; <STDIN> });
    for (@{$o->{events}}) { print "$_->{aux}" if $_->{type} eq "activity_scheduled" }')
[[ $job =~ ^[1-9][0-9]*$ ]] || fail "activity_scheduled aux '$job' is not a job id"
expect_ok aj job show "$job" --json
expect_eq dead "$(jget state)" "the activity's job"

# 2. `aj wf ls --help` names every field of `aj --json wf ls`.
expect_ok aj wf ls --help
help=$OUT
expect_ok aj --json wf ls
keys=$(jget 0 | perl -MJSON::PP -e '
    my $o = JSON::PP->new->decode(do { local $/; <STDIN> }); print join(" ", sort keys %$o)')
[ -n "$keys" ] || fail "aj --json wf ls printed no object"
listed=$(printf '%s' "$help" | tr '\n' ' ' | sed -n 's/.*objects with \([a-z_, ]*\).*/\1/p' |
    tr -d ',' | tr ' ' '\n' | grep . | sort | tr '\n' ' ' | sed 's/ $//')
expect_eq "$keys" "$listed" "the --json fields aj wf ls --help lists"

# 3. The guide: continue-as-new is there (aj_wf_continue_as_new), not "not there yet".
guide="$(dirname "$AJ_TEST_LIB")/../../docs/WORKFLOWS.md"
[ -f "$guide" ] || fail "no $guide"
grep -qi 'continue-as-new is \[*not there yet' "$guide" && fail "WORKFLOWS.md calls continue-as-new not there yet"
grep -q '^## Continue-as-new' "$guide" || fail "WORKFLOWS.md has no Continue-as-new section"
exit 0
