//! A tiny program that initialises `apprunner::telemetry` from its environment, makes a few
//! spans and log lines, shuts down, and prints one summary line. The telemetry tests run it
//! as a child process so each scenario gets its own environment and global state.
//!
//! Scenario (first argument):
//! - `spans`: `root` (continuing `PROBE_TRACE_HEADER` when set, as an HTTP server would)
//!   with a child `child` that logs `inside child`; plus an unrelated `control` root span.
//! - `burst`: `PROBE_COUNT` spans ended right before shutdown.
//! - `attributes`: a span `wide` with four string attributes of 8 characters and an event.
//! - `steady`: a span `steady` (attribute `i`: 0, 1, ...) every 50 ms for `PROBE_DURATION_MS`
//!   (default 2000), then shutdown.
//! - `aws`: AWS SDK calls through clients with `apprunner::client::AwsTracing`, against the
//!   emulator at `PROBE_AWS_ENDPOINT` (region `us-east-1`); see `telemetry_probe/aws.rs`.
//!   Prints `PROBE_AWS {json}`.
//!
//! The last stdout line is `PROBE_RESULT {json}` with shutdown's outcome and duration and the
//! export statistics (`spans_ended`, `spans_exported`, `spans_failed`, `spans_dropped`; when
//! shutdown fails, as they were right before it).
#![allow(clippy::print_stdout)]

#[path = "telemetry_probe/aws.rs"]
mod aws;

use std::collections::HashMap;
use std::time::Instant;

use opentelemetry::propagation::TextMapPropagator as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

fn main() {
    let scenario = std::env::args().nth(1).unwrap_or_else(|| "spans".into());
    let mut config = apprunner::telemetry::TelemetryConfig::from_env()
        .expect("telemetry configuration from the environment")
        .default_service_name("telemetry-probe")
        .service_version("9.9.9");
    if let Ok(ms) = std::env::var("PROBE_SHUTDOWN_TIMEOUT_MS") {
        config = config.shutdown_timeout(std::time::Duration::from_millis(ms.parse().unwrap()));
    }
    let propagator = config.propagator();
    let guard = config.init().expect("telemetry init");

    match scenario.as_str() {
        "spans" => {
            let root = tracing::info_span!("root", otel.kind = "server");
            if let Ok(header) = std::env::var("PROBE_TRACE_HEADER") {
                let carrier = HashMap::from([("x-amzn-trace-id".to_owned(), header)]);
                let _ = root.set_parent(propagator.extract(&carrier));
            }
            root.in_scope(|| {
                tracing::info!("inside root");
                tracing::info_span!("child", answer = 42).in_scope(|| {
                    tracing::info!(user_id = 7, "inside child");
                });
            });
            drop(root);
            tracing::info_span!("control").in_scope(|| tracing::info!("inside control"));
        }
        "burst" => {
            let n: usize = std::env::var("PROBE_COUNT").map_or(100, |v| v.parse().unwrap());
            for i in 0..n {
                tracing::info_span!("burst", i = i as i64).in_scope(|| {});
            }
        }
        "attributes" => {
            // Four string attributes of 8 characters, and an event with two: for the limits.
            let wide = tracing::info_span!(
                "wide",
                a = "aaaaaaaa",
                b = "bbbbbbbb",
                c = "cccccccc",
                d = "dddddddd"
            );
            wide.in_scope(|| tracing::info!(note = "éééééééé", "wide event"));
        }
        "steady" => {
            let duration = std::env::var("PROBE_DURATION_MS").map_or(2000, |v| v.parse().unwrap());
            let end = Instant::now() + std::time::Duration::from_millis(duration);
            let mut i: i64 = 0;
            while Instant::now() < end {
                tracing::info_span!("steady", i).in_scope(|| {});
                i += 1;
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
        "aws" => aws::calls(),
        other => panic!("unknown scenario {other}"),
    }

    let before = guard.stats();
    let started = Instant::now();
    let result = guard.shutdown_blocking();
    let elapsed_ms = started.elapsed().as_millis();
    let (ok, error, stats) = match result {
        Ok(stats) => (true, String::new(), stats),
        Err(e) => (false, e.to_string(), before),
    };
    println!(
        "PROBE_RESULT {}",
        serde_json::json!({
            "ok": ok,
            "error": error,
            "shutdown_ms": elapsed_ms,
            "exported": stats.spans_exported,
            "dropped": stats.spans_dropped(),
            "spans_ended": stats.spans_ended,
            "spans_exported": stats.spans_exported,
            "spans_failed": stats.spans_failed,
            "spans_dropped": stats.spans_dropped(),
        })
    );
}
