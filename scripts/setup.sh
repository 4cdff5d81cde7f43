#!/usr/bin/env bash
# Installs the Debian packages the build and tests need, only when they are missing.
# Safe to run repeatedly; needs root (or sudo) only when something is missing.
set -euo pipefail
# Build: compiler, CMake, SQLite, jansson (JSON), cmocka (tests). Tests also use jq, python3, procps.
# Runtime: tzdata, the IANA time zone files that schedules read (/usr/share/zoneinfo).
# PostgreSQL: libpq-dev for the backend; postgresql (15 on Debian 12) for the tests, which start a
# private server of their own (tests/pg/pg_harness.sh).
pkgs=(build-essential cmake pkg-config libsqlite3-dev libjansson-dev nettle-dev libcmocka-dev jq python3 procps
    tzdata libpq-dev postgresql)
if [ "${AJ_SETUP_FUZZ:-0}" = 1 ]; then
    pkgs+=(clang libclang-rt-14-dev)
fi
# `make coverage`: gcovr reads gcc's gcov data and writes the HTML report.
if [ "${AJ_SETUP_COVERAGE:-0}" = 1 ]; then
    pkgs+=(gcovr)
fi
# scripts/soak.sh: gnuplot draws its samples (the CSV is written without it).
if [ "${AJ_SETUP_SOAK:-0}" = 1 ]; then
    pkgs+=(gnuplot-nox)
fi
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
echo "setup: installing ${missing[*]}" >&2
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
export DEBIAN_FRONTEND=noninteractive
echo "setup: apt-get update" >&2
"${sudo_cmd[@]}" apt-get update -qq
echo "setup: apt-get install (${#missing[@]} packages and what they need; a minute or two)" >&2
# One line per package as it is set up, so a long install shows it is moving.
if ! "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" 2>&1 |
    { grep --line-buffered -E '^(Setting up|E: )' || true; } | sed -u 's/^/setup: /' >&2; then
    echo "setup: apt-get install failed (run it by hand to see why)" >&2
    exit 1
fi
echo "setup: done" >&2
