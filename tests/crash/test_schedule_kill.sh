#!/usr/bin/env bash
# Crash test: two `aj worker` processes run the schedule service on one store while schedules
# fire every 100ms (an interval) and every second (a cron with seconds); workers are killed with
# SIGKILL at random moments, mid-run, and restarted. Afterwards every fire time from the first
# to the last has exactly one job: none doubled by two processes racing for it, none lost to a
# kill between a fire and its job (they are one transaction), and the store's indexes match its
# records.
set -euo pipefail
AJ=${AJ_BIN:?AJ_BIN must name the aj binary}
CHAOS_SECONDS=${AJ_CRASH_SECONDS:-8}
SEED=${AJ_CRASH_SEED:-$RANDOM}
RANDOM=$SEED
echo "schedule crash test: ${CHAOS_SECONDS}s of SIGKILLs, seed $SEED"

dir=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    rm -rf "$dir"
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*" >&2
    echo "seed was $SEED" >&2
    exit 1
}

export AJ_DB="sqlite:$dir/aj.db"
# Jobs that need no worker time (echo), so that the test is about firing, not running; overlap
# allow and catch-up all, so that every fire time must produce its job however late it is found.
"$AJ" schedule add ticks --every 100ms --overlap allow --catch-up all --catch-up-limit 10000 \
    --queue ticks --type echo --payload '{}' >/dev/null
"$AJ" schedule add secs --cron '* * * * * *' --overlap allow --catch-up all \
    --catch-up-limit 10000 --queue secs --type echo --payload '{}' >/dev/null

start_worker() {
    "$AJ" worker --concurrency 2 >>"$dir/worker.log" 2>&1 &
    pids+=($!)
}
start_worker
start_worker

kills=0
end=$((SECONDS + CHAOS_SECONDS))
while [ $SECONDS -lt $end ]; do
    sleep "0.$((RANDOM % 7 + 2))"
    victim_index=$((RANDOM % ${#pids[@]}))
    victim=${pids[$victim_index]}
    if kill -9 "$victim" 2>/dev/null; then
        wait "$victim" 2>/dev/null || true
        kills=$((kills + 1))
        unset "pids[$victim_index]"
        pids=("${pids[@]}")
        # Sometimes the survivor runs alone for a while before the victim comes back.
        [ $((RANDOM % 2)) = 0 ] && sleep 0.5
        start_worker
    fi
done
echo "killed $kills workers"
# Stop firing: pause, then let the workers go.
"$AJ" schedule pause ticks
"$AJ" schedule pause secs
for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
pids=()

check_schedule() { # NAME STEP_MS MIN_FIRES
    local name=$1 step=$2 min=$3
    "$AJ" schedule show "$name" --json >"$dir/$name.json"
    "$AJ" job ls --queue "$name" --json --limit 0 >"$dir/$name.jobs"
    perl -MJSON::PP -MTime::Local -e '
        my ($name, $step, $min, $sched_file, $jobs_file) = @ARGV;
        sub slurp { local $/; open my $f, "<", $_[0] or die; JSON::PP->new->decode(<$f>) }
        sub ms { my ($y,$mo,$d,$h,$mi,$s,$f) = $_[0] =~ /^(\d+)-(\d+)-(\d+)T(\d+):(\d+):(\d+)(?:\.(\d+))?Z$/
                     or die "bad time $_[0]\n";
                 return timegm($s,$mi,$h,$d,$mo-1,$y) * 1000 + ($f // 0); }
        my $s = slurp($sched_file);
        my $jobs = slurp($jobs_file);
        my %count;
        $count{ms($_->{metadata}{scheduled_at})}++ for @$jobs;
        my @t = sort { $a <=> $b } keys %count;
        die "$name: too few fires (" . scalar(@t) . ")\n" if @t < $min;
        for my $t (@t) { die "$name: fire time $t has $count{$t} jobs\n" if $count{$t} != 1 }
        for my $i (1 .. $#t) {
            die "$name: fire times $t[$i-1] and $t[$i] are not $step ms apart (a fire was lost)\n"
                if $t[$i] - $t[$i-1] != $step;
        }
        die "$name: the record counts $s->{jobs_created} jobs, the store holds " . scalar(@$jobs) . "\n"
            if $s->{jobs_created} != @$jobs;
        die "$name: last_fire is not the latest fire time\n" if ms($s->{last_fire}) != $t[-1];
        print "$name: " . scalar(@t) . " fire times, one job each\n";
    ' "$name" "$step" "$min" "$dir/$name.json" "$dir/$name.jobs" || fail "schedule $name"
}
check_schedule ticks 100 $((CHAOS_SECONDS * 5))
check_schedule secs 1000 $((CHAOS_SECONDS / 2))
"$AJ" check >/dev/null || fail "aj check found problems"
echo "ok"
