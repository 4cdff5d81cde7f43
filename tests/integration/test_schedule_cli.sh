#!/usr/bin/env bash
# test_schedule_cli.sh — `aj schedule`: preview against known instants (daylight-saving gaps and
# overlaps in New York and Berlin), add/ls/show/pause/resume/trigger/backfill/rm with their
# outputs and exit codes, the job template's routing, and --help for every subcommand. Bad input
# is in test_schedule_bad_input.sh, firing by `aj worker` in test_schedule_worker.sh.
source "${AJ_TEST_LIB:?}"

# --- Preview: pure, no store needed -------------------------------------------------------
expect_ok aj schedule preview --cron '30 2 * * *' --tz America/New_York \
    --from 2026-03-07T00:00:00Z --count 3
expect_eq $'2026-03-07T07:30:00Z\n2026-03-08T07:00:00Z\n2026-03-09T06:30:00Z' "$OUT" \
    "New York spring gap: 02:30 fires once at 03:00 EDT"
expect_ok aj schedule preview --cron '30 1 * * *' --tz America/New_York \
    --from 2026-10-31T00:00:00Z --count 3
expect_eq $'2026-10-31T05:30:00Z\n2026-11-01T05:30:00Z\n2026-11-02T06:30:00Z' "$OUT" \
    "New York autumn overlap: 01:30 fires at its first occurrence only"
expect_ok aj schedule preview --cron '0 2 * * *' --tz Europe/Berlin --from 2026-03-28T00:00:00Z \
    --count 3
expect_eq $'2026-03-28T01:00:00Z\n2026-03-29T01:00:00Z\n2026-03-30T00:00:00Z' "$OUT" \
    "Berlin spring gap"
expect_ok aj schedule preview --cron '0 30 2 * * *' --tz Europe/Berlin \
    --from 2026-10-24T12:00:00Z --count 2
expect_eq $'2026-10-25T00:30:00Z\n2026-10-26T01:30:00Z' "$OUT" "Berlin autumn overlap (6 fields)"
# Default count 5, strictly after --from, an offset in --from, JSON.
expect_ok aj schedule preview --cron '0 * * * *' --from 2026-01-01T02:00:00+02:00
expect_eq $'2026-01-01T01:00:00Z\n2026-01-01T02:00:00Z\n2026-01-01T03:00:00Z\n2026-01-01T04:00:00Z\n2026-01-01T05:00:00Z' \
    "$OUT" "default count, strictly after --from"
expect_ok aj schedule preview --cron '0 0 * * FRI#2' --from 2026-01-01T00:00:00Z --count 2 --json
expect_eq '["2026-01-09T00:00:00Z","2026-02-13T00:00:00Z"]' "$OUT" "preview --json"
expect_ok aj schedule preview --cron '@every 1500ms' --from 2026-01-01T00:00:00Z --count 2
expect_eq $'2026-01-01T00:00:01.500Z\n2026-01-01T00:00:03Z' "$OUT" "fractional seconds only when not whole"
expect_ok aj schedule preview --cron '0 0 0 1 1 * 2030' --from 2026-01-01T00:00:00Z
expect_eq '2030-01-01T00:00:00Z' "$OUT" "fewer lines when fewer fire times remain"
# A stored schedule with no fire time left: nothing printed, and stderr says why.
expect_ok aj schedule add y2030 --cron '0 0 0 1 1 * 2030' --type echo
expect_ok aj schedule preview y2030 --from 2031-01-01T00:00:00Z
expect_eq "" "$OUT" "preview of a schedule with no fire time left"
expect_eq "aj: schedule 'y2030' has no fire time after 2031-01-01T00:00:00Z" "$ERR" "its note"
expect_ok aj schedule rm y2030
# Without --from, the times follow now.
expect_ok aj schedule preview --cron '* * * * * *' --count 1
now=$(date -u +%s)
t=$(date -u -d "$OUT" +%s) || fail "preview printed '$OUT'"
[ $((t - now)) -ge 0 ] && [ $((t - now)) -le 2 ] || fail "preview from now printed $OUT"

# --- Help ---------------------------------------------------------------------------------
for cmd in "schedule" "schedule add" "schedule ls" "schedule show" "schedule pause" \
    "schedule resume" "schedule trigger" "schedule backfill" "schedule rm" "schedule preview"; do
    # shellcheck disable=SC2086 # $cmd holds the command words
    expect_ok "$AJ_BIN" $cmd --help
    expect_match "^Usage: aj ${cmd}" "$OUT" "aj $cmd --help"
    expect_contains "$OUT" "Example" "aj $cmd --help"
    [ "$cmd" = schedule ] || expect_contains "$OUT" "Exit codes" "aj $cmd --help"
    # shellcheck disable=SC2086
    expect_ok "$AJ_BIN" help $cmd
