#!/usr/bin/env bash
# test_queue_controls.sh — `aj queue ls|pause|resume|limit` across processes: a paused queue is
# not claimed from (its jobs stay ready, submits work) until resumed; a concurrency limit of 2
# holds across two workers of 4 threads each (shell jobs record start and end times: never more
# than 2 overlap); a rate limit of 5/1s holds across two workers (no 1 s window of claim times
# holds more than 5 — strict on the maximum, silent about speed); controls are stored and seen
# by every later process. Bad input for every command.
source "${AJ_TEST_LIB:?}"

# --- bad input: exit 2, nothing stored -----------------------------------------------------------
expect_error 2 "QUEUE" aj queue pause
expect_error 2 "queue" aj queue pause 'a b'
expect_error 2 "queue" aj queue resume ''
expect_error 2 "give --concurrency, --rate or both" aj queue limit q
expect_error 2 "--concurrency" aj queue limit q --concurrency -1
expect_error 2 "--concurrency" aj queue limit q --concurrency two
expect_error 2 "--concurrency" aj queue limit q --concurrency 100001
expect_error 2 "--rate" aj queue limit q --rate 10
expect_error 2 "--rate" aj queue limit q --rate 0/1s
expect_error 2 "--rate" aj queue limit q --rate 10/soon
expect_error 2 "--rate" aj queue limit q --rate 10/0s
expect_error 2 "--rate" aj queue limit q --rate 1001/1s
expect_error 2 "--rate" aj queue limit q --rate -5/1s
expect_error 2 "unknown" aj queue limit q --burst 3
expect_error 2 "unexpected" aj queue ls extra
expect_error 2 "" aj queue bogus
expect_ok aj queue ls --json
expect_eq 0 "$(jget length)" "queues after bad input"
for cmd in ls pause resume limit; do
    expect_ok aj queue "$cmd" --help
    expect_line '^Usage: aj queue' "$OUT" "aj queue $cmd --help"
done

# --- pause and resume ---------------------------------------------------------------------------
expect_ok aj queue pause held
expect_eq "queue held paused" "$OUT" "pause output"
expect_ok aj queue pause held --json
expect_eq true "$(jget paused)" "pause --json"
held=()
for i in 1 2 3; do held+=("$(submit --queue held --type echo)"); done
other=$(submit --queue free --type echo)
start_worker --queue held,free
wait_for 20 state_is "$other" completed
# The worker has claimed from the free queue since the held jobs were submitted: they stay ready.
for id in "${held[@]}"; do expect_eq ready "$(job_field "$id" state)" "a job of a paused queue"; done
expect_ok aj queue ls --json
expect_eq 1 "$(jcount '$_->{queue} eq "held" && $_->{paused} && $_->{jobs}{ready} == 3')" \
    "aj queue ls of the paused queue"
# --drain does not wait for a paused queue (nothing of it can run until it is resumed).
stop_worker
start=$(date +%s)
drain --queue held,free
[ $(($(date +%s) - start)) -lt 10 ] || fail "a paused queue held the drain"
for id in "${held[@]}"; do expect_eq ready "$(job_field "$id" state)" "a paused job after a drain"; done
start_worker --queue held,free
expect_ok aj queue resume held
expect_eq "queue held resumed" "$OUT" "resume output"
for id in "${held[@]}"; do wait_for 20 state_is "$id" completed; done
stop_worker

# --- concurrency limit 2 across two workers -------------------------------------------------------
expect_ok aj queue limit busy --concurrency 2
expect_eq "queue busy: concurrency 2" "$OUT" "limit output"
LOG="$T/overlap.log"
ids=()
for i in $(seq 1 12); do
    ids+=("$(submit --queue busy -- sh -c "echo start \$(date +%s%N) >>'$LOG'; sleep 0.2; echo end \$(date +%s%N) >>'$LOG'")")
done
start_worker --queue busy --concurrency 4
W1=$WORKER_PID
start_worker --queue busy --concurrency 4
W2=$WORKER_PID
for id in "${ids[@]}"; do wait_for 60 state_is "$id" completed; done
expect_eq 24 "$(wc -l <"$LOG" | tr -d ' ')" "lines in the overlap log"
max=$(sort -k2,2n -k1,1r "$LOG" | awk '$1 == "start" { n++; if (n > m) m = n } $1 == "end" { n-- } END { print m }')
[ "$max" -le 2 ] || fail "$max jobs of a queue limited to 2 ran at once"
[ "$max" -ge 1 ] || fail "no job ran"
expect_ok aj queue ls --json
expect_eq 1 "$(jcount '$_->{queue} eq "busy" && $_->{concurrency} == 2 && $_->{leases_counted} == 0 && $_->{jobs}{completed} == 12')" \
    "aj queue ls of the limited queue after its jobs"
