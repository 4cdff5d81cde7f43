#!/usr/bin/env bash
# test_sim.sh — the short simulation sweep run by ctest (docs/TESTING.md, "Deterministic
# simulation"): regression seeds, then SIM_SEEDS seeds (200) of 1,000 steps over every workload,
# two at a time; then determinism: one seed run twice gives the same final line, and two seeds
# give different hashes. Usage: test_sim.sh PATH/TO/aj-sim
set -u
SIM=${1:?usage: test_sim.sh PATH/TO/aj-sim}
SEEDS=${SIM_SEEDS:-200}
STEPS=${SIM_STEPS:-1000}
HERE=$(cd "$(dirname "$0")" && pwd)
fail=0

# Seeds that once found a bug, one "ARGS" line each (comments and blank lines skipped).
while read -r line; do
    case "$line" in '' | '#'*) continue ;; esac
    # shellcheck disable=SC2086 # the line is the argument list
    if ! out=$("$SIM" $line 2>&1); then
        echo "FAIL regression seed: aj-sim $line"
        echo "$out" | tail -3
        fail=1
    fi
done <"$HERE/regression_seeds.txt"

workloads=(jobs workflows schedules mixed)
run_one() {
    local seed=$1 wl=${workloads[$(($1 % 4))]}
    if ! out=$("$SIM" --seed "$seed" --steps "$STEPS" --workload "$wl" 2>&1); then
        echo "FAIL: $(echo "$out" | grep -m1 "invariant")"
        echo "  reproduce: $SIM --seed $seed --steps $STEPS --workload $wl"
        return 1
    fi
}
export -f run_one
export SIM STEPS
export workloads_list="${workloads[*]}"
if ! seq 1 "$SEEDS" | xargs -P 2 -I{} bash -c 'workloads=($workloads_list); run_one {}'; then
    fail=1
fi

a=$("$SIM" --seed 4242 --steps 2000 | tail -1)
b=$("$SIM" --seed 4242 --steps 2000 | tail -1)
c=$("$SIM" --seed 4243 --steps 2000 | tail -1)
if [ "$a" != "$b" ]; then
    echo "FAIL determinism: seed 4242 gave '$a' then '$b'"
    fail=1
fi
case "$a" in
seed=4242\ steps=2000\ hash=????????????????*) ;;
*)
    echo "FAIL final line: '$a'"
    fail=1
    ;;
esac
if [ "${a##*hash=}" = "${c##*hash=}" ]; then
    echo "FAIL: seeds 4242 and 4243 gave the same hash ${a##*hash=}"
    fail=1
fi
[ $fail -eq 0 ] && echo "ok: $SEEDS seeds x $STEPS steps, determinism and distinct hashes"
exit $fail
