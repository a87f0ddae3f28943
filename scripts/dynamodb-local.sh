#!/bin/sh
# dynamodb-local.sh - start and stop DynamoDB Local (in memory) for tests
# and development.
#
#   scripts/dynamodb-local.sh fetch              # fetches the emulator if it is missing
#   eval "$(scripts/dynamodb-local.sh start)"   # starts it, prints export lines
#   scripts/dynamodb-local.sh env                # the lines again, for a running one
#   scripts/dynamodb-local.sh status             # "running PID PORT" or "stopped"
#   scripts/dynamodb-local.sh stop
#
# The emulator (DynamoDBLocal.jar and DynamoDBLocal_lib/) is looked for in
# $AEON_DDB_CACHE, default .cache/dynamodb-local in the repository, directly
# or under emulator/ or package/emulator/. When it is not there it is fetched
# once with `npm pack amplify-dynamodb-simulator@2.9.30` (the npm package
# that ships DynamoDB Local) and unpacked into that git-ignored folder.
#
# It listens on a free port picked at random (DynamoDB Local has no option to
# bind one interface; it is always used through 127.0.0.1), with -sharedDb so
# every credential and region sees the same tables, and -disableTelemetry.
# Its pid and port are kept in $AEON_DDB_STATE (default
# .cache/dynamodb-local.run), its output in that file's name + ".log".
# Needs java (17 or later), curl, and npm only to fetch.
set -eu

PACKAGE=amplify-dynamodb-simulator@2.9.30

root=$(CDPATH='' cd -- "$(dirname -- "$0")/.." && pwd)
cache=${AEON_DDB_CACHE:-$root/.cache/dynamodb-local}
state=${AEON_DDB_STATE:-$root/.cache/dynamodb-local.run}
log=$state.log

die() {
    printf 'dynamodb-local: %s\n' "$*" >&2
    exit 1
}

find_jar() {
    for d in "$cache" "$cache/emulator" "$cache/package/emulator"; do
        if [ -f "$d/DynamoDBLocal.jar" ] && [ -d "$d/DynamoDBLocal_lib" ]; then
            printf '%s\n' "$d"
            return 0
        fi
    done
    return 1
}

fetch() {
    command -v npm >/dev/null 2>&1 ||
        die "no DynamoDBLocal.jar under $cache and no npm to fetch it (apt-get install npm, or point AEON_DDB_CACHE at an unpacked emulator)"
    mkdir -p "$cache"
    tmp=$(mktemp -d "$cache/fetch.XXXXXX")
    printf 'dynamodb-local: fetching %s with npm pack into %s\n' "$PACKAGE" "$cache" >&2
    # npm's own words on failure (a proxy, a certificate, a missing
    # package), which are the only clue to what went wrong.
    if ! (cd "$tmp" && npm pack --loglevel=error "$PACKAGE" >npm.out 2>&1); then
        sed 's/^/npm: /' "$tmp/npm.out" >&2
        rm -rf "$tmp"
        die "npm pack $PACKAGE failed (npm's message is above; registry $(npm config get registry 2>/dev/null))"
    fi
    set -- "$tmp"/*.tgz
    [ -f "$1" ] || { rm -rf "$tmp"; die "npm pack left no tarball"; }
    if ! tar -xzf "$1" -C "$tmp" package/emulator; then
        rm -rf "$tmp"
        die "the package has no emulator folder"
    fi
    rm -rf "$cache/emulator"
    mv "$tmp/package/emulator" "$cache/emulator"
    rm -rf "$tmp"
}

# True when the pid in the state file is alive and is DynamoDB Local (a pid
# can be reused once the process is gone).
running() {
    [ -f "$state" ] || return 1
    read -r pid port <"$state" || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    if [ -r "/proc/$pid/cmdline" ]; then
        tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q DynamoDBLocal.jar || return 1
    fi
    return 0
}

answers() {
    code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' -X POST "http://127.0.0.1:$1/" 2>/dev/null) || true
    [ -n "$code" ] && [ "$code" != 000 ]
}

pick_port() {
    n=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
    echo $((20000 + n % 30000))
}

nap() {
    sleep 0.2 2>/dev/null || sleep 1
}

print_env() {
    echo "export AWS_ENDPOINT_URL=http://127.0.0.1:$port"
    echo "export AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:$port"
    echo "export AEON_DDB_LOCAL_PID=$pid"
    # DynamoDB Local wants a signed request but checks no signature.
    [ -n "${AWS_REGION:-}${AWS_DEFAULT_REGION:-}" ] || echo "export AWS_REGION=us-east-1"
    [ -n "${AWS_ACCESS_KEY_ID:-}" ] || echo "export AWS_ACCESS_KEY_ID=local"
    [ -n "${AWS_SECRET_ACCESS_KEY:-}" ] || echo "export AWS_SECRET_ACCESS_KEY=local"
}

start() {
    if running; then
        print_env
        return 0
    fi
    dir=$(find_jar) || { fetch; dir=$(find_jar) || die "no DynamoDBLocal.jar in $cache after fetching"; }
    command -v java >/dev/null 2>&1 || die "java not found (apt-get install openjdk-17-jre-headless)"
    command -v curl >/dev/null 2>&1 || die "curl not found"
    mkdir -p "$(dirname -- "$state")"
    for try in 1 2 3 4 5; do
        port=$(pick_port)
        # shellcheck disable=SC2086 # AEON_DDB_JAVA_OPTS is a list of options
        (cd "$dir" && exec java ${AEON_DDB_JAVA_OPTS:-} -Djava.library.path=./DynamoDBLocal_lib \
            -jar DynamoDBLocal.jar -inMemory -sharedDb -disableTelemetry -port "$port") \
            </dev/null >"$log" 2>&1 &
        pid=$!
        i=0
        while [ $i -lt 150 ]; do # 30 s at most
            kill -0 "$pid" 2>/dev/null || break # exited: the port was taken?
            if answers "$port"; then
                echo "$pid $port" >"$state"
                print_env
                return 0
            fi
            nap
            i=$((i + 1))
        done
        kill "$pid" 2>/dev/null || true
        printf 'dynamodb-local: attempt %s on port %s failed\n' "$try" "$port" >&2
    done
    die "could not start DynamoDB Local; see $log"
}

stop() {
    if running; then
        kill "$pid" 2>/dev/null || true
        i=0
        while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do
            nap
            i=$((i + 1))
        done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$state"
}

case ${1:-} in
fetch) find_jar >/dev/null || fetch ;;
start) start ;;
stop) stop ;;
env) running && print_env || die "not running" ;;
status) if running; then echo "running $pid $port"; else echo stopped; fi ;;
*) die "usage: $0 fetch|start|stop|env|status" ;;
esac