done
expect_ok "$AJ_BIN" --help
expect_contains "$OUT" "schedule" "aj --help lists schedule"
expect_ok "$AJ_BIN" worker --help
expect_contains "$OUT" "schedule service" "aj worker --help"

# --- Add, list, show ----------------------------------------------------------------------
expect_ok aj schedule add nightly --cron '30 2 * * *' --tz Europe/Berlin --jitter 1m \
    --catch-up all --catch-up-limit 7 --overlap buffer --queue ops --priority high \
    --max-attempts 5 --metadata '{"team":"infra"}' -- /bin/echo backup
expect_match '^nightly next fire [0-9T:.Z-]+$' "$OUT" "add prints the next fire"
expect_ok aj schedule show nightly --json
expect_eq nightly "$(jget name)" "name"
expect_eq cron "$(jget kind)" "kind"
expect_eq '30 2 * * *' "$(jget cron)" "cron"
expect_eq Europe/Berlin "$(jget tz)" "tz"
expect_eq 1m "$(jget jitter)" "jitter"
expect_eq all "$(jget catch_up)" "catch_up"
expect_eq 7 "$(jget catch_up_limit)" "catch_up_limit"
expect_eq buffer "$(jget overlap)" "overlap"
expect_eq active "$(jget state)" "state"
expect_eq ops "$(jget job.queue)" "job.queue"
expect_eq shell "$(jget job.type)" "job.type"
expect_eq '["/bin/echo","backup"]' "$(jget job.payload.argv)" "job.payload"
expect_eq 512 "$(jget job.priority)" "job.priority"
expect_eq 5 "$(jget job.max_attempts)" "job.max_attempts"
expect_eq infra "$(jget job.metadata.team)" "job.metadata"
expect_eq 0 "$(jget jobs_created)" "jobs_created"
next=$(jget next_fire)
due=$(jget next_due)
expect_match '^20[0-9-]+T0[01]:30:00Z$' "$next" "next fire is 02:30 Berlin"
[ "$(date -u -d "$due" +%s)" -ge "$(date -u -d "$next" +%s)" ] || fail "due $due before $next"
[ $(($(date -u -d "$due" +%s) - $(date -u -d "$next" +%s))) -le 60 ] || fail "jitter over 1m"
expect_ok aj schedule show nightly
expect_line '^state: +active$' "$OUT" "show"
expect_line '^when: +30 2 \* \* \*$' "$OUT" "show"
expect_line '^overlap: +buffer$' "$OUT" "show"
expect_ok aj schedule add once --at 2030-01-01T00:00:00+01:00 --type echo --payload '{"n":1}'
expect_eq 'once next fire 2029-12-31T23:00:00Z' "$OUT" "add --at"
expect_ok aj schedule ls
expect_line '^NAME +STATE +NEXT +WHEN +TZ +JOBS$' "$OUT" "ls header"
expect_line '^nightly +active +[0-9T:.Z-]+ +30 2 \* \* \* +Europe/Berlin +0$' "$OUT" "ls nightly"
expect_line '^once +active +2029-12-31T23:00:00Z +at 2029-12-31T23:00:00Z +UTC +0$' "$OUT" "ls once"
expect_ok aj schedule ls --json
expect_eq 2 "$(jget length)" "ls --json"
expect_eq once "$(jget 1.name)" "ls --json order"
expect_eq at "$(jget 1.kind)" "ls --json kind"

