#!/usr/bin/env bash
# Instructions the traced request layer adds to one request, counted by valgrind's callgrind:
# unlike the throughput and CPU-time figures of `http_layer`, the count does not move with the
# load of a shared machine, so it shows the effect of a change to the layer's code exactly.
#
# It runs the `router_in_process` benchmark of `benches/http_layer.rs` (one `GET /hello` through
# an axum router, on the bench thread, with an App Runner `X-Amzn-Trace-Id`, 100 % sampling,
# spans exported to a live receiver) under callgrind, once without and once with the layer, and
# prints the instructions executed per request on the bench thread: building the request,
# routing, the handler, the body, and with the layer the span's start, attributes, end and
# encoding into the export queue. The export thread and the receiver are not counted.
#
# Needs valgrind (Debian package `valgrind`). Run with: bash benches/layer_instructions.sh
# (SKIP_BUILD=1 to use the existing bench binary).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
if [[ "${SKIP_BUILD:-}" != 1 ]]; then
    cargo bench -p apprunner-kit-benches --bench http_layer --no-run
fi
bin="$(ls -t target/release/deps/http_layer-* | grep -v '\.d$' | head -n 1)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

for variant in without_layer with_layer; do
    out="$work/$variant.out"
    # Without the layer no span is made: the bench's final check that spans reached the
    # receiver is skipped by exporting none.
    exporter=otlp
    [[ "$variant" == without_layer ]] && exporter=none
    OTEL_TRACES_EXPORTER="$exporter" valgrind --tool=callgrind --callgrind-out-file="$out" \
        "$bin" --bench --profile-time 5 "router_in_process/$variant" >"$work/$variant.log" 2>&1
    callgrind_annotate --inclusive=yes --tree=caller "$out" >"$work/$variant.txt"
    python3 - "$work/$variant.txt" "$variant" <<'PY'
import sys

sys.path.insert(0, "benches")
from callgrind import Annotated

profile = Annotated(sys.argv[1])
# Every iteration routes one request; criterion's iteration loop holds all of them.
total, _ = profile.inclusive("criterion::bencher::Bencher<M>::iter ")
_, requests = profile.inclusive("axum::routing::Router<S>::call_with_state ")
print(f"{sys.argv[2]:14} {requests:7d} requests, {total / requests:8.0f} instructions per request")
open(sys.argv[1] + ".per_request", "w").write(f"{total / requests:.0f}")
PY
done
echo "the layer adds $(( $(cat "$work/with_layer.txt.per_request") - $(cat "$work/without_layer.txt.per_request") )) instructions per request"
