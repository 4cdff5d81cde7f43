#!/usr/bin/env bash
# `make install` installs aj, the versioned libaj, aj.h and aj.pc; a program builds against the
# installed library with pkg-config and runs.
set -euo pipefail
build=${AJ_BUILD_DIR:?}
src=$(cd "$(dirname "$0")/../.." && pwd)
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
if [ -n "${AJ_SANITIZE:-}" ]; then
    echo "skipped: a sanitizer build cannot be linked by a plain cc"
    exit 77
fi

cmake --install "$build" --prefix "$prefix" >/dev/null
libdir=$(ls -d "$prefix"/lib*/ | head -1)
[ -x "$prefix/bin/aj" ] || fail "aj not installed"
[ -f "$prefix/include/aj.h" ] || fail "aj.h not installed"
ls "$libdir"/libaj.so.0.1.0 >/dev/null || fail "versioned libaj.so.0.1.0 not installed"
[ -L "$libdir/libaj.so.0" ] || fail "soname link libaj.so.0 missing"
[ -f "$libdir/pkgconfig/aj.pc" ] || fail "aj.pc not installed"
# Only the public API is exported.
if nm -D --defined-only "$libdir/libaj.so.0.1.0" | awk '{print $3}' | grep -v '^aj_' | grep -q .; then
    fail "libaj exports symbols outside aj_*: $(nm -D --defined-only "$libdir"/libaj.so.0.1.0 | awk '{print $3}' | grep -v '^aj_' | head -5)"
fi
export PKG_CONFIG_PATH="$libdir/pkgconfig"
[ "$(pkg-config --modversion aj)" = "0.1.0" ] || fail "pkg-config version"
cc -std=c11 -Wall -Werror "$src/examples/hello_jobs.c" $(pkg-config --cflags --libs aj) -o "$prefix/hello"
out=$(LD_LIBRARY_PATH="$libdir" "$prefix/hello" mem:)
grep -q 'completed: "hello, ada (attempt 1)"' <<<"$out" || fail "example output: $out"
[ "$("$prefix/bin/aj" --version)" = "aj 0.1.0" ] || fail "aj --version: $("$prefix/bin/aj" --version)"
echo "install ok"
