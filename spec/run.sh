#!/bin/sh
# Runs the busted specs on every backend: starts DynamoDB Local in memory on
# a free loopback port, runs busted, stops it. AEON_SKIP_DYNAMODB=1 runs the
# embedded store only. Extra arguments go to busted (e.g. --tags=sqlite).
set -eu
cd "$(dirname "$0")/.."

if [ -z "${AEON_SKIP_DYNAMODB:-}" ]; then
  state=$(mktemp -d)
  AEON_DDB_STATE=$state/dynamodb-local # a file: pid and port
  export AEON_DDB_STATE
  trap 'sh scripts/dynamodb-local.sh stop; rm -rf "$state"' EXIT INT TERM
  eval "$(sh scripts/dynamodb-local.sh start)"
  AEON_TEST_DYNAMODB_ENDPOINT=$AWS_ENDPOINT_URL
  export AEON_TEST_DYNAMODB_ENDPOINT
fi

log=$(mktemp)
set +e
lua5.4 "$(command -v busted)" --output=utfTerminal "$@" 2>&1 | tee "$log"
status=$(tail -n1 "$log" | grep -q ' 0 failures / 0 errors' && echo 0 || echo 1)
set -e
# The closing line in the plain form: "N passed, N failed".
sed -n 's/^\([0-9]*\) successes* \/ \([0-9]*\) failures* \/ \([0-9]*\) errors*.*/specs: \1 passed, \2 failed, \3 errors/p' "$log" |
  awk -F'[ ,]+' '{ printf "specs: %d passed, %d failed\n", $2, $4 + $6 }'
rm -f "$log"
exit "$status"
