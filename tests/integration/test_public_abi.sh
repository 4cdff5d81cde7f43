#!/usr/bin/env bash
# test_public_abi.sh — the shared library's ABI is exactly the public contract: every function
# libaj.so exports is declared in include/aj.h and every function aj.h declares is exported
# (internal helpers are aj__* and hidden by libaj.map); the aj command uses only that contract:
# it links libaj.so (so an internal symbol would not even link) and cli/ includes no header but
# aj.h, its own headers and system or jansson headers. Issue 11, item 4.
source "${AJ_TEST_LIB:?}"
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
lib="${AJ_BUILD_DIR:?}/libaj.so"
[ -e "$lib" ] || fail "no $lib"

nm -D --defined-only "$lib" | awk '$2 == "T" {print $3}' | sort -u >"$T/exported"
# Function declarations in aj.h: a name followed by '(' at the start of a declaration, not a
# function-pointer member or typedef ('(*name)').
python3 - "$src/include/aj.h" >"$T/declared" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
text = re.sub(r'/\*.*?\*/', ' ', text, flags=re.S)   # comments
text = re.sub(r'^\s*#.*$', ' ', text, flags=re.M)     # preprocessor lines
names = set()
for stmt in text.split(';'):
    s = ' '.join(stmt.split())
    m = re.search(r'\b(aj_[a-z0-9_]+)\s*\(', s)
    if m and '(*' not in s.split(m.group(1))[0][-3:] and not s.lstrip().startswith('typedef'):
        names.add(m.group(1))
print('\n'.join(sorted(names)))
PY
[ -s "$T/declared" ] || fail "found no declarations in aj.h"
extra=$(comm -23 "$T/exported" "$T/declared")
missing=$(comm -13 "$T/exported" "$T/declared")
[ -z "$extra" ] || fail "libaj.so exports functions aj.h does not declare: $(echo $extra)"
[ -z "$missing" ] || fail "aj.h declares functions libaj.so does not export: $(echo $missing)"
if nm -D --defined-only "$lib" | awk '$2 != "T" && $2 != "U" && $2 != "w" {print $3}' | grep -v '^aj_' | grep -q .; then
    fail "libaj.so exports non-aj data symbols"
fi

# The aj command: linked against libaj.so, not an archive of everything.
ldd "$AJ_BIN" | grep -q 'libaj\.so' || fail "aj does not link libaj.so"
# cli/ includes only aj.h, its own headers and system/jansson headers.
bad=$(grep -Hn '#include' "$src"/cli/*.[ch] | grep -v -E '#include (<[a-z0-9_/]+\.h>|"aj\.h"|"(cli|args|out|submit|dlq)\.h")' || true)
[ -z "$bad" ] || fail "cli/ includes internal headers: $bad"
echo ok
