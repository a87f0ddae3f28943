#!/bin/sh
# spec/load/loadtest.sh - `make loadtest`: good commands under hostile traffic.
#
#   sh spec/load/loadtest.sh [BUILD_DIR]     # after `make`; about 40 s
#
# Starts aeon-host serve on 127.0.0.1 (a free port, a fresh SQLite file,
# spec/fixtures/hostile-app.lua, 4 workers, --max-time 1), then drives
# POST /commands/append with wrk (2 threads, 16 connections) twice for
# LOAD_SECONDS (15): alone, and while spec/load/hostile.lua sends the bad
# requests of spec/integration/containment_spec.lua in a loop from
# 127.0.0.2 and holds 300 idle connections from 127.0.0.3. Prints both good-request rates
# and the hostile count. Fails if any good request was not answered 200 or
# took more than 10 s (wrk's timeout: a generous "not hung"), if the
# hostile loop went unanswered, or if the server does not exit 0
# within --drain plus a second of SIGTERM. Every step is bounded (wrk's
# -d, the hostile loop's own deadline and socket timeouts, curl's
# --max-time, a kill after 10 s of SIGTERM), so a hung server fails the run
# in about 2 * LOAD_SECONDS + 40 s rather than holding it. Needs wrk, curl
# and lua-socket (scripts/setup.sh --test).
set -eu
cd "$(dirname "$0")/../.."
build=${1:-build}
seconds=${LOAD_SECONDS:-15}
command -v wrk >/dev/null || { echo "loadtest: wrk is not installed (apt-get install wrk)" >&2; exit 2; }

dir=$(mktemp -d)
pid=""
hostile=""
cleanup() {
  [ -n "$hostile" ] && kill "$hostile" 2>/dev/null || true
  [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT INT TERM

AEON_LUA_PATH="$PWD/lua/?.lua;$PWD/lua/?/init.lua" "$build/aeon-host" --store "sqlite:$dir/store.db" \
  serve spec/fixtures/hostile-app.lua --listen 127.0.0.1:0 --workers 4 --max-time 1 --drain 2 \
  --log-level warn >"$dir/out" 2>"$dir/err" &
pid=$!
url=""
for _ in $(seq 100); do
  url=$(sed -n 's/.* at \(http:[^ ]*\) .*/\1/p' "$dir/out")
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "$url" ] || { cat "$dir/err" >&2; echo "loadtest: the server did not start" >&2; exit 1; }
port=${url##*:}

cat >"$dir/append.lua" <<'LUA'
local n = 0
request = function()
  n = n + 1
  local body = '{"key": "load/' .. (n % 100) .. '"}'
  return wrk.format("POST", "/commands/append", { ["Content-Type"] = "application/json" }, body)
end
LUA

# Requests/sec and the count of answers that were not 2xx/3xx in a wrk report.
rate() { sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' "$1"; }
bad() { sed -n 's/.*Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p' "$1" | grep . || echo 0; }
total() { sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$1"; }
errors() { sed -n 's/.*Socket errors:.*timeout \([0-9]*\).*/\1/p' "$1" | grep . || echo 0; }

wrk -t2 -c16 -d"${seconds}s" --timeout 10s -s "$dir/append.lua" "$url" >"$dir/alone" 2>&1
lua5.4 spec/load/hostile.lua "$port" "$((seconds + 2))" "$dir/hostile" &
hostile=$!
sleep 1
wrk -t2 -c16 -d"${seconds}s" --timeout 10s -s "$dir/append.lua" "$url" >"$dir/mixed" 2>&1
wait "$hostile"
hostile=""

echo "good requests alone:        $(total "$dir/alone") in ${seconds}s, $(rate "$dir/alone")/s, not 200: $(bad "$dir/alone"), timeouts: $(errors "$dir/alone")"
echo "good requests with hostile: $(total "$dir/mixed") in ${seconds}s, $(rate "$dir/mixed")/s, not 200: $(bad "$dir/mixed"), timeouts: $(errors "$dir/mixed")"
echo "hostile: $(cat "$dir/hostile")"
# The hostile loop's last stuck request may hold its (replaced) worker in C
# for a few seconds more; a server stopped meanwhile rightly exits 4, saying
# it left it. Wait for it to get back first (at most 30 s).
i=0
while [ "$i" -lt 60 ] && curl -s --max-time 5 "$url/health" | grep -q '"stuck_workers":[1-9]'; do
  sleep 0.5
  i=$((i + 1))
done
health=$(curl -s --max-time 5 "$url/health" || echo "(no answer in 5 s)")
echo "health after: $health"

start=$(date +%s.%N)
kill -TERM "$pid"
# A server that ignores SIGTERM is killed after 10 s (and fails below),
# so the run never waits on it for good.
(sleep 10; kill -KILL "$pid" 2>/dev/null) &
killer=$!
status=0
wait "$pid" || status=$?
pid=""
kill "$killer" 2>/dev/null || true
took=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
echo "exit on SIGTERM: status $status after ${took}s"

fail=0
[ "$(bad "$dir/alone")" = 0 ] && [ "$(bad "$dir/mixed")" = 0 ] || { echo "loadtest: good requests failed" >&2; fail=1; }
[ "$(errors "$dir/mixed")" = 0 ] || { echo "loadtest: good requests timed out" >&2; fail=1; }
[ -n "$(rate "$dir/mixed")" ] || { echo "loadtest: no good requests under hostile traffic" >&2; fail=1; }
answered=$(sed -n 's/.*answered \([0-9]*\).*/\1/p' "$dir/hostile")
[ "${answered:-0}" -gt 0 ] || { echo "loadtest: hostile requests went unanswered" >&2; fail=1; }
[ "$status" = 0 ] || { echo "loadtest: the server exited $status" >&2; fail=1; }
awk -v t="$took" 'BEGIN { exit !(t < 3) }' || { echo "loadtest: shutdown took longer than --drain plus 1 s" >&2; fail=1; }
[ "$fail" = 0 ] && echo "loadtest: ok"
exit "$fail"
