#!/usr/bin/env bash
# Load and footprint of the users API (examples/users-api), in one run:
#
#   benches/users_api_load.sh
#
# Builds the release binary (and the `otlp-sink` receiver of the tests package), starts a
# throwaway PostgreSQL cluster (initdb/pg_ctl, as the test harness does; as the `postgres` user
# when run as root), then runs the service twice against it:
#
#   traced    100% sampling (OTEL_TRACES_SAMPLER=always_on), spans exported over OTLP/gRPC to
#             a live receiver (`otlp-sink`, which decodes and counts every span);
#   untraced  OTEL_SDK_DISABLED=true.
#
# Both services run side by side (only one is loaded at a time); `wrk` drives `GET /users/{id}`
# on each, then `POST /users` on each (logged in, a new email per request, so every request is a
# 201: an argon2id hash plus an INSERT), in the order untraced, traced, traced, untraced, so
# that background load on the machine and drift affect both modes alike. Printed: requests/s,
# p50/p99 latency and non-2xx answers per endpoint and mode, the traced/untraced throughput
# ratio, peak RSS (VmHWM), the time from process start to the first successful /healthz, and
# the load average (a busy machine inflates every figure).
#
# Targets: traced/untraced >= 0.9, zero non-2xx, peak RSS < 50 MiB, start->healthz < 100 ms.
# Checked too: the traced service lost no span (none dropped from a full export queue, none
# failed), as it reports at shutdown; a run that lost spans measured a traced service doing less
# than its work. The exit status is 1 when a target or a check is missed.
#
# Needs: cargo, curl, PostgreSQL server binaries and wrk (Debian packages `postgresql` and `wrk`,
# installed with apt-get when missing and running as root).
#
# Settings (environment): DURATION (seconds per endpoint and mode, default 20), ROUNDS (rounds of
# untraced-traced-traced-untraced runs sharing DURATION, 2), CONNECTIONS (GET, 32),
# POST_CONNECTIONS (8), THREADS (wrk threads, 2), SKIP_BUILD=1 (use the existing release binaries),
# PG_BIN (directory of initdb/pg_ctl), SMAPS_DIR (a directory: each service's
# /proc/<pid>/smaps and status are copied there before it is stopped, to see where its resident
# memory lies).
#
# Also printed: the service's own CPU time per request (utime + stime of its process over the
# runs, divided by the requests served), a figure that background load on the machine hardly
# moves, unlike throughput.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DURATION="${DURATION:-20}"
CONNECTIONS="${CONNECTIONS:-32}"
POST_CONNECTIONS="${POST_CONNECTIONS:-8}"
THREADS="${THREADS:-2}"
ROUNDS="${ROUNDS:-2}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="$TARGET_DIR/release/users-api"
SINK="$TARGET_DIR/release/otlp-sink"

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
    say "cargo build --release -p users-api -p apprunner-kit-tests --bin users-api --bin otlp-sink"
    (cd "$ROOT" && cargo build --release -q -p users-api -p apprunner-kit-tests \
        --bin users-api --bin otlp-sink)
fi
[ -x "$BIN" ] && [ -x "$SINK" ] || die "release binaries missing: run without SKIP_BUILD=1"

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# ---- throwaway PostgreSQL -------------------------------------------------------------------
WORK="$(mktemp -d /tmp/users-api-load.XXXXXX)"
chmod 755 "$WORK"
declare -A PID=()
SINK_PID=""
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
    [ -n "$SINK_PID" ] && kill "$SINK_PID" 2>/dev/null || true
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
as_pg "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -q -c 'CREATE DATABASE users_api' \
    postgres >/dev/null
DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/users_api"

# ---- OTLP receiver --------------------------------------------------------------------------
SINK_PORT="$(free_port)"
"$SINK" "127.0.0.1:$SINK_PORT" >"$WORK/sink.out" 2>&1 &
SINK_PID=$!
for _ in $(seq 100); do grep -q listening "$WORK/sink.out" && break; sleep 0.05; done
grep -q listening "$WORK/sink.out" || die "otlp-sink did not start: $(cat "$WORK/sink.out")"

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