# --- Pause, resume, trigger, backfill, rm --------------------------------------------------
expect_ok aj schedule pause nightly
expect_eq "" "$OUT" "pause prints nothing"
expect_error 4 "schedule 'nightly' is already paused" aj schedule pause nightly
expect_ok aj schedule show nightly --json
expect_eq paused "$(jget state)" "paused state"
expect_eq null "$(jget next_fire)" "paused next_fire"
expect_ok aj schedule resume nightly --json
expect_eq '{"name":"nightly","state":"active"}' "$OUT" "resume --json"
expect_error 4 "schedule 'nightly' is not paused" aj schedule resume nightly
expect_ok aj schedule trigger once
trig=$OUT
expect_match '^[1-9][0-9]*$' "$trig" "trigger prints the job id"
expect_eq once "$(job_field "$trig" metadata.schedule)" "triggered job metadata"
expect_match '^20[0-9-]+T[0-9:.]+Z$' "$(job_field "$trig" metadata.scheduled_at)" "scheduled_at"
expect_ok aj schedule backfill nightly --from 2026-01-01T00:00:00Z --to 2026-01-04T01:30:00Z
expect_eq 3 "$(printf '%s\n' "$OUT" | wc -l)" "backfill prints one id a line"
ids=($OUT)
expect_eq 2026-01-01T01:30:00Z "$(job_field "${ids[0]}" metadata.scheduled_at)" "backfill 1"
expect_eq 2026-01-02T01:30:00Z "$(job_field "${ids[1]}" metadata.scheduled_at)" "backfill 2"
expect_eq 2026-01-03T01:30:00Z "$(job_field "${ids[2]}" metadata.scheduled_at)" "backfill 3"
expect_eq 2026-01-01T01:30:00Z "$(job_field "${ids[0]}" payload.env.AJ_SCHEDULED_AT)" "shell env"
expect_eq ops "$(job_field "${ids[0]}" queue)" "backfill queue"
expect_ok aj schedule backfill nightly --from 2026-01-04T01:30:00Z --to 2026-01-04T02:00:00Z --json
expect_eq 1 "$(jget count)" "[from, to) includes from"
expect_ok aj schedule backfill nightly --from 2026-01-05T00:00:00Z --to 2026-01-05T00:10:00Z
expect_eq "" "$OUT" "an empty range submits nothing"
expect_ok aj schedule show nightly --json
expect_eq 4 "$(jget jobs_created)" "jobs_created after backfills"
expect_ok aj schedule rm once
expect_error 3 "schedule 'once' not found" aj schedule rm once
expect_ok aj schedule rm nightly --json
expect_eq '{"name":"nightly","removed":true}' "$OUT" "rm --json"
for sub in show pause resume trigger rm; do
    expect_error 3 "schedule 'ghost' not found" aj schedule $sub ghost
done
expect_error 3 "schedule 'ghost' not found" aj schedule backfill ghost --from 2026-01-01T00:00:00Z \
    --to 2026-01-02T00:00:00Z
expect_error 3 "schedule 'ghost' not found" aj schedule preview ghost

# --- Routing in the template: stored, shown, and on every job it creates --------------------
expect_ok aj schedule add gpu --every 1s --require-tag gpu --prefer-node n1 --prefer-wait 5s \
    --avoid-node n2 --type echo --payload '{"n":2}'
expect_ok aj schedule show gpu --json
expect_eq gpu "$(jget job.routing.require_tag)" "schedule routing require_tag"
expect_eq n1 "$(jget job.routing.prefer_node)" "schedule routing prefer_node"
expect_eq 5s "$(jget job.routing.prefer_wait)" "schedule routing prefer_wait"
expect_eq n2 "$(jget job.routing.avoid_node)" "schedule routing avoid_node"
expect_ok aj schedule show gpu
expect_line '^require_tag: +gpu$' "$OUT" "show routing"
expect_line '^prefer_node: +n1 \(others after 5s\)$' "$OUT" "show routing"
expect_line '^avoid_node: +n2$' "$OUT" "show routing"
expect_ok aj schedule trigger gpu
trig=$OUT
expect_eq gpu "$(job_field "$trig" routing.require_tag)" "triggered job require_tag"
expect_eq n1 "$(job_field "$trig" routing.prefer_node)" "triggered job prefer_node"
expect_eq 5s "$(job_field "$trig" routing.prefer_wait)" "triggered job prefer_wait"
expect_eq n2 "$(job_field "$trig" routing.avoid_node)" "triggered job avoid_node"
expect_eq gpu "$(job_field "$trig" metadata.schedule)" "triggered job metadata"
# A schedule without routing shows null, and so do its jobs.
expect_ok aj schedule add plain --every 1h --type echo
expect_ok aj schedule show plain --json
expect_eq null "$(jget job.routing)" "no routing: null"
expect_ok aj schedule show plain
[[ "$OUT" != *require_tag* ]] || fail "show without routing prints require_tag"
expect_ok aj schedule trigger plain
expect_eq null "$(job_field "$OUT" routing)" "a plain schedule's job has no routing"
expect_ok aj schedule rm gpu
expect_ok aj schedule rm plain

expect_ok aj check
