#!/bin/sh
# cfn-lint.sh - checks CloudFormation templates (`aeon-host store template`)
# with the cfn-lint validator from npm.
#
#   scripts/cfn-lint.sh fetch            # installs it if it is missing
#   scripts/cfn-lint.sh validate FILE    # exit 0 and "Template valid!" when it is
#
# cfn-lint on npm (1.9.7, a JavaScript validator: properties, types,
# required fields, Ref and GetAtt targets and attributes, per resource
# type) ships a CloudFormation resource specification from before
# AWS::Lambda::Url existed. The specification AWS publishes, in the format
# cfn-lint reads, comes in @aws-cdk/cfnspec (2.72.1: specification 117.0.0);
# fetch puts that one in place of the bundled one. Both are installed into
# $AEON_CFN_CACHE, default .cache/cfn-lint in the repository (git-ignored).
set -eu

LINT=cfn-lint@1.9.7
SPEC=@aws-cdk/cfnspec@2.72.1

root=$(CDPATH='' cd -- "$(dirname -- "$0")/.." && pwd)
cache=${AEON_CFN_CACHE:-$root/.cache/cfn-lint}
main=$cache/node_modules/cfn-lint/lib/index.js
data=$cache/node_modules/cfn-lint/data/aws_resources_specification.json

die() {
    printf 'cfn-lint: %s\n' "$*" >&2
    exit 1
}

fetch() {
    [ -f "$main" ] && [ -f "$cache/spec.version" ] && return 0
    command -v npm >/dev/null 2>&1 || die "npm is needed to fetch $LINT (apt-get install npm)"
    mkdir -p "$cache"
    printf 'cfn-lint: fetching %s and %s with npm into %s\n' "$LINT" "$SPEC" "$cache" >&2
    (cd "$cache" && npm install --silent --no-audit --no-fund --no-save "$LINT" >/dev/null) ||
        die "npm install $LINT failed"
    tmp=$(mktemp -d "$cache/spec.XXXXXX")
    if ! (cd "$tmp" && npm pack --silent "$SPEC" >/dev/null && tar -xzf ./*.tgz package/spec/specification.json); then
        rm -rf "$tmp"
        die "npm pack $SPEC failed"
    fi
    cp "$tmp/package/spec/specification.json" "$data"
    rm -rf "$tmp"
    echo "$SPEC" >"$cache/spec.version"
}

case "${1:-}" in
fetch) fetch ;;
validate)
    [ -n "${2:-}" ] || die "validate needs a template file"
    fetch
    node "$main" validate "$2" ;;
*) die "usage: cfn-lint.sh fetch | validate FILE" ;;
esac