# start_service <mode> <VAR=value>...: starts the release binary, times start -> first /healthz.
start_service() {
    local mode="$1"; shift
    local port; port="$(free_port)"
    local base="http://127.0.0.1:$port"
    local start end
    say "$mode: starting the service"
    start="$(now_us)"
    env -i PATH="$PATH" PORT="$port" DATABASE_URL="$DATABASE_URL" \
        JWT_SECRET="load-test-signing-key-0123456789abcdef0123456789" \
        OTEL_SERVICE_NAME=users-api "$@" \
        "$BIN" >"$WORK/$mode.log" 2>&1 &
    PID[$mode]=$!
    until healthz_once "$port" 2>/dev/null; do
        kill -0 "${PID[$mode]}" 2>/dev/null || die "$mode: the service exited: $(tail -n 20 "$WORK/$mode.log")"
        [ $(( $(now_us) - start )) -lt 30000000 ] || die "$mode: not healthy after 30 s"
        nap
    done
    end="$(now_us)"
    RESULT[$mode.startup_ms]="$(( (end - start) / 1000 ))"
    if [ "${RESULT[$mode.startup_ms]}" -ge 100 ]; then
        # Slow start: show what the service logged up to then (retries, migrations).
        say "$mode: start -> /healthz took ${RESULT[$mode.startup_ms]} ms (started at $start µs); its log so far:"
        head -n 20 "$WORK/$mode.log" >&2
    fi
    BASE[$mode]="$base"

    local creds='{"email":"load-'"$mode"'@example.com","password":"load test password"}'
    ID[$mode]="$(curl -sf "$base/signup" -H 'content-type: application/json' -d "$creds" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["id"])')"
    COOKIE[$mode]="$(curl -sf -D - -o /dev/null "$base/login" -H 'content-type: application/json' \
        -d "$creds" | awk 'tolower($1) == "set-cookie:" { sub(/;.*/, "", $2); print $2 }')"
    [ -n "${ID[$mode]}" ] && [ -n "${COOKIE[$mode]}" ] || die "$mode: could not sign up and log in"
}

# load <mode> <get|post> <run>: one wrk run of HALF seconds against one service.
load() {
    local mode="$1" ep="$2" run="$3" base="${BASE[$1]}" out="$WORK/$1.$2.$3.txt"
    local ticks_before ticks_after
    say "$mode: ${ep^^} for ${HALF}s (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    ticks_before="$(awk '{ print $14 + $15 }' "/proc/${PID[$mode]}/stat")"
    if [ "$ep" = get ]; then
        wrk -t "$THREADS" -c "$CONNECTIONS" -d "$HALF" --timeout 10s --latency \
            "$base/users/${ID[$mode]}" >"$out"
    else
        # Sign-ups queue for the hashing permits: on a busy machine answers can take seconds,
        # more than wrk's default 2 s timeout.
        wrk -t "$THREADS" -c "$POST_CONNECTIONS" -d "$HALF" --timeout 10s --latency -s "$WORK/post.lua" \
            "$base/users" -- "$mode-$run-$$" "${COOKIE[$mode]}" >"$out"
    fi
    ticks_after="$(awk '{ print $14 + $15 }' "/proc/${PID[$mode]}/stat")"
    CPU_TICKS[$mode.$ep]=$(( ${CPU_TICKS[$mode.$ep]:-0} + ticks_after - ticks_before ))
    REQUESTS[$mode.$ep]=$(( ${REQUESTS[$mode.$ep]:-0} + $(awk '/requests in/ { print $1 }' "$out") ))
    RUNS[$mode.$ep]+="$(parse_wrk "$out")"$'\n'
    say "$mode: ${ep^^} run $run: $(parse_wrk "$out" | awk '{ printf "%s req/s, p50 %s ms, p99 %s ms", $1, $2, $3 }')"
}

