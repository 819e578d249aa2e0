//! A traced service served by `apprunner::serve`, run by the HTTP shutdown tests as a child
//! process (so it can receive a real SIGTERM). Configured like a real service: `PORT`,
//! `OTEL_EXPORTER_OTLP_ENDPOINT`, plus `DRAIN_TIMEOUT_MS`, `REQUEST_TIMEOUT_MS` and
//! `BODY_LIMIT_BYTES` for the server's drain timeout, request timeout and body size limit.
//!
//! Routes: `GET /hello`; `GET /slow?ms=N` logs `slow request started`, sleeps N ms, logs
//! `slow request finished` and answers `slept N ms`; `POST /echo` answers the request body;
//! `GET /trace-headers` answers the `X-Amzn-Trace-Id` and `traceparent` it received, as JSON;
//! `GET /call?url=U` calls `U` with the kit's traced `reqwest` client and answers
//! `<status> <body>` (502 and the error's kind when no response came).
//!
//! Exits 0 when the server and the telemetry shutdown both succeeded, 1 otherwise.
#![allow(clippy::print_stderr)]

use std::{collections::HashMap, process::ExitCode, time::Duration};

use axum::{
    Router,
    extract::Query,
    routing::{get, post},
};

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

async fn trace_headers(headers: axum::http::HeaderMap) -> axum::Json<serde_json::Value> {
    let value = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    axum::Json(serde_json::json!({
        "x-amzn-trace-id": value("x-amzn-trace-id"),
        "traceparent": value("traceparent"),
    }))
}

async fn call(
    axum::extract::State(client): axum::extract::State<
        apprunner::client::reqwest_middleware::ClientWithMiddleware,
    >,
    Query(query): Query<HashMap<String, String>>,
) -> (axum::http::StatusCode, String) {
    let Some(url) = query.get("url") else {
        return (axum::http::StatusCode::BAD_REQUEST, "no url".to_owned());
    };
    match client.get(url).send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let body = response.text().await.unwrap_or_default();
            (axum::http::StatusCode::OK, format!("{status} {body}"))
        }
        Err(error) => (
            axum::http::StatusCode::BAD_GATEWAY,
            if error.is_connect() {
                "connect"
            } else {
                "other"
            }
            .to_owned(),
        ),
    }
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
        .route("/slow", get(slow))
        .route("/echo", post(|body: String| async move { body }))
        .route("/trace-headers", get(trace_headers))
        .route("/call", get(call))
        .with_state(apprunner::client::traced(reqwest::Client::new()));
    let served = match apprunner::http::Server::from_env() {
        Ok(mut server) => {
            let number = |name: &str| std::env::var(name).ok().and_then(|v| v.parse().ok());
            if let Some(ms) = number("DRAIN_TIMEOUT_MS") {
                server = server.drain_timeout(Duration::from_millis(ms));
            }
            if let Some(ms) = number("REQUEST_TIMEOUT_MS") {
                server = server.request_timeout(Duration::from_millis(ms));
            }
            if let Some(bytes) = number("BODY_LIMIT_BYTES") {
                server = server.body_limit(usize::try_from(bytes).expect("a byte count"));
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
