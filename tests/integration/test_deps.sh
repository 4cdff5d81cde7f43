#!/usr/bin/env bash
# test_deps.sh — job dependencies end to end: `aj submit --after`, `aj dag submit` (a diamond of
# shell jobs and a 1,000-job graph, each job appending its name to a file, so the order they
# ran in is checked), `aj worker --drain` waiting for jobs that wait on
# dependencies it runs (and not for ones whose dependencies cannot finish soon), the failure policies (cascade through failure, dead-letter and cancel,
# transitively; ignore; wait then redrive), and `aj job show` / `aj dag show`.
source "${AJ_TEST_LIB:?}"

# --- A diamond through `aj dag submit`: a, then b and c, then d. ---
cat >"$T/diamond.json" <<JSON
{"jobs":[
 {"name":"d","after":["b","c"],"run":["sh","-c","echo d >> '$T/order'"]},
 {"name":"b","after":["a"],"run":["sh","-c","echo b >> '$T/order'"],"queue":"dq"},
 {"name":"a","run":["sh","-c","echo a >> '$T/order'"],"priority":"high"},
 {"name":"c","after":["a"],"type":"shell","payload":{"argv":["sh","-c","echo c >> '$T/order'"]}}
]}
JSON
expect_ok aj dag submit "$T/diamond.json"
expect_match '^d [0-9]+
b [0-9]+
a [0-9]+
c [0-9]+$' "$OUT" "one NAME ID line per job, in file order"
d=$(printf '%s\n' "$OUT" | awk '$1=="d"{print $2}')
a=$(printf '%s\n' "$OUT" | awk '$1=="a"{print $2}')
expect_eq scheduled "$(job_field "$d" state)" "a job waiting on dependencies"
expect_eq null "$(job_field "$d" run_at)" "its run_at"
expect_eq 2 "$(job_field "$d" deps_pending)" "d's pending dependencies"
expect_eq ready "$(job_field "$a" state)" "a job without dependencies"
expect_eq 512 "$(job_field "$a" priority)" "a submit option in the file"
expect_ok aj stats --json
expect_eq 3 "$(jget jobs.scheduled)" "waiting jobs count as scheduled"
expect_ok aj job show "$d"
expect_line '^waits on: +[0-9]+ \(scheduled\)$' "$OUT" "job show lists what d waits on"
expect_line '^on dep failure: +cascade, 2 pending$' "$OUT" "job show names the policy"
expect_ok aj job show "$a"
expect_line '^waited on by: +[0-9]+$' "$OUT" "job show lists what waits on a"
expect_ok aj dag show "$a" --json
expect_eq 4 "$(jget jobs.length)" "dag show: the whole graph"
expect_eq 4 "$(jget edges.length)" "dag show: the edges"
expect_eq null "$(jget jobs.2.on_dep_failure)" "dag show --json: no policy for a job without dependencies"
expect_eq cascade "$(jget jobs.0.on_dep_failure)" "dag show --json: d's policy"
expect_ok aj dag show "$d"
expect_line '^graph [0-9]+: 4 jobs$' "$OUT" "dag show's title"
expect_line "^  $a -> [0-9]+$" "$OUT" "dag show lists the edges from a"
lone=$(submit --queue lone --type echo)
expect_ok aj dag show "$lone"
expect_line '^1 job linked by dependencies$' "$OUT" "dag show of a lone job: singular"
expect_ok aj dag show "$lone" --json
expect_eq null "$(jget jobs.0.on_dep_failure)" "dag show --json of a lone job: null policy"
drain
expect_eq "a b c d" "$(sort <"$T/order" | tr '\n' ' ' | sed 's/ $//')" "every job ran once"
expect_eq a "$(head -1 "$T/order")" "a ran first"
expect_eq d "$(tail -1 "$T/order")" "d ran last"
expect_ok aj dag show "$d" --json
expect_eq 4 "$(jcount '$_->{state} eq "completed"' "$(jget jobs)")" "all completed"

# --- --after on the command line, and a dependency already finished at submit. ---
first=$(submit --type echo --queue s)
second=$(submit --type echo --queue s --after "$first")
expect_eq scheduled "$(job_field "$second" state)" "--after holds the job"
drain --queue s
expect_eq completed "$(job_field "$second" state)" "--drain waited for the dependent job"
third=$(submit --type echo --queue s --after "$first,$second")
expect_eq ready "$(job_field "$third" state)" "completed dependencies apply at submit"