# stop_service <mode>: peak RSS, SIGTERM, exit status.
stop_service() {
    local mode="$1" pid="${PID[$1]}" status=0
    RESULT[$mode.rss_kib]="$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status")"
    if [ -n "${SMAPS_DIR:-}" ]; then
        mkdir -p "$SMAPS_DIR"
        cp "/proc/$pid/smaps" "$SMAPS_DIR/$mode.smaps"
        cp "/proc/$pid/status" "$SMAPS_DIR/$mode.status"
    fi
    kill -TERM "$pid"
    wait "$pid" || status=$?
    PID[$mode]=""
    RESULT[$mode.exit]="$status"
    # The kit logs at shutdown how many spans it could not export (queue full, export failed):
    # a traced run that lost spans did less work than it claims, and its ratio does not count.
    local field lost=0 n
    for field in spans_dropped spans_failed; do
        n="$(grep -o "\"$field\":[0-9]*" "$WORK/$mode.log" | tail -n 1 | cut -d: -f2 || true)"
        lost=$(( lost + ${n:-0} ))
    done
    RESULT[$mode.lost]="$lost"
}

LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
start_service untraced OTEL_SDK_DISABLED=true
start_service traced OTEL_TRACES_SAMPLER=always_on \
    OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$SINK_PORT"
# Warm-up, then each endpoint in the order untraced, traced, traced, untraced (half the
# duration each): whatever else the machine does, and any drift, affects both modes alike.
# Each round runs both modes in the order untraced, traced, traced, untraced; ROUNDS rounds
# share DURATION seconds per endpoint and mode.
HALF=$(( DURATION / (2 * ROUNDS) ))
[ "$HALF" -ge 2 ] || HALF=2
declare -A RUNS=() CPU_TICKS=() REQUESTS=()
for mode in untraced traced; do
    wrk -t "$THREADS" -c "$CONNECTIONS" -d 5 "${BASE[$mode]}/users/${ID[$mode]}" >/dev/null
done
for ep in get post; do
    for round in $(seq "$ROUNDS"); do
        load untraced "$ep" "$round.1"
        load traced "$ep" "$round.1"
        load traced "$ep" "$round.2"
        load untraced "$ep" "$round.2"
    done
    for mode in untraced traced; do
        RESULT[$mode.$ep]="$(printf '%s' "${RUNS[$mode.$ep]}" | combine)"
    done
done
stop_service untraced
stop_service traced
LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"

# utime + stime of the receiver (clock ticks): the CPU its decoding took from the machine.
SINK_TICKS="$(awk '{ print $14 + $15 }' "/proc/$SINK_PID/stat")"
kill -TERM "$SINK_PID"
wait "$SINK_PID" || true
SINK_PID=""
SPANS="$(grep -o 'spans=[0-9]*' "$WORK/sink.out" | cut -d= -f2)"

# ---- report -----------------------------------------------------------------------------------
failed=0
check() { # check <description> <ok: 0|1>
    if [ "$2" = 1 ]; then printf '  PASS  %s\n' "$1"; else printf '  FAIL  %s\n' "$1"; failed=1; fi
}
field() { echo "${RESULT[$1]}" | awk -v i="$2" '{ print $i }'; }

printf '\nusers API load (wrk %s threads; GET %s connections, POST %s; per endpoint and mode two runs\n' \
    "$THREADS" "$CONNECTIONS" "$POST_CONNECTIONS"
printf 'of %s s in each of %s rounds untraced, traced, traced, untraced: mean req/s, mean p50,\nworst p99)\n' "$HALF" "$ROUNDS"
printf '%-9s %-16s %10s %9s %9s %8s  %s\n' mode endpoint 'req/s' 'p50 ms' 'p99 ms' non-2xx 'socket errors'
for mode in traced untraced; do
    for ep in get post; do
        label="GET /users/{id}"; [ "$ep" = post ] && label="POST /users"
        printf '%-9s %-16s %10s %9s %9s %8s  %s\n' "$mode" "$label" \
            "$(field "$mode.$ep" 1)" "$(field "$mode.$ep" 2)" "$(field "$mode.$ep" 3)" \
            "$(field "$mode.$ep" 4)" "$(field "$mode.$ep" 5)"
    done
