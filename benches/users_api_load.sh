#!/usr/bin/env bash
# Load and footprint of the users API (examples/users-api) against a hand-wired baseline
# (benches/baseline: the same routes and queries with axum, sqlx and tracing-opentelemetry over
# the OpenTelemetry SDK, no apprunner-kit), in one run:
#
#   benches/users_api_load.sh
#
# Builds the release binaries (the users API, the baseline and the `otlp-sink` receiver of the
# tests package), starts a throwaway PostgreSQL cluster (initdb/pg_ctl, as the test harness
# does; as the `postgres` user when run as root) with one database per service, then runs four
# services side by side against it:
#
#   kit-traced     the users API, 100% sampling (OTEL_TRACES_SAMPLER=always_on), spans
#                  exported over OTLP/gRPC to a live receiver (`otlp-sink`, which decodes and
#                  counts every span; one receiver per traced service, so each count is its own);
#   kit-untraced   the users API, OTEL_SDK_DISABLED=true;
#   base-traced    the baseline, 100% sampling, exporting to its own receiver;
#   base-untraced  the baseline, OTEL_SDK_DISABLED=true.
#
# Only one is loaded at a time: `wrk` drives `GET /users/{id}` on each, then `POST /users` on
# each (logged in, a new email per request, so every request is a 201: an argon2id hash plus an
# INSERT), in ROUNDS rounds of kit-traced, base-traced, kit-untraced, base-untraced and back
# (ABCD DCBA), so that background load on the machine and drift affect all four alike. Printed:
# a table of requests/s, p50/p99 latency and non-2xx answers per endpoint and service, spans
# received and lost, peak RSS (VmHWM), the time from process start to the first successful
# /healthz and the service's CPU per request (a markdown table, for benches/README.md), then
# the runs' details and the load average (a busy machine inflates every figure).
#
# Targets (the exit status is 1 when one is missed):
#   kit-traced GET req/s >= base-traced GET req/s;
#   kit-traced GET p99 <= base-traced GET p99;
#   no span lost by either traced service (dropped from a full export queue or failed, as
#   each reports at shutdown: a service that lost spans did less than its work);
#   zero non-2xx and no socket errors, exit status 0 after SIGTERM, for all four;
#   untraced GET req/s: kit >= base;
#   peak RSS: kit-traced <= base-traced, kit-untraced <= base-untraced, and both < 50 MiB;
#   kit services: start->healthz < 100 ms (the baseline's is shown only).
#
# Needs: cargo, curl, python3, PostgreSQL server binaries and wrk (Debian packages `postgresql`
# and `wrk`, installed with apt-get when missing and running as root).
#
# Settings (environment): DURATION (seconds per endpoint and service, default 20), ROUNDS
# (rounds sharing DURATION, 2), RUNS (whole runs, each on fresh services and a fresh cluster,
# default 3: the spread of the ratios across them is printed last, and every run must meet
# every target), KIT_BIN / BASE_BIN (other binaries of the two services, e.g. an
# earlier users-api for a before/after run), CONNECTIONS (GET, 32), POST_CONNECTIONS (8), THREADS (wrk
# threads, 2), WARMUP (seconds of GET per service before the runs, 5), SKIP_BUILD=1 (use the
# existing release binaries), SERVICE_ENV (extra VAR=value words for every service, e.g.
# OTEL_BSP_MAX_QUEUE_SIZE=8192), LOG_DIR (a directory: each service's log is copied there when
# it stops), PG_BIN (directory of initdb/pg_ctl), SMAPS_DIR (a directory: each
# service's /proc/<pid>/smaps and status are copied there before it is stopped, to see where
# its resident memory lies).
#
# The service's own CPU time per request (utime + stime of its process over the runs, divided
# by the requests served) is a figure that background load on the machine hardly moves, unlike
# throughput.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DURATION="${DURATION:-20}"
CONNECTIONS="${CONNECTIONS:-32}"
POST_CONNECTIONS="${POST_CONNECTIONS:-8}"
THREADS="${THREADS:-2}"
WARMUP="${WARMUP:-5}"
ROUNDS="${ROUNDS:-2}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
SINK="$TARGET_DIR/release/otlp-sink"
# The binary of each implementation; a service is <implementation>-<traced|untraced>.
declare -A IMPL_BIN=(
    [kit]="${KIT_BIN:-$TARGET_DIR/release/users-api}"
    [base]="${BASE_BIN:-$TARGET_DIR/release/baseline-users-api}"
)
declare -A IMPL_NAME=([kit]=users-api [base]=baseline-users-api)
SERVICES=(kit-traced base-traced kit-untraced base-untraced)

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'users_api_load: %s\n' "$*" >&2; exit 2; }

