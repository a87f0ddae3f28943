#!/bin/sh
# fresh-check.sh - runs one of the README's two commands on a fresh Debian 12,
# as a new user would, and logs everything.
#
#   sh scripts/fresh-check.sh run    # sh scripts/setup.sh && make && build/aeon-host apps/counter.lua
#                                    # then the printed try: line, then Ctrl-C (SIGINT)
#   sh scripts/fresh-check.sh test   # sh scripts/setup.sh --test && make test, then
#                                    # luarocks --lua-version 5.4 make rockspec/aeon-scm-1.rockspec
#
# As root. It builds a Debian 12 root with debootstrap (variant minbase,
# plus git) from the Debian mirror apt uses on this machine, clones this
# repository's committed HEAD into /root/aeon-host there (uncommitted
# changes are not part of the check), mounts proc, sys and dev into it and
# runs the README command with chroot, in an empty environment but for
# PATH, HOME, LANG and how this machine reaches the network: its proxy and
# npm settings, the certificate authorities it adds to Debian's
# (/usr/local/share/ca-certificates) and the variables that point Node,
# OpenSSL and curl at them. On exit the
# mounts are undone and the root removed (AEON_FRESH_KEEP=1 keeps it).
#
# Settings: AEON_FRESH_MIRROR (default: the first URI of bookworm in
# /etc/apt/sources.list*), AEON_FRESH_ROOT (default: a new folder under
# /var/tmp), AEON_FRESH_LOG (default build/fresh-check-COMMAND.log),
# AEON_FRESH_CACHE (debootstrap's package cache, default
# /var/cache/aeon-fresh-check; only downloaded .debs, debootstrap's and apt's:
# the root and everything installed in it are always new).
# The run check needs 127.0.0.1:8080 free, as the README's command does.
set -eu

RUN_CMD='sh scripts/setup.sh && make && build/aeon-host apps/counter.lua'
TEST_CMD='sh scripts/setup.sh --test && make test'
ROCK_CMD='luarocks --lua-version 5.4 make rockspec/aeon-scm-1.rockspec'

repo=$(CDPATH='' cd -- "$(dirname -- "$0")/.." && pwd)
what=${1:-}
case $what in
run) cmd=$RUN_CMD ;;
test) cmd=$TEST_CMD ;;
*) echo "usage: $0 run|test" >&2; exit 2 ;;
esac
[ "$(id -u)" -eq 0 ] || { echo "fresh-check: needs root (debootstrap, chroot, mount)" >&2; exit 2; }

log=${AEON_FRESH_LOG:-$repo/build/fresh-check-$what.log}
mkdir -p "$(dirname -- "$log")"
cache=${AEON_FRESH_CACHE:-/var/cache/aeon-fresh-check}
mkdir -p "$cache"

# Progress goes to the terminal and the log; everything else to the log.
exec 3>&1 >"$log" 2>&1
say() {
  printf 'fresh-check: %s\n' "$*"
  printf 'fresh-check: %s\n' "$*" >&3
}
fail() {
  say "FAILED: $*"
  say "log: $log"
  exit 1
}

# The first URI serving SUITE, from one-line and deb822 sources.
apt_uri() {
  cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
    awk -v s="$1" '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                                 if ($(i + 1) == s) { print $i; exit } }'
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk -v s="$1" 'BEGIN { RS = ""; FS = "\n" }
      { uri = ""; ok = 0
        for (j = 1; j <= NF; j++) {
          if ($j ~ /^URIs:/) { split($j, a, /[ \t]+/); uri = a[2] }
          if ($j ~ /^Suites:/) { n = split($j, b, /[ \t]+/); for (k = 2; k <= n; k++) if (b[k] == s) ok = 1 }
        }
        if (ok && uri != "") { print uri; exit } }' "$f"
  done
}

mirror=${AEON_FRESH_MIRROR:-$(apt_uri bookworm | head -n 1)}
[ -n "$mirror" ] || fail "no bookworm mirror in /etc/apt/sources.list*; set AEON_FRESH_MIRROR"
security=$(apt_uri bookworm-security | head -n 1)

if ! command -v debootstrap >/dev/null 2>&1; then
  say "installing debootstrap"
  apt-get install -y -q debootstrap || fail "apt-get install debootstrap failed (its message is above in the log)"
fi

root=${AEON_FRESH_ROOT:-}
if [ -z "$root" ]; then
  root=$(mktemp -d /var/tmp/aeon-fresh.XXXXXX)
fi
server=""

# The processes running inside the root (the chroot's, nobody else's).
inside() {
  for p in /proc/[0-9]*; do
    [ "$(readlink "$p/root" 2>/dev/null)" = "$root" ] && echo "${p#/proc/}"
  done
  return 0
}

mounted() { awk -v r="$root" '$2 == r || index($2, r "/") == 1 { print $2 }' /proc/mounts | sort -r; }