# --- Policies. The job waiting (policy wait) on a dead job lives in a queue of its own (pw). ---
fails=$(submit --queue p --max-attempts 1 -- sh -c 'exit 100')
casc=$(submit --queue p --type echo --after "$fails")
casc2=$(submit --queue p --type echo --after "$casc")
ign=$(submit --queue p --type echo --after "$fails" --on-dep-failure ignore)
wt=$(submit --queue pw --type echo --after "$fails" --on-dep-failure wait)
drain --queue p
expect_eq dead "$(job_field "$fails" state)" "setup: the dependency failed"
expect_eq dead "$(job_field "$casc" state)" "cascade"
expect_eq dependency_failed "$(job_field "$casc" dead_reason)" "cascade's reason"
expect_eq dead "$(job_field "$casc2" state)" "cascade is transitive"
expect_eq dependency_failed "$(job_field "$casc2" dead_reason)" "transitive reason"
expect_eq completed "$(job_field "$ign" state)" "ignore"
expect_eq scheduled "$(job_field "$wt" state)" "wait"
expect_ok aj dlq ls --reason dependency_failed --json
expect_eq 2 "$(jget length)" "dependency_failed jobs in the dead-letter queue"
# wait: the dependency is redriven (now it succeeds) and completes; then the job runs.
expect_ok aj dlq redrive "$fails"
drain --queue p
expect_eq dead "$(job_field "$fails" state)" "the redriven job fails again (exit 100)"
expect_eq scheduled "$(job_field "$wt" state)" "still waiting"
ok=$(submit --queue p --type echo)
wt2=$(submit --queue pw2 --type echo --after "$ok" --on-dep-failure wait)
drain --queue p,pw2
expect_eq completed "$(job_field "$wt2" state)" "wait: runs once the dependency completes"

# A job held on dependencies does not hold `--drain` by itself: not when its dependency is
# delayed past the drain horizon, sits in a paused queue, or is dead under `wait` (the
# short timeouts make a regression fail instead of hang).
hx=$(submit --queue hd --type echo --delay 1h)
hy=$(submit --queue hd --type echo --after "$hx")
run timeout 20 "$AJ_BIN" --db "$DB" worker --drain --queue hd
expect_eq 0 "$RC" "drain exits though a job waits on a delayed dependency"
expect_eq scheduled "$(job_field "$hy" state)" "the dependent still waits"
px=$(submit --queue hp --type echo)
expect_ok aj queue pause hp
py=$(submit --queue hq --type echo --after "$px")
run timeout 20 "$AJ_BIN" --db "$DB" worker --drain --queue hp,hq
expect_eq 0 "$RC" "drain exits though a job waits on a job of a paused queue"
expect_eq scheduled "$(job_field "$py" state)" "the dependent of the paused job waits"
run timeout 20 "$AJ_BIN" --db "$DB" worker --drain --queue pw
expect_eq 0 "$RC" "drain exits though a wait job's dependency is dead"
expect_eq scheduled "$(job_field "$wt" state)" "the wait job still waits"

# Redriving a cascade dependent while its dependency is still dead is refused (exit 4, naming
# the dependency); `--all` skips and reports it, redriving the rest; under wait it is allowed.
rx=$(submit --queue r --max-attempts 1 -- sh -c 'exit 100')
ry=$(submit --queue r2 --type echo --after "$rx")
rz=$(submit --queue r2 --max-attempts 1 -- sh -c 'exit 100')
drain --queue r,r2
expect_eq dead "$(job_field "$ry" state)" "setup: the dependent died of its dependency"
expect_error 4 "job $ry died because job $rx it depends on is dead; redrive $rx first" \
    aj dlq redrive "$ry"
expect_eq dead "$(job_field "$ry" state)" "a refused redrive changes nothing"
expect_ok aj dlq redrive --all --queue r2 --json
expect_eq 1 "$(jget count)" "--all redrives the rest"
expect_eq "$rz" "$(jget ids.0)" "--all redrove the job without a dead dependency"
expect_contains "$ERR" "skipped: job $ry died because job $rx" "--all reports the skipped job"
expect_eq dead "$(job_field "$ry" state)" "--all skipped the dependent"
expect_ok aj dlq redrive "$rx"
expect_ok aj dlq redrive "$ry"
expect_eq scheduled "$(job_field "$ry" state)" "redriven once its dependency is"

