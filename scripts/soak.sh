#!/usr/bin/env bash
# soak.sh [--duration 1h] [--interval 60s] [--rate 50] [--retention 60s] [--out DIR]
#
# Runs a steady mixed load (bench/aj_soak.c: jobs, some dead-lettered, dead letters redriven and
# purged, two-step workflows, a schedule firing every second, finished work collected after the
# retention) on a fresh SQLite store for --duration, sampling every --interval: RSS, open file
# descriptors, threads, store size (database + WAL) and submit and start latency percentiles.
# Writes DIR/soak.csv and DIR/soak.png (gnuplot), then judges growth: over the samples after the
# warm-up (two retention periods, and at least the first quarter of the run) it fits a line to
# each of RSS, descriptors, threads and store size, prints the slope per hour, and fails (exit 1)
# when a slope would add more in an hour than the larger of a floor (32 MiB of RSS, 16
# descriptors, 4 threads, 64 MiB of store) and half the metric's mean: growth that is not
# levelling off. Durations take a unit: 90s, 10m, 1h (a bare number is seconds).
# Installs gnuplot when missing (scripts/setup.sh with AJ_SETUP_SOAK=1).
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
duration=1h interval=60s rate=50 retention=60s out=soak-out
usage() {
    sed -n '2,3p' "$0" | sed 's/^# //' >&2
    exit 2
}
while [ $# -gt 0 ]; do
    case $1 in
    --duration) duration=${2:?}; shift 2 ;;
    --interval) interval=${2:?}; shift 2 ;;
    --rate) rate=${2:?}; shift 2 ;;
    --retention) retention=${2:?}; shift 2 ;;
    --out) out=${2:?}; shift 2 ;;
    -h | --help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "soak: unknown option '$1'" >&2; usage ;;
    esac
done
seconds() { # 90s, 10m, 1h or 90 -> seconds
    case $1 in
    *[0-9]s) echo "${1%s}" ;;
    *[0-9]m) echo $((${1%m} * 60)) ;;
    *[0-9]h) echo $((${1%h} * 3600)) ;;
    *[!0-9]* | '') echo "soak: '$1' is not a duration (e.g. 90s, 10m, 1h)" >&2; exit 2 ;;
    *) echo "$1" ;;
    esac
}
duration_s=$(seconds "$duration")
interval_s=$(seconds "$interval")
retention_s=$(seconds "$retention")
echo "soak: checking the packages (scripts/setup.sh, AJ_SETUP_SOAK=1)"
AJ_SETUP_SOAK=1 "$top/scripts/setup.sh"
"$top/scripts/build.sh" "$top/build-bench" -DCMAKE_BUILD_TYPE=Release -- --target aj_soak
mkdir -p "$out"
store=$(mktemp -d "${TMPDIR:-/tmp}/aj-soak.XXXXXX")
trap 'rm -rf "$store"' EXIT
echo "soak: ${duration_s}s of load at $rate jobs/s, a sample every ${interval_s}s, into $out/soak.csv"
"$top/build-bench/bench/aj_soak" --dir "$store" --duration-s "$duration_s" \
    --interval-s "$interval_s" --rate "$rate" --retention-s "$retention_s" | tee "$out/soak.csv"

if command -v gnuplot >/dev/null; then
    gnuplot <<EOF
set datafile separator ","
set terminal png size 1200,900
set output "$out/soak.png"
set multiplot layout 2,2 title "aj soak: $rate jobs/s, retention ${retention_s}s"
set xlabel "seconds"
set key top left
plot "$out/soak.csv" using 1:(\$2/1024) with linespoints title "RSS MiB"
plot "$out/soak.csv" using 1:3 with linespoints title "fds", "" using 1:4 with linespoints title "threads"
plot "$out/soak.csv" using 1:(\$5/1024) with linespoints title "store MiB (db+wal)"
plot "$out/soak.csv" using 1:9 with linespoints title "submit p99 ms", "" using 1:11 with linespoints title "start p99 ms", "" using 1:8 with linespoints title "submit p50 ms"
unset multiplot
EOF
    echo "soak: plot in $out/soak.png"
fi

python3 - "$out/soak.csv" "$duration_s" "$retention_s" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
duration, retention = float(sys.argv[2]), float(sys.argv[3])
warmup = max(2 * retention, duration / 4)
late = [r for r in rows if float(r["t_s"]) >= warmup]
if len(late) < 4:
    print(f"soak: only {len(late)} samples after the {warmup:.0f}s warm-up: too few to judge growth;"
          " run longer or sample more often", file=sys.stderr)
    sys.exit(1)
# metric, unit divisor, unit, floor (in CSV units) of the growth per hour that fails
metrics = [("rss_kb", 1024, "MiB", 32 * 1024), ("fds", 1, "", 16), ("threads", 1, "", 4),
           ("store_kb", 1024, "MiB", 64 * 1024)]
bad = 0
print(f"soak: {len(rows)} samples, {len(late)} after the {warmup:.0f}s warm-up")
for name, div, unit, floor in metrics:
    xs = [float(r["t_s"]) for r in late]
    ys = [float(r[name]) for r in late]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else 0.0
    per_hour = slope * 3600
    limit = max(floor, 0.5 * my)
    verdict = "ok" if per_hour <= limit else "UNBOUNDED"
    bad |= verdict != "ok"
    print(f"  {name:9s} mean {my / div:9.2f} {unit:3s} min {min(ys) / div:9.2f} max {max(ys) / div:9.2f}"
          f"  slope {per_hour / div:+9.2f} {unit}/h (limit {limit / div:.2f})  {verdict}")
lat = {k: sorted(float(r[k]) for r in late) for k in ("submit_p50_ms", "submit_p99_ms", "start_p50_ms", "start_p99_ms")}
print("  latency after warm-up, median of the samples (worst): " + ", ".join(
    f"{k[:-3]} {v[len(v) // 2]:.2f} ms ({v[-1]:.2f})" for k, v in lat.items()))
sys.exit(1 if bad else 0)
EOF
