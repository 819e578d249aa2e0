//! Cost of the traced request layer: a `GET /hello` served by `apprunner::http::Server` with
//! the `TraceLayer` against the same server without it, side by side in one run, over real TCP
//! with an in-process keep-alive client. Telemetry is on in both, at 100% sampling, exporting
//! over OTLP/gRPC to a live receiver (in this process) that decodes every export and counts its
//! spans, as a collector forwarding them would (`ReceiverBehavior::Count`).
//!
//! Two scenarios: `hello` requests carry no trace header (each span is a new root trace), and
//! `hello_app_runner` requests carry an App Runner style `X-Amzn-Trace-Id: …;Sampled=1`, as
//! every request reaching an App Runner service does. Each iteration sends a batch of
//! `CONCURRENCY` concurrent requests; criterion reports requests per second.
//!
//! After the criterion runs of a scenario, an interleaved pass alternates 40 rounds of 1600
//! requests between the two servers (each server going first in every other round) (so that load drifting during the run hits both alike) and
//! prints the throughput ratio, the spans ended and dropped, and the CPU time per request of
//! this process with the receiver's threads counted apart: on a machine shared with other work
//! the CPU ratio is the figure that holds. Target: traced throughput ≥ 0.9 × untraced.
//!
//! `router_in_process` measures the layer alone: one request through an axum router, without
//! network or server, on the bench thread.
//!
//! Run with: `cargo bench -p apprunner-kit-benches --bench http_layer`
#![allow(clippy::print_stderr)]
#![allow(
    missing_docs,
    reason = "criterion_group! generates an undocumented `pub fn benches`"
)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use apprunner::http::{Server, TraceLayer};
use apprunner::telemetry::TelemetryConfig;
use apprunner_kit_tests::{OtlpReceiver, ReceiverBehavior};
use axum::{Router, body::Bytes, routing::get};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures_util::FutureExt as _;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;
use tower::ServiceExt as _;

#[path = "common.rs"]
mod common;
use common::{
    flushed_stats, report_pass_spans, round_ratios, selected, shutdown_and_report, stat_cpu,
};

const CONCURRENCY: usize = 16;
const APP_RUNNER_HEADER: &str =
    "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

async fn start(server: Server) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().route("/hello", get(|| async { "hello" }));
    tokio::spawn(
        server
            .listener(listener)
            .serve_with_shutdown(app, std::future::pending()),
    );
    addr
}

async fn batch(client: &HttpClient, uri: &http::Uri, trace_header: Option<&str>) {
    let requests = (0..CONCURRENCY).map(|_| async {
        let mut request = http::Request::get(uri.clone());
        if let Some(header) = trace_header {
            request = request.header("x-amzn-trace-id", header);
        }
        let response = client
            .request(request.body(Empty::new()).unwrap())
            .await
            .expect("request");
        assert_eq!(response.status(), 200);
        response.into_body().collect().await.expect("body");
    });
    futures_util::future::join_all(requests).await;
}

