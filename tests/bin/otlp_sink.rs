//! `otlp-sink`: a light real OTLP/gRPC trace receiver — it decodes every export with prost and
//! counts its spans, keeping nothing (`apprunner_kit_tests::CountingTraceService`) — for load
//! tests that must not be slowed by the receiver (`benches/users_api_load.sh`). The test
//! harness's `OtlpReceiver` keeps every span for assertions and is too heavy for that.
//!
//! Usage: `otlp-sink [ADDR]` (default `127.0.0.1:4317`). Prints `listening <addr>` once bound;
//! on SIGTERM or SIGINT prints `spans=<n> exports=<m>` and exits 0.
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::sync::atomic::Ordering;

use apprunner_kit_tests::{CountingTraceService, ExportCounts, collector_incoming};
use tokio::signal::unix::{SignalKind, signal};

// One thread: the sink shares the machine with the service under test.
#[tokio::main(flavor = "current_thread")]
async fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:4317".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .unwrap_or_else(|e| panic!("otlp-sink: cannot listen on {addr}: {e}"));
    println!(
        "listening {}",
        listener.local_addr().expect("local address")
    );
    let counts = Arc::new(ExportCounts::default());
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    let server = tonic::transport::Server::builder()
        .add_service(CountingTraceService::new(Arc::clone(&counts)).into_server())
        .serve_with_incoming_shutdown(collector_incoming(listener), async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        });
    server.await.expect("otlp-sink: server failed");
    println!(
        "spans={} exports={}",
        counts.spans.load(Ordering::Relaxed),
        counts.exports.load(Ordering::Relaxed)
    );
}
