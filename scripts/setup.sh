#!/bin/sh
# Installs what aeon-host needs on Debian 12, and nothing that is there already.
#
#   sh scripts/setup.sh           build and run: compiler, Lua 5.4, SQLite, jansson, libcurl, OpenSSL,
#                                 and curl, for the try: line a served app prints
#   sh scripts/setup.sh --test    also the tests: busted, Java for DynamoDB Local, npm to fetch it,
#                                 zip for make lambda's artifact, cfn-lint (npm) for
#                                 store template, universal-ctags and clang-format for make lint
#
# Runs apt-get as root, or through sudo when run as another user.
set -eu

BUILD="build-essential pkg-config lua5.4 liblua5.4-dev libsqlite3-dev libjansson-dev \
libcurl4-openssl-dev libssl-dev libmicrohttpd-dev ca-certificates curl"
TEST="lua-busted lua-cjson lua-socket luarocks default-jre-headless nodejs npm sqlite3 wrk \
valgrind clang libclang-rt-14-dev awscli zip unzip universal-ctags clang-format"

want=$BUILD
[ "${1:-}" = "--test" ] && want="$BUILD $TEST"

missing=""
for p in $want; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done

# Debian's npm is only needed when the machine has no npm of its own.
case " $missing " in *" npm "*) command -v npm >/dev/null 2>&1 && missing=$(echo "$missing" | sed 's/ npm / /; s/ npm$//') ;; esac
case " $missing " in *" nodejs "*) command -v node >/dev/null 2>&1 && missing=$(echo "$missing" | sed 's/ nodejs / /; s/ nodejs$//') ;; esac

if [ -n "$(echo "$missing" | tr -d ' ')" ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  echo "setup: installing$missing"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
fi

if [ "${1:-}" = "--test" ]; then
  sh "$(dirname "$0")/dynamodb-local.sh" fetch
  sh "$(dirname "$0")/cfn-lint.sh" fetch
fi