fn hello(c: &mut Criterion) {
    let receiver = OtlpReceiver::start_blocking_with(ReceiverBehavior::Count);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let telemetry = runtime.block_on(async {
        // `OTEL_*` variables still apply (to compare sampler or batch settings); logs are
        // quiet unless `RUST_LOG` says otherwise.
        TelemetryConfig::from_lookup(|key| {
            std::env::var(key)
                .ok()
                .or_else(|| (key == "RUST_LOG").then(|| "warn".to_owned()))
        })
        .expect("config")
        .service_name("bench-http")
        .otlp_endpoint(receiver.grpc_endpoint())
        .init()
        .expect("telemetry init")
    });
    let server = || Server::from_lookup(|_| None).expect("server config");
    let (plain, traced) = runtime.block_on(async {
        (
            start(server().trace_layer(None)).await,
            start(server()).await,
        )
    });
    let uris: [http::Uri; 2] =
        [plain, traced].map(|addr| format!("http://{addr}/hello").parse().expect("a valid URI"));
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(CONCURRENCY)
        .build_http();

    for (scenario, trace_header) in [
        ("hello", None),
        ("hello_app_runner", Some(APP_RUNNER_HEADER)),
    ] {
        let ids = [
            format!("{scenario}/without_layer"),
            format!("{scenario}/with_layer"),
        ];
        if !selected(&ids.each_ref().map(String::as_str)) {
            continue;
        }
        let mut group = c.benchmark_group(scenario);
        group.throughput(Throughput::Elements(CONCURRENCY as u64));
        group.measurement_time(Duration::from_secs(10));
        for (name, uri) in ["without_layer", "with_layer"].iter().zip(&uris) {
            group.bench_function(*name, |b| {
                b.iter_custom(|iters| {
                    runtime.block_on(async {
                        let started = Instant::now();
                        for _ in 0..iters {
                            batch(&client, uri, trace_header).await;
                        }
                        started.elapsed()
                    })
                });
            });
        }
        group.finish();

        let stats_before = flushed_stats(&telemetry);
        // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this once, quickly.
        // `--profile-time` (criterion's profiling mode, as under callgrind) runs only the
        // benchmark named.
        let measuring = std::env::args().any(|arg| arg == "--bench")
            && !std::env::args().any(|arg| arg == "--profile-time");
        let (rounds, batches) = if measuring { (40, 100) } else { (1, 2) };
        let mut elapsed = [Duration::ZERO; 2];
        let mut round_times: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
        let mut cpu = [Duration::ZERO; 2];
        let mut receiver_cpu = [Duration::ZERO; 2];
        let mut export_cpu = [Duration::ZERO; 2];
        runtime.block_on(async {
            for round in 0..rounds {
                // Rounds alternate which server goes first (ABBA…): a side that always ran
                // first (or second) after a switch would carry any cost of switching alone.
                let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
                for slot in order {
                    let uri = &uris[slot];
                    let started = Instant::now();
                    let before = cpu_times();
                    for _ in 0..batches {
                        batch(&client, uri, trace_header).await;
                    }
                    let took = started.elapsed();
                    elapsed[slot] += took;
                    round_times[slot].push(took);
                    let after = cpu_times();
                    cpu[slot] += after.service.saturating_sub(before.service);
                    export_cpu[slot] += after.export.saturating_sub(before.export);
                    receiver_cpu[slot] += after.receiver.saturating_sub(before.receiver);
                }
            }
        });
        if !measuring {
            continue;
        }
        let requests = (rounds * batches * CONCURRENCY) as f64;
        let [plain_rps, traced_rps] = elapsed.map(|time| requests / time.as_secs_f64());
        let (median, min, max) = round_ratios(&round_times[0], &round_times[1]);
        eprintln!(
            "{scenario} interleaved: without_layer {plain_rps:.0} req/s, with_layer \
             {traced_rps:.0} req/s, ratio {:.3}; per round: median {median:.3} (min {min:.3}, \
             max {max:.3})",
            traced_rps / plain_rps
        );
        report_pass_spans(
            &format!("{scenario} interleaved"),
            &telemetry,
            &stats_before,
        );
        // CPU time per request (client, servers, exporter; the receiver apart): what a
        // saturated machine turns into throughput, whatever else runs on it.
        if cpu[0] > Duration::ZERO && cpu[1] > Duration::ZERO {
            let per_request = |time: Duration| time.as_secs_f64() * 1e6 / requests;
            let [plain_us, traced_us] = cpu.map(per_request);
            let [_, receiver_us] = receiver_cpu.map(per_request);
            let [_, export_us] = export_cpu.map(per_request);
            eprintln!(
                "{scenario} CPU per request: without_layer {plain_us:.1} µs, with_layer \
                 {traced_us:.1} µs (of which export threads {export_us:.1} µs; + receiver \
                 {receiver_us:.1} µs), ratio {:.3} ({:.3} counting the receiver)",
                plain_us / traced_us,
                plain_us / (traced_us + receiver_us),
            );
        }
    }

    // The layer alone, without network or server: one request through an axum router, body
    // included (the span ends when the body does), on this thread. The routers are made ready
    // with `with_state(())`, as `axum::serve` and `Server` do: called without it, axum would
    // build each route's stack of layers again for every request.
    let mut group = c.benchmark_group("router_in_process");
    let hello = || Router::new().route("/hello", get(|| async { "hello" }));
    for (name, router) in [
        ("without_layer", hello().with_state(())),
        (
            "with_layer",
            hello().layer(TraceLayer::new()).with_state(()),
        ),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let request = http::Request::get("/hello")
                    .header("x-amzn-trace-id", APP_RUNNER_HEADER)
                    .body(axum::body::Body::empty())
                    .unwrap();
                let response = router
                    .clone()
                    .oneshot(request)
                    .now_or_never()
                    .expect("the hello route answers at once")
                    .unwrap();
                response
                    .into_body()
                    .collect()
                    .now_or_never()
                    .expect("the hello body is ready")
                    .unwrap()
            });
        });
    }
    group.finish();

    let stats = shutdown_and_report(&runtime, telemetry);
    // `OTEL_TRACES_EXPORTER=none` isolates the in-process cost (spans recorded, not exported).
    if std::env::var("OTEL_TRACES_EXPORTER").as_deref() != Ok("none") {
        assert!(
            stats.spans_exported > 0 && receiver.span_count() == stats.spans_exported,
            "the receiver counted {} spans: {stats:?}",
            receiver.span_count()
        );
    }
}

/// CPU time (user + system) used so far by this process's threads.
#[derive(Clone, Copy, Default)]
struct CpuTimes {
    /// Every thread but the receiver's: client, servers, and the export threads below.
    service: Duration,
    /// The kit's export thread (OTLP/gRPC), or the SDK's batch processor thread (other exporters).
    export: Duration,
    /// The receiver's threads (`otlp-receiver-*`).
    receiver: Duration,
}

/// Reads [`CpuTimes`] from `/proc/self/task`; zeros where `/proc` is unavailable.
fn cpu_times() -> CpuTimes {
    let mut times = CpuTimes::default();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return times;
    };
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let Some((name, cpu)) = stat_cpu(&stat) else {
            continue;
        };
        if name.starts_with("otlp-receiver") {
            times.receiver += cpu;
        } else {
            times.service += cpu;
            // Thread names are cut to 15 bytes: "OpenTelemetry.Traces.BatchProcessor".
            if name.starts_with("OpenTelemetry.T") || name.starts_with("apprunner-otlp") {
                times.export += cpu;
            }
        }
    }
    times
}

criterion_group!(benches, hello);
criterion_main!(benches);
