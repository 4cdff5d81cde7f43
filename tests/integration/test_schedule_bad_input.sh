#!/usr/bin/env bash
# test_schedule_bad_input.sh — bad input to every `aj schedule` command exits 2 with one line
# "aj: ..." naming the problem and changes nothing; unknown schedules exit 3; a taken name, a
# second pause and a resume of a running schedule exit 4.
source "${AJ_TEST_LIB:?}"

# --- Bad input: exit 2, one line, nothing changed ------------------------------------------
expect_ok aj schedule add keep --every 1h --type echo
before=$(aj schedule ls --json) || fail "ls failed"
bad() {
    local pattern=$1
    shift
    expect_error 2 "$pattern" aj schedule "$@"
}
bad "missing NAME" add --every 1m --type echo
bad "schedule name" add 'a b' --every 1m --type echo
bad "missing --cron, --every or --at" add x --type echo
bad "exclude each other" add x --cron '* * * * *' --every 1m --type echo
bad "exclude each other" add x --at 2030-01-01T00:00:00Z --every 1m --type echo
bad "minute field: 61 is out of range (0-59)" add x --cron '61 * * * *' --type echo
bad "day-of-week field" add x --cron '* * * * MON#9' --type echo
bad "4 fields" add x --cron '* * * *' --type echo
bad "unknown macro '@reboot'" add x --cron @reboot --type echo
bad "never fires" add x --cron '0 0 30 2 *' --type echo
# preview says it too, instead of printing nothing with exit 0
bad "cron expression '* * 31 2 *' never fires after " preview --cron '* * 31 2 *'
bad "never fires after 2031-01-01T00:00:00Z" preview --cron '0 0 0 1 1 * 2030' --from 2031-01-01T00:00:00Z
bad "minute field: step 4294967297 is out of range (1-60)" preview --cron '0-59/4294967297 * * * *'
bad "unknown time zone 'Mars/Olympus'" add x --cron '* * * * *' --tz Mars/Olympus --type echo
bad "time zone name" add x --cron '* * * * *' --tz ../../etc/passwd --type echo
bad "--tz applies only to --cron" add x --every 1m --tz UTC --type echo
bad "--every" add x --every 10 --type echo
bad "shorter than 10ms" add x --every 5ms --type echo
bad "--every" add x --every 0s --type echo
bad "--at" add x --at tomorrow --type echo
bad "--at" add x --at 2030-01-01T00:00:00 --type echo
bad "--jitter '2d' is longer than 1d" add x --every 1m --jitter 2d --type echo
bad "--catch-up 'sometimes' is not skip, once or all" add x --every 1m --catch-up sometimes --type echo
bad "--catch-up-limit" add x --every 1m --catch-up-limit 0 --type echo
bad "--catch-up-limit" add x --every 1m --catch-up-limit 10001 --type echo
bad "--overlap 'merge' is not skip, buffer, allow or cancel" add x --every 1m --overlap merge --type echo
bad "missing --type" add x --every 1m
bad "--priority" add x --every 1m --type echo --priority urgent
bad "--max-attempts" add x --every 1m --type echo --max-attempts 0
bad "--metadata is not a JSON object" add x --every 1m --type echo --metadata '[1]'
bad "payload is not valid JSON" add x --every 1m --type echo --payload '{'
bad "argv" add x --every 1m --type shell --payload '{}'
bad "conflicts with '-- PROGRAM'" add x --every 1m --type echo -- true
bad "missing PROGRAM after '--'" add x --every 1m --
bad "--delay is not accepted: the schedule decides when its jobs run" add x --every 1m --type echo --delay 1s
bad "--idempotency-key is not accepted: every fire would reuse it" add x --every 1m --type echo --idempotency-key k
bad "--after is not accepted: it names specific jobs" add x --every 1m --type echo --after 1
bad "--on-dep-failure is not accepted: it names specific jobs" add x --every 1m --type echo --on-dep-failure ignore
bad "--payload-lines is not accepted" add x --every 1m --type echo --payload-lines -
bad "--wait is not accepted" add x --every 1m --type echo --wait
# Routing: the same checks and messages as aj submit.
bad "--prefer-wait needs --prefer-node" add x --every 1m --type echo --prefer-wait 5s
bad "--prefer-wait: invalid duration 'soon'" add x --every 1m --type echo --prefer-node n1 --prefer-wait soon
bad "--require-tag: tag name 'a,b' contains ','" add x --every 1m --type echo --require-tag a,b
bad "--avoid-node: node name" add x --every 1m --type echo --avoid-node 'a b'
bad "--prefer-node and --avoid-node name the same node 'n1'" add x --every 1m --type echo --prefer-node n1 --avoid-node n1
bad "unknown flag '--bogus'" add x --every 1m --type echo --bogus
bad "unexpected argument 'y'" add x y --every 1m --type echo
bad "unexpected argument" ls extra
bad "missing NAME" show
bad "schedule name" show 'a b'
bad "missing NAME" pause
bad "missing NAME" resume
bad "missing NAME" trigger
bad "missing NAME" rm
bad "schedule name" rm '/x y'
bad "missing --from" backfill keep --to 2026-01-02T00:00:00Z
bad "missing --to" backfill keep --from 2026-01-02T00:00:00Z
bad "--from" backfill keep --from yesterday --to 2026-01-02T00:00:00Z
bad "is not after --from" backfill keep --from 2026-01-02T00:00:00Z --to 2026-01-02T00:00:00Z
bad "more than 10000 fire times" backfill keep --from 2020-01-01T00:00:00Z --to 2026-01-01T00:00:00Z
bad "missing NAME or --cron" preview
bad "NAME and --cron exclude each other" preview keep --cron '* * * * *'
bad "--tz applies only to --cron" preview keep --tz UTC
bad "--count" preview --cron '* * * * *' --count 0
bad "--count" preview --cron '* * * * *' --count 1001
bad "--from" preview --cron '* * * * *' --from soon
bad "hour field: 25 is out of range" preview --cron '0 25 * * *'
bad "unknown time zone" preview --cron '* * * * *' --tz Nowhere/Land
bad "unknown command 'frob' for 'aj schedule'" frob
after=$(aj schedule ls --json) || fail "ls failed"
expect_eq "$before" "$after" "bad input changed nothing"
expect_error 4 "schedule 'keep' already exists" aj schedule add keep --every 1m --type echo
expect_ok aj schedule rm keep

for sub in show pause resume trigger rm; do
    expect_error 3 "schedule 'ghost' not found" aj schedule $sub ghost
done
expect_error 3 "schedule 'ghost' not found" aj schedule backfill ghost --from 2026-01-01T00:00:00Z \
    --to 2026-01-02T00:00:00Z
expect_error 3 "schedule 'ghost' not found" aj schedule preview ghost
expect_ok aj schedule add p --every 1h --type echo
expect_ok aj schedule pause p
expect_error 4 "schedule 'p' is already paused" aj schedule pause p
expect_ok aj schedule resume p
expect_error 4 "schedule 'p' is not paused" aj schedule resume p
expect_ok aj check
