#!/bin/sh
# bench/http.sh - HTTP throughput of aeon-host serve: wrk sends
# POST /commands/increment {"name": "cN"} over 100 counters (N random in
# 1..100) to apps/counter-basic.lua on a fresh SQLite store, then prints
# requests per second and the 99th percentile latency.
#
#   sh bench/http.sh                  # after `make`; 10 s, 2 wrk threads, 32 connections
#   AEON_BENCH_SECONDS=30 AEON_BENCH_CONNECTIONS=64 AEON_BENCH_WORKERS=8 sh bench/http.sh
#
# Settings (environment): AEON_HOST (build/aeon-host), AEON_BENCH_APP
# (apps/counter-basic.lua), AEON_BENCH_SECONDS (10), AEON_BENCH_THREADS (2),
# AEON_BENCH_CONNECTIONS (32), AEON_BENCH_WORKERS (4, the server's --workers),
# AEON_BENCH_STORE (a fresh sqlite file in a temporary directory).
# Needs wrk and curl. Standalone: it starts and stops its own server.
set -eu
cd "$(dirname "$0")/.."

host=${AEON_HOST:-build/aeon-host}
app=${AEON_BENCH_APP:-apps/counter-basic.lua}
seconds=${AEON_BENCH_SECONDS:-10}
threads=${AEON_BENCH_THREADS:-2}
connections=${AEON_BENCH_CONNECTIONS:-32}
workers=${AEON_BENCH_WORKERS:-4}

[ -x "$host" ] || { echo "bench/http.sh: $host is missing; run make first" >&2; exit 2; }
command -v wrk >/dev/null || { echo "bench/http.sh: wrk is not installed (apt-get install wrk)" >&2; exit 2; }
command -v curl >/dev/null || { echo "bench/http.sh: curl is not installed" >&2; exit 2; }

dir=$(mktemp -d)
store=${AEON_BENCH_STORE:-sqlite:$dir/bench.db}
pid=
cleanup() {
  [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT INT TERM

# The access log would cost a write per request; warnings and errors only.
"$host" --store "$store" serve "$app" --listen 127.0.0.1:0 --workers "$workers" \
  --log-level warn >"$dir/out" 2>"$dir/err" &
pid=$!
url=
for _ in $(seq 100); do
  url=$(grep -o 'http://[0-9.:]*' "$dir/out" 2>/dev/null | head -n1 || true)
  [ -n "$url" ] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$url" ]; then
  echo "bench/http.sh: the server did not start:" >&2
  cat "$dir/err" >&2
  exit 1
fi

cat >"$dir/increment.lua" <<'LUA'
-- One POST /commands/increment per call, on one of 100 counters.
math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)"), 16) % 100000)
request = function()
  local body = '{"name":"c' .. math.random(100) .. '"}'
  return wrk.format("POST", "/commands/increment", { ["Content-Type"] = "application/json" }, body)
end
done = function(summary, latency)
  local errors = summary.errors
  io.write(("requests:   %d in %.1f s (non-2xx or failed: %d)\n"):format(summary.requests,
    summary.duration / 1e6, errors.status + errors.connect + errors.read + errors.write + errors.timeout))
  io.write(("requests/s: %.0f\n"):format(summary.requests / (summary.duration / 1e6)))
  io.write(("latency:    p50 %.2f ms, p99 %.2f ms, max %.2f ms\n"):format(
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
LUA

echo "wrk: POST $url/commands/increment over 100 counters, ${seconds}s, $threads threads, $connections connections; server: $workers workers, store $store"
wrk -t"$threads" -c"$connections" -d"${seconds}s" -s "$dir/increment.lua" "$url" >"$dir/wrk" 2>&1 || {
  cat "$dir/wrk" >&2
  exit 1
}
sed -n '/^requests:/,$p' "$dir/wrk"
appended=$(curl -s "$url/metrics" | sed -n 's/^aeon_events_appended_total //p')
echo "events appended: $appended"