done
for mode in traced untraced; do
    printf '%-9s peak RSS %.1f MiB, start -> first /healthz %s ms, exit status %s\n' "$mode" \
        "$(awk -v k="${RESULT[$mode.rss_kib]}" 'BEGIN { print k / 1024 }')" \
        "${RESULT[$mode.startup_ms]}" "${RESULT[$mode.exit]}"
done
cpu_us() { # cpu_us <mode.ep>: the service's CPU microseconds per request
    awk -v t="${CPU_TICKS[$1]:-0}" -v n="${REQUESTS[$1]:-0}" -v hz="$(getconf CLK_TCK)" \
        'BEGIN { if (n > 0) printf "%.1f", t / hz * 1e6 / n; else print "-" }'
}
for ep in get post; do
    label="GET /users/{id}"; [ "$ep" = post ] && label="POST /users"
    printf 'service CPU per request, %-16s traced %s µs, untraced %s µs (ratio %s)\n' "$label" \
        "$(cpu_us "traced.$ep")" "$(cpu_us "untraced.$ep")" \
        "$(awk -v t="$(cpu_us "traced.$ep")" -v u="$(cpu_us "untraced.$ep")" \
            'BEGIN { if (t > 0) printf "%.3f", u / t; else print "-" }')"
done
printf 'spans received by the OTLP receiver: %s (receiver CPU %s s, %s µs per span)\n' "${SPANS:-0}" \
    "$(awk -v t="$SINK_TICKS" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", t / hz }')" \
    "$(awk -v t="$SINK_TICKS" -v hz="$(getconf CLK_TCK)" -v n="${SPANS:-0}" \
        'BEGIN { if (n > 0) printf "%.2f", t / hz * 1e6 / n; else print "-" }')"
printf 'load average (1, 5, 15 min) before: %s, after: %s (%s CPUs)\n\n' "$LOAD_BEFORE" \
    "$LOAD_AFTER" "$(nproc)"

for ep in get post; do
    ratio="$(awk -v t="$(field "traced.$ep" 1)" -v u="$(field "untraced.$ep" 1)" \
        'BEGIN { printf "%.3f", (u > 0 ? t / u : 0) }')"
    check "throughput traced/untraced ${ep^^} = $ratio (>= 0.9)" \
        "$(awk -v r="$ratio" 'BEGIN { print (r >= 0.9) ? 1 : 0 }')"
done
for mode in traced untraced; do
    for ep in get post; do
        n="$(field "$mode.$ep" 4)"
        check "$mode ${ep^^}: $n non-2xx, socket errors: $(field "$mode.$ep" 5)" \
            "$([ "$n" = 0 ] && [ "$(field "$mode.$ep" 5)" = none ] && echo 1 || echo 0)"
    done
    rss="${RESULT[$mode.rss_kib]}"
    check "$mode peak RSS $(( rss / 1024 )) MiB (< 50 MiB)" "$([ "$rss" -lt $(( 50 * 1024 )) ] && echo 1 || echo 0)"
    ms="${RESULT[$mode.startup_ms]}"
    check "$mode start -> /healthz $ms ms (< 100 ms)" "$([ "$ms" -lt 100 ] && echo 1 || echo 0)"
    check "$mode exit status ${RESULT[$mode.exit]} after SIGTERM" "$([ "${RESULT[$mode.exit]}" = 0 ] && echo 1 || echo 0)"
done
check "spans arrived at the receiver (${SPANS:-0})" "$([ "${SPANS:-0}" -gt 0 ] && echo 1 || echo 0)"
check "traced: no span lost (dropped or failed: ${RESULT[traced.lost]})" \
    "$([ "${RESULT[traced.lost]}" = 0 ] && echo 1 || echo 0)"
exit "$failed"
