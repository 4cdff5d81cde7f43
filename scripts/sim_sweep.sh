#!/usr/bin/env bash
# sim_sweep.sh [--seeds 10000] [--from 1] [--steps 1000] [--nodes 3] [--workload all] [--jobs N]
#              [--sim PATH]
#
# Runs the deterministic simulator (aj-sim, docs/TESTING.md "Deterministic simulation") over
# seeds FROM .. FROM+SEEDS-1, N at a time (default: the number of cores). The workload is the
# one given, or with "all" (the default) seed mod 4 picks jobs, workflows, schedules or mixed.
# Prints, for every seed that breaks an invariant, the invariant and the one command that
# reproduces it, then a summary; exit 1 when any seed failed. The simulator is
# build/tests/aj-sim unless --sim names another (build it with `cmake --build build`).
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
seeds=10000 from=1 steps=1000 nodes=3 workload=all jobs=$(nproc 2>/dev/null || echo 2)
sim="$top/build/tests/aj-sim"
usage() {
    sed -n '2,3p' "$0" | sed 's/^# //' >&2
    exit 2
}
while [ $# -gt 0 ]; do
    case $1 in
    --seeds) seeds=${2:?}; shift 2 ;;
    --from) from=${2:?}; shift 2 ;;
    --steps) steps=${2:?}; shift 2 ;;
    --nodes) nodes=${2:?}; shift 2 ;;
    --workload) workload=${2:?}; shift 2 ;;
    --jobs) jobs=${2:?}; shift 2 ;;
    --sim) sim=${2:?}; shift 2 ;;
    -h | --help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "sim_sweep: unknown option '$1'" >&2; usage ;;
    esac
done
for v in "$seeds" "$from" "$steps" "$nodes" "$jobs"; do
    case $v in '' | *[!0-9]*) echo "sim_sweep: '$v' is not a number" >&2; usage ;; esac
done
case $workload in all | jobs | workflows | schedules | mixed) ;;
*) echo "sim_sweep: unknown workload '$workload'" >&2; usage ;;
esac
[ -x "$sim" ] || { echo "sim_sweep: no simulator at $sim (build first)" >&2; exit 2; }

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
export sim steps nodes workload out
one() {
    local seed=$1 wl=$workload
    if [ "$wl" = all ]; then
        local all=(jobs workflows schedules mixed)
        wl=${all[$((seed % 4))]}
    fi
    local log
    if ! log=$("$sim" --seed "$seed" --steps "$steps" --nodes "$nodes" --workload "$wl" 2>&1); then
        {
            echo "seed $seed: $(echo "$log" | grep -m1 "invariant" || echo "$log" | tail -1)"
            echo "  reproduce: $sim --seed $seed --steps $steps --nodes $nodes --workload $wl"
        } >"$out/fail.$seed"
    fi
    return 0
}
export -f one
start=$(date +%s)
seq "$from" $((from + seeds - 1)) | xargs -P "$jobs" -I{} bash -c 'one {}'
secs=$(($(date +%s) - start))
failed=$(find "$out" -name 'fail.*' | wc -l)
if [ "$failed" -gt 0 ]; then
    find "$out" -name 'fail.*' | sort -t. -k2 -n | xargs cat
fi
echo "sim_sweep: $seeds seeds from $from, $steps steps, $nodes nodes, workload $workload:" \
    "$failed failed, ${secs}s"
[ "$failed" -eq 0 ]
