//! A traced service served by `apprunner::serve`, run by the HTTP shutdown tests as a child
//! process (so it can receive a real SIGTERM). Configured like a real service: `PORT`,
//! `OTEL_EXPORTER_OTLP_ENDPOINT`, plus `DRAIN_TIMEOUT_MS` for the drain timeout.
//!
//! Routes: `GET /hello`; `GET /slow?ms=N` logs `slow request started`, sleeps N ms, logs
//! `slow request finished` and answers `slept N ms`.
//!
//! Exits 0 when the server and the telemetry shutdown both succeeded, 1 otherwise.
#![allow(clippy::print_stderr)]

use std::{collections::HashMap, process::ExitCode, time::Duration};

use axum::{Router, extract::Query, routing::get};

async fn slow(Query(query): Query<HashMap<String, String>>) -> String {
    let ms: u64 = query
        .get("ms")
        .and_then(|ms| ms.parse().ok())
        .unwrap_or(1000);
    tracing::info!(ms, "slow request started");
    tokio::time::sleep(Duration::from_millis(ms)).await;
    tracing::info!(ms, "slow request finished");
    format!("slept {ms} ms")
}

#[tokio::main]
async fn main() -> ExitCode {
    let telemetry = match apprunner::telemetry::TelemetryConfig::from_env()
        .and_then(|config| config.default_service_name("http-test-server").init())
    {
        Ok(telemetry) => telemetry,
        Err(error) => {
            eprintln!("telemetry: {error}");
            return ExitCode::FAILURE;
        }
    };
    let app = Router::new()
        .route("/hello", get(|| async { "hello" }))
        .route("/slow", get(slow));
    let served = match apprunner::http::Server::from_env() {
        Ok(mut server) => {
            if let Some(ms) = std::env::var("DRAIN_TIMEOUT_MS")
                .ok()
                .and_then(|ms| ms.parse().ok())
            {
                server = server.drain_timeout(Duration::from_millis(ms));
            }
            server.serve(app).await
        }
        Err(error) => Err(error),
    };
    let flushed = telemetry.shutdown().await;
    match (served, flushed) {
        (Ok(()), Ok(_)) => ExitCode::SUCCESS,
        (served, flushed) => {
            eprintln!("serve: {served:?}; telemetry shutdown: {flushed:?}");
            ExitCode::FAILURE
        }
    }
}
