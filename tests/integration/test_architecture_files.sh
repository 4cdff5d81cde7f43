#!/usr/bin/env bash
# test_architecture_files.sh — docs/ARCHITECTURE.md describes the tree that exists: every source
# file under src/ and cli/ is named there (a header counts as named with its .c file), and every
# file it names under those directories exists. Issue 11, item 6.
source "${AJ_TEST_LIB:?}"
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
doc="$src/docs/ARCHITECTURE.md"
missing=()
for f in "$src"/src/*/*.[ch] "$src"/cli/*.[ch]; do
    b=$(basename "$f")
    stem=${b%.*}
    if [[ $b == *.h ]] && [ -e "${f%.h}.c" ]; then
        continue # described with its .c file
    fi
    grep -qF -- "$b" "$doc" || missing+=("${f#"$src"/}")
done
[ ${#missing[@]} -eq 0 ] || fail "docs/ARCHITECTURE.md does not name: ${missing[*]}"
# Names in the layout block that no longer exist (renamed or removed files).
stale=()
for b in $(grep -oE '\b[a-z0-9_]+\.[ch]\b' "$doc" | sort -u); do
    compgen -G "$src/src/*/$b" >/dev/null || compgen -G "$src/cli/$b" >/dev/null ||
        compgen -G "$src/tests/*/$b" >/dev/null || compgen -G "$src/bench/$b" >/dev/null ||
        compgen -G "$src/examples/$b" >/dev/null || compgen -G "$src/examples/*/$b" >/dev/null ||
        compgen -G "$src/include/$b" >/dev/null || [ -e "/usr/include/$b" ] || stale+=("$b")
done
[ ${#stale[@]} -eq 0 ] || fail "docs/ARCHITECTURE.md names files that do not exist: ${stale[*]}"
echo ok