apt_install() {
    [ "$(id -u)" = 0 ] || die "$1 is missing: install it (apt-get install $1)"
    say "installing $1 with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$1" >/dev/null 2>&1 || {
        DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$1" >/dev/null
    }
}

command -v curl >/dev/null || apt_install curl
command -v wrk >/dev/null || apt_install wrk

find_pg_bin() {
    if [ -n "${PG_BIN:-}" ]; then echo "$PG_BIN"; return; fi
    if command -v pg_config >/dev/null && [ -x "$(pg_config --bindir)/initdb" ]; then
        pg_config --bindir; return
    fi
    local best
    best="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
    if [ -n "$best" ] && [ -x "$best/initdb" ]; then echo "$best"; return; fi
    command -v initdb >/dev/null && dirname "$(command -v initdb)"
}
PG_BIN="$(find_pg_bin || true)"
if [ -z "$PG_BIN" ]; then
    apt_install postgresql
    PG_BIN="$(find_pg_bin)"
fi

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    say "cargo build --release -p users-api -p baseline-users-api -p apprunner-kit-tests"
    (cd "$ROOT" && cargo build --release -q -p users-api -p baseline-users-api \
        -p apprunner-kit-tests --bin users-api --bin baseline-users-api --bin otlp-sink)
fi
for bin in "${IMPL_BIN[@]}" "$SINK"; do
    [ -x "$bin" ] || die "release binary $bin missing: run without SKIP_BUILD=1"
done

# RUNS > 1: this script runs itself RUNS times (one whole run each), then prints the spread.
RUNS="${RUNS:-3}"
if [ -z "${LOAD_RUN_INDEX:-}" ] && [ "$RUNS" -gt 1 ]; then
    summaries=()
    any_failed=0
    for run in $(seq "$RUNS"); do
        say "run $run of $RUNS"
        out="$(mktemp /tmp/users-api-load-run.XXXXXX)"
        status=0
        LOAD_RUN_INDEX="$run" SKIP_BUILD=1 "$0" >"$out" || status=$?
        cat "$out"
        [ "$status" = 0 ] || any_failed=1
        summaries+=("$(grep '^summary ' "$out" | tail -n 1)")
        rm -f "$out"
    done
    printf '\nSpread over %s runs (min / median / max):\n\n' "$RUNS"
    printf '%s\n' "${summaries[@]}" | python3 -c '
import statistics, sys
runs = [dict(kv.split("=") for kv in line.split()[1:]) for line in sys.stdin if line.strip()]
rows = [
    ("kit/base traced GET req/s", "traced_ratio"),
    ("kit/base untraced GET req/s", "untraced_ratio"),
    ("kit traced GET p99 ms", "kit_traced_p99"), ("base traced GET p99 ms", "base_traced_p99"),
    ("kit untraced GET p99 ms", "kit_untraced_p99"), ("base untraced GET p99 ms", "base_untraced_p99"),
    ("kit traced peak RSS MiB", "kit_traced_rss"), ("base traced peak RSS MiB", "base_traced_rss"),
    ("kit untraced peak RSS MiB", "kit_untraced_rss"), ("base untraced peak RSS MiB", "base_untraced_rss"),
    ("spans lost kit / base", None),
]
print("| figure | min | median | max | per run |")
print("|---|---|---|---|---|")
for label, key in rows:
    if key is None:
        print(f"| {label} | | | | " + ", ".join(r.get("kit_lost", "?") + "/" + r.get("base_lost", "?") for r in runs) + " |")
        continue
    values = [float(r[key]) for r in runs if r.get(key) not in (None, "-")]
    if not values:
        continue
    print(f"| {label} | {min(values):g} | {statistics.median(values):g} | {max(values):g} | " + ", ".join(f"{v:g}" for v in values) + " |")
print()
print("runs meeting every target: %d of %d" % (sum(r.get("failed") == "0" for r in runs), len(runs)))
'
    exit "$any_failed"
