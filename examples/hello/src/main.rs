//! A minimal traced service: every request becomes a SERVER span exported to X-Ray, and every
//! log line carries its trace id.
//!
//! Run with: cargo run -p example-hello
//!
//! Then `curl -i localhost:8080/hello/world`: the `X-Amzn-Trace-Id` response header names the
//! trace. Spans go over OTLP/gRPC to `OTEL_EXPORTER_OTLP_ENDPOINT` (default
//! `http://localhost:4317`, where App Runner's managed collector listens); set
//! `OTEL_TRACES_EXPORTER=console` to print them instead. `PORT` picks the port (default 8080);
//! Ctrl-C or SIGTERM drains in-flight requests and flushes the spans before exiting.

use axum::{Router, extract::Path, routing::get};

async fn hello(Path(name): Path<String>) -> String {
    tracing::info!(%name, "saying hello");
    format!("hello, {name}\n")
}

/// `#[apprunner::main]` initialises telemetry, serves the returned router on `PORT` until
/// SIGTERM, then flushes every span.
#[apprunner::main(service = "hello")]
async fn main() -> apprunner::Result<Router> {
    Ok(Router::new()
        .route("/", get(|| async { "hello\n" }))
        .route("/hello/{name}", get(hello))
        .merge(apprunner::http::health_route()))
}
