#!/usr/bin/env bash
# test_schedule_worker.sh — `aj worker` runs the schedule service: a 200ms schedule fires on time
# (each job sees its fire time in AJ_SCHEDULED_AT and in its metadata, one job per fire time),
# and after real downtime the catch-up policies skip, once and all handle the missed fires.
source "${AJ_TEST_LIB:?}"

# --- The worker fires schedules: every 200ms, on time, each job sees its fire time ---------
out="$T/fired"
: >"$out"
expect_ok aj schedule add fast --every 200ms --overlap allow --queue fast -- \
    sh -c "echo \"\$AJ_SCHEDULED_AT\" >>$out"
start_worker --concurrency 4
# fast_done N: at least N jobs of the schedule have completed.
fast_done() {
    local s
    s=$("$AJ_BIN" --db "$DB" job ls --queue fast --state completed --json --limit 0) || return 1
    [ "$(jget length "$s")" -ge "$1" ]
}
wait_for 20 fast_done 10
stop_worker
expect_ok aj job ls --queue fast --json --limit 0
expect_eq 0 "$(jcount '$_->{metadata}{scheduled_at} ne $_->{payload}{env}{AJ_SCHEDULED_AT}')" \
    "metadata and env agree"
expect_eq 0 "$(jcount '$_->{metadata}{schedule} ne "fast"')" "metadata schedule"
# Fire times 200ms apart from the first to the last, one job each; every completed job wrote
# its own.
printf '%s' "$OUT" | perl -MJSON::PP -MTime::Local -e '
    sub ms { my ($y,$mo,$d,$h,$mi,$s,$f) = $_[0] =~ /^(\d+)-(\d+)-(\d+)T(\d+):(\d+):(\d+)(?:\.(\d+))?Z$/;
             return timegm($s,$mi,$h,$d,$mo-1,$y) * 1000 + ($f // 0); }
    my $jobs = JSON::PP->new->decode(do { local $/; <STDIN> });
    my @t = sort { $a <=> $b } map { ms($_->{metadata}{scheduled_at}) } @$jobs;
    for my $i (1 .. $#t) { die "fire times $t[$i-1], $t[$i]\n" if $t[$i] - $t[$i-1] != 200 }
' || fail "fire times are not one job each, 200ms apart"
sort -u "$out" >"$out.sorted"
expect_eq "$(wc -l <"$out")" "$(wc -l <"$out.sorted")" "each fire ran once"
# Lateness: created_at - scheduled_at, under 100ms at the median without sanitizers.
late=$(printf '%s' "$OUT" | perl -MJSON::PP -MTime::Local -e '
    sub ms { my ($y,$mo,$d,$h,$mi,$s,$f) = $_[0] =~ /^(\d+)-(\d+)-(\d+)T(\d+):(\d+):(\d+)(?:\.(\d+))?Z$/;
             return timegm($s,$mi,$h,$d,$mo-1,$y) * 1000 + ($f // 0); }
    my $jobs = JSON::PP->new->decode(do { local $/; <STDIN> });
    my @l = sort { $a <=> $b } map { ms($_->{created_at}) - ms($_->{metadata}{scheduled_at}) } @$jobs;
    print $l[int(@l / 2)];')
[ "$late" -ge 0 ] || fail "a job was created before its fire time ($late ms)"
if [ -z "${AJ_SANITIZE:-}" ]; then
    [ "$late" -le 100 ] || fail "median lateness ${late}ms is over 100ms"
fi
expect_ok aj schedule rm fast

# --- Catch-up after real downtime (more than the 5s grace): skip, once, all ----------------
# Three schedules miss at least six fires each while no worker runs. When the worker's first
# round finds them at time P (the created_at of the first job it makes), skip makes no job for
# the backlog, once one (the latest fire by P), all (limit 3) three (the latest three by P).
for mode in skip once all; do
    expect_ok aj schedule add "cu-$mode" --every 1s --catch-up "$mode" --catch-up-limit 3 \
        --overlap allow --queue "cu-$mode" --type echo
done
sleep 6.6
start_worker
# made_jobs: every catch-up schedule has made a job.
made_jobs() {
    local mode s
    for mode in skip once all; do
        s=$("$AJ_BIN" --db "$DB" schedule show "cu-$mode" --json) || return 1
        [ "$(jget jobs_created "$s")" -ge 1 ] || return 1
    done
}
wait_for 20 made_jobs
stop_worker
for mode in skip once all; do
    expect_ok aj schedule show "cu-$mode" --json
    sched=$OUT
    expect_ok aj job ls --queue "cu-$mode" --json --limit 0
    printf '%s' "$OUT" | perl -MJSON::PP -MTime::Local -e '
        my ($mode, $sched) = @ARGV;
        sub ms { my ($y,$mo,$d,$h,$mi,$s,$f) = $_[0] =~ /^(\d+)-(\d+)-(\d+)T(\d+):(\d+):(\d+)(?:\.(\d+))?Z$/;
                 return timegm($s,$mi,$h,$d,$mo-1,$y) * 1000 + ($f // 0); }
        my $jobs = JSON::PP->new->decode(do { local $/; <STDIN> });
        my $s = JSON::PP->new->decode($sched);
        my $created = ms($s->{created_at});
        my @t = sort { $a <=> $b } map { ms($_->{metadata}{scheduled_at}) } @$jobs;
        my ($p) = sort { $a <=> $b } map { ms($_->{created_at}) } @$jobs;
        my $backlog = grep { $_ <= $p } @t;
        if ($mode eq "skip") {
            die "skip: a job for a missed fire\n" if $t[0] < $created + 6000;
            die "skip: $s->{fires_skipped} skipped\n" if $s->{fires_skipped} < 6;
        } elsif ($mode eq "once") {
            die "once: $backlog jobs for the backlog\n" if $backlog != 1;
            die "once: not the latest fire\n" if $t[0] < $created + 6000 || $p - $t[0] >= 1000;
            die "once: $s->{fires_skipped} skipped\n" if $s->{fires_skipped} < 5;
        } else {
            die "all: $backlog jobs for the backlog\n" if $backlog != 3;
            die "all: not consecutive\n" if $t[1] - $t[0] != 1000 || $t[2] - $t[1] != 1000;
            die "all: not the latest three\n" if $p - $t[2] >= 1000;
            die "all: $s->{fires_skipped} skipped\n" if $s->{fires_skipped} < 3;
        }
    ' "$mode" "$sched" || fail "catch-up $mode"
done

expect_ok aj check