cleanup() {
  status=$?
  set +e
  for p in $(inside); do kill -TERM "$p" 2>/dev/null; done
  sleep 1
  for p in $(inside); do kill -KILL "$p" 2>/dev/null; done
  for m in $(mounted); do umount "$m" || umount -l "$m"; done
  if [ -n "$(mounted)" ]; then
    say "still mounted under $root; not removing it"
  elif [ -n "${AEON_FRESH_KEEP:-}" ]; then
    say "kept $root"
  else
    rm -rf --one-file-system "$root"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "$(date -u '+%Y-%m-%dT%H:%M:%SZ') checking: $cmd"
say "debootstrap --variant=minbase --include=git bookworm $root $mirror"
debootstrap --variant=minbase --include=git --cache-dir="$cache" bookworm "$root" "$mirror" ||
  fail "debootstrap failed (its message is above in the log)"

# The suites a Debian 12 install uses.
{
  echo "deb $mirror bookworm main"
  echo "deb $mirror bookworm-updates main"
  [ -n "$security" ] && echo "deb $security bookworm-security main"
} >"$root/etc/apt/sources.list"
cp /etc/resolv.conf "$root/etc/resolv.conf"
# The certificate authorities this machine adds to Debian's (a proxy that
# inspects TLS has one): ca-certificates, once setup installs it, trusts them.
if [ -d /usr/local/share/ca-certificates ]; then
  mkdir -p "$root/usr/local/share/ca-certificates"
  cp -R /usr/local/share/ca-certificates/. "$root/usr/local/share/ca-certificates/"
fi
# apt's own proxy settings, when this machine has any.
apt-config dump 2>/dev/null | grep -i '^Acquire::.*Proxy' >"$root/etc/apt/apt.conf.d/90proxy" || rm -f "$root/etc/apt/apt.conf.d/90proxy"

mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys"
mount --bind /dev "$root/dev"
mount --bind /dev/pts "$root/dev/pts"
mount -t tmpfs tmpfs "$root/dev/shm"
# Packages apt downloads are kept between checks (installing them is not).
mkdir -p "$cache/apt/partial"
mount --bind "$cache/apt" "$root/var/cache/apt/archives"

commit=$(git -C "$repo" rev-parse HEAD)
say "cloning $repo at $commit into /root/aeon-host"
git clone -q --no-checkout "$repo" "$root/root/aeon-host" || fail "git clone failed"
git -C "$root/root/aeon-host" checkout -q "$commit" || fail "git checkout failed"

# A fresh machine's environment, plus how this one reaches the network.
set -- PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 TERM=dumb
for v in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY all_proxy ALL_PROXY \
         npm_config_registry npm_config_proxy npm_config_https_proxy npm_config_cafile \
         NODE_EXTRA_CA_CERTS SSL_CERT_FILE SSL_CERT_DIR CURL_CA_BUNDLE; do
  eval "val=\${$v:-}"
  [ -n "$val" ] && set -- "$@" "$v=$val"
done
if command -v npm >/dev/null 2>&1; then
  reg=$(npm config get registry 2>/dev/null || true)
  [ -z "${npm_config_registry:-}" ] && [ -n "$reg" ] && set -- "$@" "npm_config_registry=$reg"
  # npm's own certificate file (an npmrc's cafile), when this machine has one.
  ca=$(npm config get cafile 2>/dev/null || true)
  case $ca in /*) [ -z "${npm_config_cafile:-}" ] && set -- "$@" "npm_config_cafile=$ca" ;; esac
fi
say "environment: $*"

in_root() { chroot "$root" /usr/bin/env -i "$@"; }

if [ "$what" = test ]; then
  set +e
  in_root "$@" /bin/sh -c "cd /root/aeon-host && $cmd"
  status=$?
  set -e
  counts=$(grep -E '^specs: [0-9]+ passed' "$log" | tail -n 1)
  ctests=$(grep -c '^== build/test/' "$log" || true)
  say "C test programs run: $ctests"
  [ -n "$counts" ] && say "closing counts: $counts"
  [ "$status" -eq 0 ] || fail "'$cmd' exited $status"
  say "PASSED: '$cmd' exited 0"
  # The README's LuaRocks line, into a tree of its own, then what it installed.
  say "running: $ROCK_CMD --tree /root/rocks, then /root/rocks/bin/aeon-host"
  in_root "$@" /bin/sh -c "cd /root/aeon-host && $ROCK_CMD --tree /root/rocks &&
    /root/rocks/bin/aeon-host --version && cd /tmp &&
    /root/rocks/bin/aeon-host --store memory: /root/aeon-host/apps/counter-basic.lua increment name=a" ||
    fail "'$ROCK_CMD' or the aeon-host it installed failed"
  say "PASSED: '$ROCK_CMD' installed an aeon-host that runs an app"
  exit 0
fi

# run: serve in the background, wait for the try: line, run it, stop.
if ss -Hltn 'sport = :8080' 2>/dev/null | grep -q .; then
  fail "127.0.0.1:8080 is taken on this machine; the README's command serves there"
fi
out=$root/root/serve.out
in_root "$@" /bin/sh -c "cd /root/aeon-host && $cmd" >"$out" 2>&1 &
server=$!
i=0
while ! grep -q '^  try: ' "$out" 2>/dev/null; do
  kill -0 "$server" 2>/dev/null || { cat "$out"; fail "'$cmd' stopped before serving"; }
  [ $i -lt 3600 ] || { cat "$out"; fail "no try: line after an hour"; }
  sleep 1
  i=$((i + 1))
done
sleep 1
cat "$out"
try=$(sed -n 's/^  try: //p' "$out" | head -n 1)
say "running the try: line: $try"
set +e
answer=$(in_root "$@" /bin/sh -c "$try" 2>&1)
tstatus=$?
set -e
printf '%s\n' "$answer"
printf '%s\n' "$answer" >&3
[ "$tstatus" -eq 0 ] || fail "the try: line exited $tstatus"
printf '%s\n' "$answer" | grep -q '"error"' && fail "the try: line answered an error"
[ -n "$answer" ] || fail "the try: line printed nothing"
say "stopping the server (SIGINT)"
for p in $(inside); do
  [ "$(cat "/proc/$p/comm" 2>/dev/null)" = aeon-host ] && kill -INT "$p"
done
set +e
wait "$server"
sstatus=$?
set -e
tail -n 5 "$out"
[ "$sstatus" -eq 0 ] || fail "the server exited $sstatus after SIGINT"
say "PASSED: served, the try: line answered ($(printf '%s\n' "$answer" | wc -l) lines), the server stopped with status 0"
