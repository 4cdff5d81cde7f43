#!/usr/bin/env bash
# test_routing.sh — affinity and routing across two `aj worker` processes on one store: jobs
# that require a tag, avoid a node or prefer a node run only where they must; a job preferring
# a node that no worker runs on falls back after its wait; a job requiring a tag no worker has
# stays ready. `aj workers` lists both workers with node, tags and last-seen, and they leave the
# registry when they stop. Bad input for every new flag.
source "${AJ_TEST_LIB:?}"

# --- bad input: exit 2, nothing stored ---------------------------------------------------------
expect_error 2 "tag" aj submit --require-tag 'a b' -- true
expect_error 2 "node" aj submit --prefer-node '' -- true
expect_error 2 "node" aj submit --avoid-node '-x' -- true
expect_error 2 "--prefer-wait needs --prefer-node" aj submit --prefer-wait 5s -- true
expect_error 2 "--prefer-wait" aj submit --prefer-node n1 --prefer-wait soon -- true
expect_error 2 "same node" aj submit --prefer-node n1 --avoid-node n1 -- true
expect_error 2 "--tag" aj worker --tag 'a,,b' --drain
expect_error 2 "--tag" aj worker --tag 'gpu,bad tag' --drain
expect_error 2 "--node" aj worker --node 'x y' --drain
expect_error 2 "more than 32 tags" aj worker --tag "$(seq -s, 1 33)" --drain
expect_error 2 "unexpected" aj workers extra
expect_ok aj stats --json
expect_eq 0 "$(jget jobs.ready)" "jobs stored by bad submits"

# --- job show reports the routing ----------------------------------------------------------------
id=$(submit --queue show --require-tag gpu --prefer-node n1 --prefer-wait 2s --avoid-node n2 -- true)
expect_ok aj job show "$id" --json
expect_eq gpu "$(jget routing.require_tag)" "require_tag"
expect_eq n1 "$(jget routing.prefer_node)" "prefer_node"
expect_eq 2s "$(jget routing.prefer_wait)" "prefer_wait"
expect_eq n2 "$(jget routing.avoid_node)" "avoid_node"
expect_ok aj job show "$id"
expect_line '^require tag: +gpu$' "$OUT" "human job show"
expect_line '^prefer node: +n1 \(others after 2s\)$' "$OUT" "human job show"
expect_line '^avoid node: +n2$' "$OUT" "human job show"
expect_ok aj job show "$(submit --queue show -- true)" --json
expect_eq null "$(jget routing)" "routing of a plain job"

# --- two workers -------------------------------------------------------------------------------
gpu=() cpu=() avoid=() prefer=()
for i in 1 2 3 4 5; do
    gpu+=("$(submit --queue r --require-tag gpu -- true)")
    cpu+=("$(submit --queue r --require-tag cpu -- true)")
    avoid+=("$(submit --queue r --avoid-node n1 -- true)")
    prefer+=("$(submit --queue r --prefer-node n2 --prefer-wait 1h -- true)")
done
never=$(submit --queue r --require-tag nosuch -- true)
fallback=$(submit --queue r --prefer-node n3 --prefer-wait 1s -- true)

start_worker --queue r --node n1 --tag gpu,ssd --concurrency 2
W1=$WORKER_PID
start_worker --queue r --node n2 --tag cpu --concurrency 2
W2=$WORKER_PID

workers_listed() {
    local s
    s=$("$AJ_BIN" --db "$DB" workers --json) || return 1
    [ "$(jget length "$s")" = 2 ]
}
wait_for 20 workers_listed
expect_ok aj workers --json
expect_eq 1 "$(jcount '$_->{node} eq "n1" && join(",", @{$_->{tags}}) eq "gpu,ssd" && $_->{alive}')" \
    "the n1 worker in aj workers"
expect_eq 1 "$(jcount '$_->{node} eq "n2" && join(",", @{$_->{tags}}) eq "cpu" && $_->{alive}')" \
    "the n2 worker in aj workers"
expect_eq 2 "$(jcount '$_->{pid} > 0 && $_->{last_seen} =~ /^\d{4}-\d\d-\d\dT/ && $_->{last_seen_ago_ms} >= 0')" \
    "pid and last-seen of both workers"
node_of() { # worker id -> node
    jget "$(perl -e 'print shift' "$1")" "$NODES"
}
NODES=$("$AJ_BIN" --db "$DB" workers --json | perl -MJSON::PP -e '
    my $a = decode_json(do { local $/; <STDIN> });
    print encode_json({ map { $_->{id} => $_->{node} } @$a });')
expect_ok aj workers
expect_line '^ID +NODE +TAGS +HOST +PID +STARTED +LAST SEEN +AGO +STATUS$' "$OUT" "aj workers header"
expect_line " n1 +gpu,ssd +$(hostname) +[0-9]+ +[0-9]{4}-.* alive$" "$OUT" "aj workers row of n1: host, pid, start time"

for id in "${gpu[@]}" "${cpu[@]}" "${avoid[@]}" "${prefer[@]}" "$fallback"; do
    wait_for 30 state_is "$id" completed
done
ran_on() {
    local w
    w=$(job_field "$1" worker)
    printf '%s' "$NODES" | perl -MJSON::PP -e '
        my $m = decode_json(do { local $/; <STDIN> }); print $m->{$ARGV[0]} // "unknown";' "$w"
}
for id in "${gpu[@]}"; do expect_eq n1 "$(ran_on "$id")" "node of require-tag gpu job $id"; done
for id in "${cpu[@]}"; do expect_eq n2 "$(ran_on "$id")" "node of require-tag cpu job $id"; done
for id in "${avoid[@]}"; do expect_eq n2 "$(ran_on "$id")" "node of avoid-node n1 job $id"; done
for id in "${prefer[@]}"; do expect_eq n2 "$(ran_on "$id")" "node of prefer-node n2 job $id"; done
expect_match '^n[12]$' "$(ran_on "$fallback")" "a job preferring an absent node, after its wait"
expect_eq ready "$(job_field "$never" state)" "a job requiring a tag no worker has"

# --- the registry forgets stopped workers --------------------------------------------------------
WORKER_PID=$W1
stop_worker
WORKER_PID=$W2
stop_worker
expect_ok aj workers --json
expect_eq 0 "$(jget length)" "workers listed after both stopped"
expect_eq ready "$(job_field "$never" state)" "the unroutable job after the workers stopped"