fi
if [ -n "${LOAD_RUN_INDEX:-}" ]; then
    [ -z "${SMAPS_DIR:-}" ] || SMAPS_DIR="$SMAPS_DIR/run$LOAD_RUN_INDEX"
    [ -z "${LOG_DIR:-}" ] || LOG_DIR="$LOG_DIR/run$LOAD_RUN_INDEX"
fi

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# ---- throwaway PostgreSQL -------------------------------------------------------------------
WORK="$(mktemp -d /tmp/users-api-load.XXXXXX)"
chmod 755 "$WORK"
declare -A PID=() SINK_PID=() SINK_PORT=()
as_pg() {
    if [ "$(id -u)" = 0 ]; then
        id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}
cleanup() {
    for pid in "${PID[@]:-}"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null; done || true
    for pid in "${SINK_PID[@]:-}"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null; done || true
    as_pg "$PG_BIN/pg_ctl" -D "$WORK/pg/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

PG_PORT="$(free_port)"
mkdir -p "$WORK/pg"
[ "$(id -u)" = 0 ] && { id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres; chown postgres "$WORK/pg"; }
say "PostgreSQL ($PG_BIN) on 127.0.0.1:$PG_PORT"
as_pg env LC_ALL=C "$PG_BIN/initdb" -D "$WORK/pg/data" -U postgres -A trust -E UTF8 --no-locale \
    --no-sync >/dev/null
as_pg "$PG_BIN/pg_ctl" -D "$WORK/pg/data" -l "$WORK/pg/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -c port=$PG_PORT -c unix_socket_directories=$WORK/pg \
        -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=100" \
    start >/dev/null
# One database per service: each applies the users API's migration at start, and the tables
# grow apart.
for svc in "${SERVICES[@]}"; do
    as_pg "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -q \
        -c "CREATE DATABASE ${svc//-/_}" postgres >/dev/null
done

# ---- OTLP receivers (one per traced service, so that each count is its own) -------------------
for impl in kit base; do
    SINK_PORT[$impl]="$(free_port)"
    "$SINK" "127.0.0.1:${SINK_PORT[$impl]}" >"$WORK/sink-$impl.out" 2>&1 &
    SINK_PID[$impl]=$!
    for _ in $(seq 100); do grep -q listening "$WORK/sink-$impl.out" && break; sleep 0.05; done
    grep -q listening "$WORK/sink-$impl.out" ||
        die "otlp-sink did not start: $(cat "$WORK/sink-$impl.out")"
done

# ---- wrk scripts ------------------------------------------------------------------------------
cat >"$WORK/post.lua" <<'LUA'
-- POST /users with a fresh email per request: wrk ... -s post.lua URL -- <tag> <cookie>
local threads = 0
function setup(thread)
    thread:set("tid", threads)
    threads = threads + 1
end
function init(args)
    tag = args[1] .. "-" .. tid
    cookie = args[2]
    n = 0
end
function request()
    n = n + 1
    local body = string.format('{"email":"%s-%d@load.example","password":"load test password"}', tag, n)
    return wrk.format("POST", "/users",
        { ["Content-Type"] = "application/json", ["Cookie"] = cookie }, body)
end
LUA

# Parses wrk --latency output into "rps p50_ms p99_ms non2xx socket_errors".
parse_wrk() {
    awk '
        function ms(v) {
            if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000
            if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
            if (v ~ /m$/) return substr(v, 1, length(v) - 1) * 60000
            if (v ~ /s$/) return substr(v, 1, length(v) - 1) * 1000
            return v + 0
        }
        /Requests\/sec:/ { rps = $2 }
        /^ +50%/ { p50 = ms($2) }
        /^ +99%/ { p99 = ms($2) }
        /Non-2xx or 3xx responses:/ { non2xx = $5 }
        /Socket errors:/ { errors = $0 }
        END {
            if (non2xx == "") non2xx = 0
            if (errors == "") errors = "none"; else { sub(/^ *Socket errors: */, "", errors); gsub(/ /, "_", errors) }
            print rps, p50, p99, non2xx, errors
        }' "$1"
}

# Combines the runs of one mode and endpoint: mean req/s, mean p50, worst p99, total non-2xx.
combine() {
    awk '
        { n++; rps += $1; p50 += $2; if ($3 > p99) p99 = $3; non2xx += $4
          if ($5 != "none") errors = errors $5 ";" }
        END {
            if (errors == "") errors = "none"
            printf "%.2f %.2f %.2f %d %s\n", rps / n, p50 / n, p99, non2xx, errors
        }'
}

# Microseconds since the epoch, without forking (bash 5).
now_us() { local t="$EPOCHREALTIME"; echo "${t/./}"; }

# One `GET /healthz` over bash's /dev/tcp (no fork, so polling does not distort the timing).
healthz_once() {
    local line
    exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
    printf 'GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' >&3
    IFS= read -r -t 2 line <&3 || line=""
    exec 3<&- 3>&-
    [[ "$line" == "HTTP/1.1 200"* ]]
}

# Sleeps 1 ms without forking: a read that times out on a pipe nobody writes to.
exec {NAP}<> <(:)
nap() { read -r -t 0.001 -u "$NAP" || true; }


declare -A RESULT BASE ID COOKIE

# start_service <service> <VAR=value>...: starts the service's release binary (`kit-*`: the
# users API, `base-*`: the baseline) on its own database, times start -> first /healthz, then
# signs up and logs in.
start_service() {
    local svc="$1"; shift
    local impl="${svc%%-*}"
    local port; port="$(free_port)"
    local base="http://127.0.0.1:$port"
    local start end
    say "$svc: starting ${IMPL_NAME[$impl]}"
    start="$(now_us)"
    env -i PATH="$PATH" PORT="$port" \
        DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/${svc//-/_}" \
        JWT_SECRET="load-test-signing-key-0123456789abcdef0123456789" \
        OTEL_SERVICE_NAME="${IMPL_NAME[$impl]}" ${SERVICE_ENV:-} "$@" \
        "${IMPL_BIN[$impl]}" >"$WORK/$svc.log" 2>&1 &
    PID[$svc]=$!
    until healthz_once "$port" 2>/dev/null; do
        kill -0 "${PID[$svc]}" 2>/dev/null || die "$svc: the service exited: $(tail -n 20 "$WORK/$svc.log")"
        [ $(( $(now_us) - start )) -lt 30000000 ] || die "$svc: not healthy after 30 s"
        nap
    done
    end="$(now_us)"
    RESULT[$svc.startup_ms]="$(( (end - start) / 1000 ))"
    if [ "${RESULT[$svc.startup_ms]}" -ge 100 ]; then
        # Slow start: show what the service logged up to then (retries, migrations).
        say "$svc: start -> /healthz took ${RESULT[$svc.startup_ms]} ms (started at $start µs); its log so far:"
        head -n 20 "$WORK/$svc.log" >&2
    fi
    BASE[$svc]="$base"

    local creds='{"email":"load-'"$svc"'@example.com","password":"load test password"}'
    ID[$svc]="$(curl -sf "$base/signup" -H 'content-type: application/json' -d "$creds" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["id"])')"
    COOKIE[$svc]="$(curl -sf -D - -o /dev/null "$base/login" -H 'content-type: application/json' \
        -d "$creds" | awk 'tolower($1) == "set-cookie:" { sub(/;.*/, "", $2); print $2 }')"
    [ -n "${ID[$svc]}" ] && [ -n "${COOKIE[$svc]}" ] || die "$svc: could not sign up and log in"
}

# load <service> <get|post> <run>: one wrk run of HALF seconds against one service.
load() {
    local svc="$1" ep="$2" run="$3" base="${BASE[$1]}" out="$WORK/$1.$2.$3.txt"
    local ticks_before ticks_after
    say "$svc: ${ep^^} for ${HALF}s (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    ticks_before="$(awk '{ print $14 + $15 }' "/proc/${PID[$svc]}/stat")"
    if [ "$ep" = get ]; then
        wrk -t "$THREADS" -c "$CONNECTIONS" -d "$HALF" --timeout 10s --latency \
            "$base/users/${ID[$svc]}" >"$out"
    else
        # Sign-ups queue for the hashing permits: on a busy machine answers can take seconds,
        # more than wrk's default 2 s timeout.
        wrk -t "$THREADS" -c "$POST_CONNECTIONS" -d "$HALF" --timeout 10s --latency -s "$WORK/post.lua" \
            "$base/users" -- "$svc-$run-$$" "${COOKIE[$svc]}" >"$out"
    fi
    ticks_after="$(awk '{ print $14 + $15 }' "/proc/${PID[$svc]}/stat")"
    CPU_TICKS[$svc.$ep]=$(( ${CPU_TICKS[$svc.$ep]:-0} + ticks_after - ticks_before ))
    REQUESTS[$svc.$ep]=$(( ${REQUESTS[$svc.$ep]:-0} + $(awk '/requests in/ { print $1 }' "$out") ))
    RUNS[$svc.$ep]+="$(parse_wrk "$out")"$'\n'
    say "$svc: ${ep^^} run $run: $(parse_wrk "$out" | awk '{ printf "%s req/s, p50 %s ms, p99 %s ms", $1, $2, $3 }')"
}

# last_field <service> <field>: the last `"field":N` its log shows, empty when none.
last_field() {
    grep -o "\"$2\":[0-9]*" "$WORK/$1.log" | tail -n 1 | cut -d: -f2 || true
}

# stop_service <service>: peak RSS, SIGTERM, exit status, spans lost.
stop_service() {
    local svc="$1" pid="${PID[$1]}" status=0
    RESULT[$svc.rss_kib]="$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status")"
    if [ -n "${SMAPS_DIR:-}" ]; then
        mkdir -p "$SMAPS_DIR"
        cp "/proc/$pid/smaps" "$SMAPS_DIR/$svc.smaps"
        cp "/proc/$pid/status" "$SMAPS_DIR/$svc.status"
    fi
    kill -TERM "$pid"
    wait "$pid" || status=$?
    PID[$svc]=""
    if [ -n "${LOG_DIR:-}" ]; then
        mkdir -p "$LOG_DIR"
        cp "$WORK/$svc.log" "$LOG_DIR/$svc.log"
    fi
    RESULT[$svc.exit]="$status"
    [ "${svc#*-}" = traced ] || return 0
    # Spans lost: dropped (ended, but the export queue was full) plus failed (the export
    # failed). The kit logs them at shutdown only when there are some; the baseline always logs
    # `telemetry shut down` with spans_ended/exported/failed/dropped, so a missing line there
    # means it did not flush (counted as lost: "?").
    if [ "${svc%%-*}" = base ] && ! grep -q '"spans_ended":' "$WORK/$svc.log"; then
        RESULT[$svc.lost]="?"
        return 0
    fi
    local field lost=0 n
    for field in spans_dropped spans_failed; do
        n="$(last_field "$svc" "$field")"
        lost=$(( lost + ${n:-0} ))
    done
    RESULT[$svc.lost]="$lost"
}

LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
for impl in kit base; do
    start_service "$impl-traced" OTEL_TRACES_SAMPLER=always_on \
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:${SINK_PORT[$impl]}"
    start_service "$impl-untraced" OTEL_SDK_DISABLED=true
done
# Warm-up, then each endpoint in ROUNDS rounds of the four services and back (ABCD DCBA, HALF
# seconds each): whatever else the machine does, and any drift, affects all four alike. The
# rounds share DURATION seconds per endpoint and service.
HALF=$(( DURATION / (2 * ROUNDS) ))
[ "$HALF" -ge 2 ] || HALF=2
declare -A RUNS=() CPU_TICKS=() REQUESTS=()
for svc in "${SERVICES[@]}"; do
    wrk -t "$THREADS" -c "$CONNECTIONS" -d "$WARMUP" "${BASE[$svc]}/users/${ID[$svc]}" >/dev/null
done
REVERSED=()
for (( i = ${#SERVICES[@]} - 1; i >= 0; i-- )); do REVERSED+=("${SERVICES[i]}"); done
for ep in get post; do
    for round in $(seq "$ROUNDS"); do
        for svc in "${SERVICES[@]}"; do load "$svc" "$ep" "$round.1"; done
        for svc in "${REVERSED[@]}"; do load "$svc" "$ep" "$round.2"; done
    done
    for svc in "${SERVICES[@]}"; do
        RESULT[$svc.$ep]="$(printf '%s' "${RUNS[$svc.$ep]}" | combine)"
    done
done
for svc in "${SERVICES[@]}"; do stop_service "$svc"; done
LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"

# The receivers: their span counts, and their utime + stime (clock ticks): the CPU their
# decoding took from the machine.
declare -A SPANS=() SINK_TICKS=()
for impl in kit base; do
    SINK_TICKS[$impl]="$(awk '{ print $14 + $15 }' "/proc/${SINK_PID[$impl]}/stat")"
    kill -TERM "${SINK_PID[$impl]}"
    wait "${SINK_PID[$impl]}" || true
    SINK_PID[$impl]=""
    SPANS[$impl]="$(grep -o 'spans=[0-9]*' "$WORK/sink-$impl.out" | cut -d= -f2)"
    SPANS[$impl]="${SPANS[$impl]:-0}"
done

# ---- report -----------------------------------------------------------------------------------
failed=0
check() { # check <description> <ok: 0|1>
    if [ "$2" = 1 ]; then printf '  PASS  %s\n' "$1"; else printf '  FAIL  %s\n' "$1"; failed=1; fi
}
field() { echo "${RESULT[$1]}" | awk -v i="$2" '{ print $i }'; }
cpu_us() { # cpu_us <service.ep>: the service's CPU microseconds per request
    awk -v t="${CPU_TICKS[$1]:-0}" -v n="${REQUESTS[$1]:-0}" -v hz="$(getconf CLK_TCK)" \
        'BEGIN { if (n > 0) printf "%.1f", t / hz * 1e6 / n; else print "-" }'
}
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "-" }'; }

printf '\nusers API (kit) vs hand-wired baseline (base): wrk %s threads; GET %s connections, POST %s;\n' \
    "$THREADS" "$CONNECTIONS" "$POST_CONNECTIONS"
printf 'per endpoint and service two runs of %s s in each of %s rounds (ABCD DCBA): mean req/s,\n' \
    "$HALF" "$ROUNDS"
printf 'mean p50, worst p99; load average before %s, after %s (%s CPUs)\n\n' "$LOAD_BEFORE" \
    "$LOAD_AFTER" "$(nproc)"
printf '| service | GET req/s | GET p50 / p99 ms | POST req/s | POST p50 / p99 ms | non-2xx | spans received / lost | peak RSS | start → /healthz | CPU per GET / POST |\n'
printf '|---|---|---|---|---|---|---|---|---|---|\n'
for svc in "${SERVICES[@]}"; do
    spans="-"
    if [ "${svc#*-}" = traced ]; then spans="${SPANS[${svc%%-*}]} / ${RESULT[$svc.lost]}"; fi
    printf '| %s | %s | %s / %s | %s | %s / %s | %s | %s | %s MiB | %s ms | %s µs / %s µs |\n' "$svc" \
        "$(field "$svc.get" 1)" "$(field "$svc.get" 2)" "$(field "$svc.get" 3)" \
        "$(field "$svc.post" 1)" "$(field "$svc.post" 2)" "$(field "$svc.post" 3)" \
        "$(( $(field "$svc.get" 4) + $(field "$svc.post" 4) ))" "$spans" \
        "$(mib "${RESULT[$svc.rss_kib]}")" "${RESULT[$svc.startup_ms]}" \
        "$(cpu_us "$svc.get")" "$(cpu_us "$svc.post")"
done
printf '\n'
for ep in get post; do
    printf '%s: kit/base req/s traced %s, untraced %s; traced/untraced kit %s, base %s\n' "${ep^^}" \
        "$(ratio "$(field "kit-traced.$ep" 1)" "$(field "base-traced.$ep" 1)")" \
        "$(ratio "$(field "kit-untraced.$ep" 1)" "$(field "base-untraced.$ep" 1)")" \
        "$(ratio "$(field "kit-traced.$ep" 1)" "$(field "kit-untraced.$ep" 1)")" \
        "$(ratio "$(field "base-traced.$ep" 1)" "$(field "base-untraced.$ep" 1)")"
done
printf 'baseline spans by its own count: ended %s, exported %s (received %s)\n' \
    "$(last_field base-traced spans_ended)" "$(last_field base-traced spans_exported)" "${SPANS[base]}"
for impl in kit base; do
    printf 'receiver of %s-traced: %s spans, CPU %s s (%s µs per span)\n' "$impl" "${SPANS[$impl]}" \
        "$(awk -v t="${SINK_TICKS[$impl]}" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", t / hz }')" \
        "$(awk -v t="${SINK_TICKS[$impl]}" -v hz="$(getconf CLK_TCK)" -v n="${SPANS[$impl]}" \
            'BEGIN { if (n > 0) printf "%.2f", t / hz * 1e6 / n; else print "-" }')"
done
printf 'socket errors:'
for svc in "${SERVICES[@]}"; do
    printf ' %s GET %s, POST %s;' "$svc" "$(field "$svc.get" 5)" "$(field "$svc.post" 5)"
done
printf '\n\n'

kit_rps="$(field kit-traced.get 1)" base_rps="$(field base-traced.get 1)"
check "traced GET throughput kit $kit_rps >= baseline $base_rps req/s" \
    "$(awk -v k="$kit_rps" -v b="$base_rps" 'BEGIN { print (k >= b) ? 1 : 0 }')"
kit_p99="$(field kit-traced.get 3)" base_p99="$(field base-traced.get 3)"
check "traced GET p99 kit $kit_p99 <= baseline $base_p99 ms" \
    "$(awk -v k="$kit_p99" -v b="$base_p99" 'BEGIN { print (k <= b) ? 1 : 0 }')"
for impl in kit base; do
    check "$impl-traced: no span lost (dropped or failed: ${RESULT[$impl-traced.lost]})" \
        "$([ "${RESULT[$impl-traced.lost]}" = 0 ] && echo 1 || echo 0)"
    check "$impl-traced: spans arrived at its receiver (${SPANS[$impl]})" \
        "$([ "${SPANS[$impl]}" -gt 0 ] && echo 1 || echo 0)"
done
for svc in "${SERVICES[@]}"; do
    for ep in get post; do
        n="$(field "$svc.$ep" 4)"
        check "$svc ${ep^^}: $n non-2xx, socket errors: $(field "$svc.$ep" 5)" \
            "$([ "$n" = 0 ] && [ "$(field "$svc.$ep" 5)" = none ] && echo 1 || echo 0)"
    done
    check "$svc exit status ${RESULT[$svc.exit]} after SIGTERM" \
        "$([ "${RESULT[$svc.exit]}" = 0 ] && echo 1 || echo 0)"
done
kit_u="$(field kit-untraced.get 1)" base_u="$(field base-untraced.get 1)"
check "untraced GET throughput kit $kit_u >= baseline $base_u req/s" \
    "$(awk -v k="$kit_u" -v b="$base_u" 'BEGIN { print (k >= b) ? 1 : 0 }')"
for svc in kit-traced kit-untraced; do
    rss="${RESULT[$svc.rss_kib]}" base_rss="${RESULT[base-${svc#*-}.rss_kib]}"
    check "$svc peak RSS $(mib "$rss") MiB (< 50 MiB)" "$([ "$rss" -lt $(( 50 * 1024 )) ] && echo 1 || echo 0)"
    check "$svc peak RSS $(mib "$rss") MiB <= base-${svc#*-} $(mib "$base_rss") MiB" \
        "$([ "$rss" -le "$base_rss" ] && echo 1 || echo 0)"
    ms="${RESULT[$svc.startup_ms]}"
    check "$svc start -> /healthz $ms ms (< 100 ms)" "$([ "$ms" -lt 100 ] && echo 1 || echo 0)"
done
# One line for the RUNS summary (and for scripts).
printf 'summary traced_ratio=%s untraced_ratio=%s kit_traced_p99=%s base_traced_p99=%s kit_untraced_p99=%s base_untraced_p99=%s kit_traced_rss=%s base_traced_rss=%s kit_untraced_rss=%s base_untraced_rss=%s kit_lost=%s base_lost=%s failed=%s\n' \
    "$(ratio "$kit_rps" "$base_rps")" "$(ratio "$kit_u" "$base_u")" \
    "$kit_p99" "$base_p99" "$(field kit-untraced.get 3)" "$(field base-untraced.get 3)" \
    "$(mib "${RESULT[kit-traced.rss_kib]}")" "$(mib "${RESULT[base-traced.rss_kib]}")" \
    "$(mib "${RESULT[kit-untraced.rss_kib]}")" "$(mib "${RESULT[base-untraced.rss_kib]}")" \
    "${RESULT[kit-traced.lost]}" "${RESULT[base-traced.lost]}" "$failed"
exit "$failed"