# Dead-lettered by attempts, and cancelled: both count as failed.
dl=$(submit --queue q --max-attempts 1 --backoff none -- sh -c 'exit 3')
dl_dep=$(submit --queue q --type echo --after "$dl")
drain --queue q
expect_eq max_attempts "$(job_field "$dl" dead_reason)" "setup: dead-lettered"
expect_eq dependency_failed "$(job_field "$dl_dep" dead_reason)" "cascade on dead-letter"
c1=$(submit --queue c --type echo --delay 1h)
c2=$(submit --queue c --type echo --after "$c1")
c3=$(submit --queue c --type echo --after "$c2")
c4=$(submit --queue c --type echo --after "$c1" --on-dep-failure wait)
c5=$(submit --queue c --type echo --after "$c2" --on-dep-failure wait)
expect_ok aj job cancel "$c1"
expect_eq dead "$(job_field "$c2" state)" "cascade on cancel"
expect_eq dead "$(job_field "$c3" state)" "cascade on cancel, transitively"
expect_eq dead "$(job_field "$c4" state)" "wait on a cancelled job (it can never complete)"
expect_eq scheduled "$(job_field "$c5" state)" "wait on a dead job (it may be redriven)"
expect_contains "$(job_field "$c2" error)" "dependency $c1 was cancelled" "the error names it"

# --- 1,000 jobs in 20 layers of 50, each waiting on two of the layer before (200 jobs in a
# sanitizer build: 1,000 processes under ASan take minutes, and the normal build runs 1,000). ---
N=1000
if sanitized; then N=200; fi
perl -e '
    my @j;
    for my $i (0 .. $ARGV[1] - 1) {
        my $l = int($i / 50);
        my $h = { name => "j$i", queue => "big",
                  run => [ "sh", "-c", "echo j$i >> \"\$0\"", $ARGV[0] ] };
        if ($l > 0) {
            my $b = ($l - 1) * 50;
            my %a = map { ("j" . ($b + $_)) => 1 } ($i % 50, ($i * 7 + 3) % 50);
            $h->{after} = [ sort keys %a ];
        }
        push @j, $h;
    }
    use JSON::PP;
    print JSON::PP->new->canonical->encode({ jobs => \@j });
' "$T/big.order" "$N" >"$T/big.json"
expect_ok aj dag submit "$T/big.json" --json
expect_eq "$N" "$(jget length)" "--json: an object from name to id"
last=$(jget "j$((N - 1))")
# 1,000 processes take a while on a loaded machine (or under ASan): more than drain's 60 s.
run timeout 400 "$AJ_BIN" --db "$DB" worker --drain --queue big --concurrency 16
expect_eq 0 "$RC" "draining the big graph"
expect_ok aj job ls --queue big --json
expect_eq "$N" "$(jcount '$_->{state} eq "completed"')" "every job of the big graph completed"
expect_ok aj dag show "$last" --json
expect_eq "$N" "$(jget jobs.length)" "dag show: the whole submitted graph"
printf '%s' "$OUT" >"$T/graph.json"
# Each job ran after every job it waited on: a job appends its name to big.order while it
# runs, which is after its dependencies finished (and so after they appended theirs).
expect_eq "$N" "$(sort -u "$T/big.order" | wc -l | tr -d ' ')" "every job of the big graph ran"
bad=$(perl -MJSON::PP -e '
    open my $f, "<", $ARGV[0] or die;
    my $g = JSON::PP->new->decode(do { local $/; <$f> });
    open my $o, "<", $ARGV[1] or die;
    my %line;
    my $n = 0;
    while (<$o>) { chomp; $line{$_} = $n++; }
    my %name = map { $_->{id} => $_->{name} } @{ $g->{jobs} };
    my ($bad, $e) = (0, 0);
    for my $edge (@{ $g->{edges} }) {
        $e++;
        $bad++ unless $line{ $name{ $edge->{from} } } < $line{ $name{ $edge->{to} } };
    }
    print $e < ($ARGV[2] - 50) * 1.8 ? "only $e edges" : $bad;
' "$T/graph.json" "$T/big.order" "$N")
expect_eq 0 "$bad" "jobs that ran before a dependency finished"
expect_ok aj job show "$last" --json
expect_eq 2 "$(jget after.length)" "the last job waits on two jobs"

echo "PASS test_deps"
