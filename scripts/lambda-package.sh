#!/bin/sh
# lambda-package.sh - the zip a user uploads to AWS Lambda (runtime
# provided.al2023) to run an app with `aeon-host lambda`.
#
#   sh scripts/lambda-package.sh BINARY APP.lua OUT.zip
#
# The zip holds:
#   bootstrap            two lines: exec bin/aeon-host lambda (the app is
#                        the function's handler, $_HANDLER)
#   bin/aeon-host        the host, with DT_RPATH $ORIGIN/../lib so that the
#                        libraries below win over any the image has
#   lib/                 every shared library it needs that is not glibc
#                        itself (Amazon Linux 2023 has glibc 2.34; the rest,
#                        Lua, SQLite, jansson, libcurl and what they pull in,
#                        is Debian's and travels with the binary)
#   certs/               Debian's CA bundle, which the bootstrap names in
#                        AWS_CA_BUNDLE (the Debian libcurl looks for it
#                        under a path Amazon Linux does not have)
#   lua/                 the Lua library
#   app/                 the app's folder: the app file and the modules it
#                        may require beside it
#
# Then every ELF file in it is checked with objdump: the glibc symbol
# versions it requires (its "Version References") must be 2.34 or older,
# and each library it needs must be in the zip or be part of glibc. The
# build fails, naming the file and the symbol version, otherwise.
set -eu

bin=$1 app=$2 out=$3 given=$3
GLIBC_MAX=2.34
# The libraries of glibc 2.34 itself, which Amazon Linux 2023 provides.
GLIBC_LIBS="libc.so.6 libm.so.6 libpthread.so.0 libdl.so.2 librt.so.1 libresolv.so.2
ld-linux-x86-64.so.2 ld-linux-aarch64.so.1 libutil.so.1 libanl.so.1"

die() { printf 'lambda: %s\n' "$*" >&2; exit 1; }
[ -x "$bin" ] || die "no binary $bin"
[ -f "$app" ] || die "no app $app (make lambda APP=path/to/app.lua)"
command -v objdump >/dev/null || die "objdump is needed (binutils)"
command -v zip >/dev/null || die "zip is needed (apt-get install zip)"

root=$(CDPATH='' cd -- "$(dirname -- "$0")/.." && pwd)
mkdir -p "$(dirname "$out")"
out=$(CDPATH='' cd -- "$(dirname -- "$out")" && pwd)/$(basename "$out")
stage=$(dirname "$out")/stage
rm -rf "$stage" "$out"
mkdir -p "$stage/bin" "$stage/lib" "$stage/certs" "$stage/app"

cp "$bin" "$stage/bin/aeon-host"
# Every library the loader would map, but glibc's.
ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }' | while read -r name path; do
    case " $(echo $GLIBC_LIBS) " in *" $name "*) continue ;; esac
    cp -L "$path" "$stage/lib/$name"
done
cp -L /etc/ssl/certs/ca-certificates.crt "$stage/certs/ca-certificates.crt"
cp -R "$root/lua" "$stage/lua"
appdir=$(dirname "$app")
(cd "$appdir" && find . -name '*.lua' -type f) | while read -r f; do
    mkdir -p "$stage/app/$(dirname "$f")"
    cp "$appdir/$f" "$stage/app/$f"
done

cat >"$stage/bootstrap" <<'EOF'
#!/bin/sh
AWS_CA_BUNDLE="${AWS_CA_BUNDLE:-$LAMBDA_TASK_ROOT/certs/ca-certificates.crt}" exec "$LAMBDA_TASK_ROOT/bin/aeon-host" lambda
EOF
chmod 755 "$stage/bootstrap" "$stage/bin/aeon-host"

# The check: each ELF's required glibc versions, and its needed libraries.
newer() { [ "$(printf '%s\n%s\n' "$1" "$GLIBC_MAX" | sort -V | tail -1)" != "$GLIBC_MAX" ]; }
bad=0 files=0 top=0
for f in "$stage/bin/aeon-host" "$stage"/lib/*; do
    files=$((files + 1))
    for v in $(objdump -p "$f" | awk '/^Version References:/ { on = 1; next } on && /^$/ { on = 0 }
                                   on && $NF ~ /^GLIBC_[0-9.]+$/ { sub("GLIBC_", "", $NF); print $NF }' | sort -Vu); do
        if newer "$v"; then
            printf 'lambda: %s needs GLIBC_%s; Amazon Linux 2023 has %s\n' "${f#$stage/}" "$v" "$GLIBC_MAX" >&2
            bad=1
        elif [ "$(printf '%s\n%s\n' "$v" "$top" | sort -V | tail -1)" = "$v" ]; then
            top=$v
        fi
    done
    for n in $(objdump -p "$f" | awk '$1 == "NEEDED" { print $2 }'); do
        case " $(echo $GLIBC_LIBS) " in *" $n "*) continue ;; esac
        [ -f "$stage/lib/$n" ] || { printf 'lambda: %s needs %s, which is not in the zip\n' "${f#$stage/}" "$n" >&2; bad=1; }
    done
done
[ "$bad" = 0 ] || die "the zip would not run on provided.al2023; use the container image (docs: README, Deploying to AWS Lambda)"

(cd "$stage" && zip -qr -X "$out.tmp" bootstrap bin lib certs lua app)
mv "$out.tmp" "$out"
printf 'lambda: %s: %d ELF files, newest glibc symbol version needed GLIBC_%s (at most %s), %s bytes; handler app/%s\n' \
    "$given" "$files" "$top" "$GLIBC_MAX" "$(wc -c <"$out" | tr -d ' ')" "$(basename "$app")"
