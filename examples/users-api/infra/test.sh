#!/usr/bin/env bash
# Offline tests of the users API's CDK app: ./test.sh (from anywhere).
#
#   1. `npm ci`, skipped when node_modules was installed from the same package-lock.json;
#   2. `tsc` (app and tests);
#   3. `cdk synth` through the CLI with no AWS credentials and no network, both stacks (UsersApi on
#      App Runner, UsersApiEcs on ECS Express Mode) each time: the default configuration, then
#      secret names + auto-pause, then VPC endpoints + Transaction Search; cdk-nag running as a
#      validation plugin;
#   4. the template assertions under node's test runner;
#   5. cfn-lint on every synthesized template: $CFN_LINT (a path) or `cfn-lint` on PATH
#      (pinned in scripts/requirements-test.txt; ./scripts/test installs it into .test-env/venv).
#
# Prints `infra: N passed, M failed` last and exits non-zero on any failure.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"
HERE="$(pwd)"
OUT="$HERE/.test-out"

if [ -t 1 ]; then BOLD=$'\033[1m' RESET=$'\033[0m'; else BOLD='' RESET=''; fi
section() { printf '\n%s==> infra: %s%s\n' "$BOLD" "$*" "$RESET"; }

PASSED=0
FAILED=0
pass() { PASSED=$((PASSED + 1)); }
fail() { FAILED=$((FAILED + 1)); printf 'FAILED: %s\n' "$*" >&2; }
finish() {
    printf '\ninfra: %d passed, %d failed\n' "$PASSED" "$FAILED"
    [ "$FAILED" -eq 0 ]
    exit
}

# Synth must not need AWS: no credentials, no instance metadata, no telemetry, no notices.
export AWS_EC2_METADATA_DISABLED=true
export CDK_DISABLE_CLI_TELEMETRY=true
export CDK_DISABLE_VERSION_CHECK=true
unset AWS_PROFILE AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_DEFAULT_PROFILE
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null

for tool in node npm; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        fail "$tool not found (Node.js 20 or later is needed)"
        finish
    fi
done

# --------------------------------------------------------------------------------------------
section "npm ci"
STAMP="node_modules/.users-api-infra.stamp"
WANT="$( { cat package-lock.json; node --version; } | sha256sum | cut -d' ' -f1)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; then
    echo "node_modules matches package-lock.json: skipping npm ci"
elif npm ci --no-audit --no-fund; then
    printf '%s\n' "$WANT" > "$STAMP"
else
    fail "npm ci"
    finish
fi

# --------------------------------------------------------------------------------------------
section "tsc"
rm -rf dist
if node_modules/.bin/tsc -p tsconfig.json; then pass; else fail "tsc"; finish; fi

# --------------------------------------------------------------------------------------------
rm -rf "$OUT" cdk.out
mkdir -p "$OUT"
TEMPLATES=()
synth() { # synth NAME OUTDIR [cdk args...]
    local name="$1" outdir="$2"
    shift 2
    section "cdk synth ($name)"
    if node_modules/.bin/cdk synth --quiet --no-notices --output "$outdir" "$@"; then
        pass
        local t
        for t in "$outdir"/*.template.json; do [ -f "$t" ] && TEMPLATES+=("$t"); done
    else
        fail "cdk synth ($name)"
    fi
}
synth "default" cdk.out
synth "secret names, auto-pause" "$OUT/cdk.out.names-autopause" \
    -c users-api:secretsMode=names -c users-api:dbMinCapacity=0 -c users-api:dbAutoPauseMinutes=10
synth "VPC endpoints, Transaction Search" "$OUT/cdk.out.endpoints-transaction-search" \
    -c users-api:vpcEndpoints=true -c users-api:transactionSearch=true

# --------------------------------------------------------------------------------------------
section "node --test"
TAP="$OUT/node-test.tap"
node --test \
    --test-reporter=spec --test-reporter-destination=stdout \
    --test-reporter=tap --test-reporter-destination="$TAP" \
    dist/test/all.js
status=$?
tests_passed="$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$TAP" 2>/dev/null | tail -n 1)"
tests_failed="$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$TAP" 2>/dev/null | tail -n 1)"
PASSED=$((PASSED + ${tests_passed:-0}))
FAILED=$((FAILED + ${tests_failed:-0}))
if [ "$status" -ne 0 ] && [ "${tests_failed:-0}" -eq 0 ]; then
    fail "node --test exited with $status"
fi

# --------------------------------------------------------------------------------------------
section "cfn-lint"
CFN_LINT_BIN="${CFN_LINT:-$(command -v cfn-lint || true)}"
if [ -z "$CFN_LINT_BIN" ] || [ ! -x "$CFN_LINT_BIN" ]; then
    fail "cfn-lint not found: set CFN_LINT to its path or put it on PATH (pip install -r scripts/requirements-test.txt)"
elif [ "${#TEMPLATES[@]}" -eq 0 ]; then
    fail "no template to lint"
else
    echo "$("$CFN_LINT_BIN" --version) ($CFN_LINT_BIN)"
    for t in "${TEMPLATES[@]}"; do
        if "$CFN_LINT_BIN" -- "$t"; then
            echo "ok ${t#"$HERE/"}"
            pass
        else
            fail "cfn-lint ${t#"$HERE/"}"
        fi
    done
fi

finish
