#!/bin/sh
# long-functions.sh [MAX] - lists the C functions outside spec/ and bench/
# longer than MAX lines (default 100), longest first, and exits 1 when there
# is one. A function runs from the line that names it (ctags) to the first
# line after it that is a lone "}" at the left margin, the brace style of
# the whole tree. `make lint` runs it.
max=${1:-100}
files=$(git ls-files 'store/*.c' 'host/*.c' 2>/dev/null)
[ -n "$files" ] || files=$(find store host -name '*.c')
ctags -x --c-kinds=f $files | awk '{ print $4, $3, $1 }' | sort -k1,1 -k2,2n |
while read -r file line name; do
    awk -v start="$line" -v file="$file" -v name="$name" -v max="$max" '
        NR >= start && /^}/ { n = NR - start + 1; if (n > max) printf "%d %s:%d %s\n", n, file, start, name; exit }
    ' "$file"
done | sort -rn > "${TMPDIR:-/tmp}/long-functions.$$"
status=0
if [ -s "${TMPDIR:-/tmp}/long-functions.$$" ]; then
    echo "functions over $max lines (lines, where):"
    cat "${TMPDIR:-/tmp}/long-functions.$$"
    status=1
fi
rm -f "${TMPDIR:-/tmp}/long-functions.$$"
exit $status