WORKER_PID=$W1
stop_worker
WORKER_PID=$W2
stop_worker

# --- rate limit 5/1s across two workers ---------------------------------------------------------
expect_ok aj queue limit paced --rate 5/1s --json
expect_eq 5 "$(jget rate.count)" "limit --json rate count"
expect_eq 1s "$(jget rate.window)" "limit --json rate window"
rids=()
for i in $(seq 1 16); do rids+=("$(submit --queue paced --type echo)"); done
start_worker --queue paced --concurrency 4
W1=$WORKER_PID
start_worker --queue paced --concurrency 4
W2=$WORKER_PID
for id in "${rids[@]}"; do wait_for 60 state_is "$id" completed; done
expect_ok aj job ls --queue paced --json --limit 100
expect_eq 16 "$(jget length)" "jobs of the paced queue"
worst=$(printf '%s' "$OUT" | perl -MJSON::PP -MTime::Local -e '
    my $a = decode_json(do { local $/; <STDIN> });
    my @t = sort { $a <=> $b } map {
        my ($y, $mo, $d, $h, $mi, $s, $f) =
            $_->{started_at} =~ /^(\d+)-(\d+)-(\d+)T(\d+):(\d+):(\d+)(?:\.(\d+))?Z$/ or die;
        timegm($s, $mi, $h, $d, $mo - 1, $y) * 1000 + substr(($f // "") . "000", 0, 3)
    } @$a;
    my $worst = 0;
    for my $i (0 .. $#t) {
        my $n = grep { $_ >= $t[$i] && $_ < $t[$i] + 1000 } @t;
        $worst = $n if $n > $worst;
    }
    print $worst;')
[ "$worst" -le 5 ] || fail "$worst claims in one 1s window of a queue limited to 5/1s"
WORKER_PID=$W1
stop_worker
WORKER_PID=$W2
stop_worker

# --- controls are stored: every later process sees them -----------------------------------------
expect_ok aj queue limit busy --concurrency none --rate 100/1m
expect_eq "queue busy: no concurrency limit, rate 100/1m" "$OUT" "limit output"
expect_ok aj queue ls --json
expect_eq 1 "$(jcount '$_->{queue} eq "busy" && !defined $_->{concurrency} && $_->{rate}{count} == 100 && $_->{rate}{window} eq "1m"')" \
    "aj queue ls after changing limits"
expect_eq 1 "$(jcount '$_->{queue} eq "paced" && $_->{rate}{count} == 5 && !$_->{paused}')" \
    "aj queue ls keeps the other queue's limit"
expect_ok aj queue ls
expect_line '^QUEUE +SCHEDULED +READY +RUNNING +COMPLETED +DEAD +CANCELLED +PAUSED +CONCURRENCY +RATE$' "$OUT" "aj queue ls header"
expect_line '^busy +0 +0 +0 +12 +0 +0 +no +- +100/1m$' "$OUT" "aj queue ls row"
expect_ok aj check

# --- internal queues ---
# Internal queues (aj.wf/saga, ...) that hold no jobs and have no controls are left out; an
# ordinary queue emptied the same way (its only job purged) is still listed.
for q in aj.internal plain; do
    gone=$(submit --queue "$q" --max-attempts 1 -- sh -c 'exit 100')
    run timeout 60 "$AJ_BIN" --db "$DB" worker --drain --queue "$q"
    expect_ok aj dlq purge "$gone"
done
expect_ok aj queue ls --json
expect_eq 0 "$(jcount '$_->{queue} =~ /^aj\./')" "aj queue ls --json: no empty internal queue"
expect_eq 1 "$(jcount '$_->{queue} eq "plain"')" "aj queue ls --json: an empty ordinary queue"
expect_ok aj queue ls
printf '%s\n' "$OUT" | grep -Eq '^aj\.' && fail "aj queue ls lists an empty internal queue"
expect_line '^plain ' "$OUT" "aj queue ls lists an empty ordinary queue"
expect_ok aj queue pause aj.internal
expect_ok aj queue ls --json
expect_eq 1 "$(jcount '$_->{queue} eq "aj.internal" && $_->{paused}')" \
    "aj queue ls lists an internal queue with controls"
expect_ok aj queue resume aj.internal
