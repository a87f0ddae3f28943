#!/bin/sh
# Runs the busted specs on every backend: starts DynamoDB Local in memory on
# a free loopback port, runs busted, stops it. AEON_SKIP_DYNAMODB=1 runs the
# embedded store only. Extra arguments go to busted (e.g. --tags=sqlite).
# AEON_CTESTS names C test programs to run first, once DynamoDB Local is up,
# so their live DynamoDB checks run too (make test). Unit specs alone
# (--tags=unit, or only files under spec/unit/) need no DynamoDB Local, so
# none is started for them.
set -eu
cd "$(dirname "$0")/.."

need_ddb=${AEON_SKIP_DYNAMODB:+no}
if [ -z "${AEON_CTESTS:-}" ] && [ $# -gt 0 ]; then
  units=yes
  for a in "$@"; do
    case $a in
    --tags=unit) ;;
    spec/unit/*) ;;
    -*) ;;
    *) units="" ;;
    esac
  done
  case " $* " in *" --tags=unit "* | *" spec/unit/"*) ;; *) units="" ;; esac
  [ -n "$units" ] && need_ddb=no
fi

if [ -z "$need_ddb" ]; then
  state=$(mktemp -d)
  AEON_DDB_STATE=$state/dynamodb-local
  export AEON_DDB_STATE
  trap 'sh scripts/dynamodb-local.sh stop; rm -rf "$state"' EXIT INT TERM
  eval "$(sh scripts/dynamodb-local.sh start)"
  AEON_TEST_DYNAMODB_ENDPOINT=$AWS_ENDPOINT_URL
  export AEON_TEST_DYNAMODB_ENDPOINT
fi

for t in ${AEON_CTESTS:-}; do
  echo "== $t"
  "$t"
done

# AEON_BUILD picks the build to test (make sanitize uses build/sanitize);
# VALGRIND=1 runs busted under valgrind, failing on invalid accesses and on
# definite leaks.
build=${AEON_BUILD:-build}
AEON_HOST=$build/aeon-host
AEON_SUPPORT=$build/support
# The Lua library of this tree, wherever the build puts the binary.
AEON_LUA_PATH="$PWD/lua/?.lua;$PWD/lua/?/init.lua"
export AEON_HOST AEON_SUPPORT AEON_LUA_PATH
runner=""
if [ -n "${VALGRIND:-}" ]; then
  runner="valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite"
fi

log=$(mktemp)
set +e
# --ignore-lua: .busted names lua5.4, and busted would start it again as a
# child, leaving valgrind to watch only the parent.
$runner lua5.4 "$(command -v busted)" --ignore-lua --cpath="$build/?.so" --output=utfTerminal "$@" 2>&1 | tee "$log"
summary=$(grep -m 1 -E '^[0-9]+ success(es)? / ' "$log" || true)
status=$(echo "$summary" | grep -q ' 0 failures / 0 errors' && ! grep -q '^==[0-9]*==' "$log" && echo 0 || echo 1)
set -e
# The closing line in the plain form: "N passed, N failed". The first
# summary is busted's own; any later one is quoted in a failure message.
sed -n 's/^\([0-9]*\) success\(es\)\? \/ \([0-9]*\) failures* \/ \([0-9]*\) errors*.*/specs: \1 passed, \3 failed, \4 errors/p' "$log" | head -n 1 |
  awk -F'[ ,]+' '{ printf "specs: %d passed, %d failed\n", $2, $4 + $6 }'
rm -f "$log"
exit "$status"
