#!/usr/bin/env bash
# What tracing adds to one request (or query), in instructions, over the real path: every
# thread of the benchmark process is counted by valgrind's callgrind (client, server, the
# export thread and the in-process OTLP receiver), and the receiver (its gRPC server and its
# decoding of every span) is shown apart.
#
#   bash benches/overhead_instructions.sh http   # GET /hello over TCP, with and without the layer
#   bash benches/overhead_instructions.sh db     # SQLite primary-key SELECT, raw and traced pool
#
# Each side runs in criterion's profiling mode (`--profile-time`, which skips the interleaved
# passes) twice, for 2 s and for 8 s; the difference between the two runs, divided by the
# requests made between them, cancels the start-up (telemetry, receiver, runtime, the SQLite
# table). Unlike throughput, the counts do not move with the load of a shared machine.
#
# Needs valgrind (Debian package `valgrind`). SKIP_BUILD=1 uses the existing bench binaries.
set -euo pipefail
cd "$(dirname "$0")/.."

kind="${1:-http}"
case "$kind" in
    http) bench=http_layer; sides=(hello/without_layer hello/with_layer)
          unit="axum::routing::Router<S>::call_with_state " ;;
    db) bench=db; sides=(pk_select_sqlite/raw_sqlx pk_select_sqlite/apprunner_traced)
        unit="tracing::span::Span::new " ;;
    *) echo "usage: $0 http|db" >&2; exit 2 ;;
esac
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
if [[ "${SKIP_BUILD:-}" != 1 ]]; then
    cargo bench -p apprunner-kit-benches --bench "$bench" --no-run
fi
bin="$(ls -t target/release/deps/"$bench"-* | grep -v '\.d$' | head -n 1)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

for side in "${sides[@]}"; do
    for seconds in 2 8; do
        out="$work/${side//\//_}.$seconds"
        valgrind --tool=callgrind --callgrind-out-file="$out.cg" \
            "$bin" --bench --profile-time "$seconds" "$side" >"$out.log" 2>&1
        callgrind_annotate --inclusive=yes --tree=caller "$out.cg" >"$out.txt" 2>/dev/null
    done
done

python3 - "$work" "$unit" "${sides[@]}" <<'PY'
import sys

sys.path.insert(0, "benches")
from callgrind import Annotated

work, unit, sides = sys.argv[1], sys.argv[2], sys.argv[3:]

def read(path):
    profile = Annotated(path)
    _, units = profile.inclusive(unit)
    # Absent when no span reached the receiver (the untraced side of `http`).
    receiver, _ = profile.inclusive("apprunner_kit_tests::otlp::serve ", required=False)
    return profile.total(), units, receiver

per = {}
for side in sides:
    base = f"{work}/{side.replace('/', '_')}"
    t2, n2, r2 = read(base + ".2.txt")
    t8, n8, r8 = read(base + ".8.txt")
    if n8 <= n2:
        sys.exit(f"{side}: no more requests in the longer run ({n2} then {n8})")
    per[side] = ((t8 - t2) / (n8 - n2), (r8 - r2) / (n8 - n2))
    print(f"{side:38} {per[side][0]:9.0f} instructions per request "
          f"(receiver {per[side][1]:6.0f}; {n8 - n2} requests measured)")
# In the db bench both sides export their request span: the receiver's share is the difference.
(plain, plain_receiver), (traced, traced_receiver) = per[sides[0]], per[sides[1]]
print(f"tracing adds {traced - plain:.0f} instructions per request "
      f"({(traced - plain) / plain:.0%}), of which the receiver {traced_receiver - plain_receiver:.0f}")
PY
