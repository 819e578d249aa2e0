//! Telemetry hot paths: X-Ray trace id generation, X-Ray header extract + inject, and one span
//! created and ended through the batch processor exporting to a live OTLP receiver.
//!
//! Run with: `cargo bench -p apprunner-kit-benches --bench telemetry`
//! Targets (2-core machine): id < 100 ns, extract + inject < 1 µs, span < 2 µs.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::collections::HashMap;
use std::hint::black_box;

use apprunner::telemetry::TelemetryConfig;
use apprunner_kit_tests::OtlpReceiver;
use criterion::{Criterion, criterion_group, criterion_main};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{Span as _, Tracer as _};
use opentelemetry_sdk::trace::IdGenerator;

const HEADER: &str = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";

fn trace_id(c: &mut Criterion) {
    let ours = apprunner::telemetry::XrayIdGenerator::default();
    c.bench_function("xray_trace_id_generation", |b| {
        b.iter(|| black_box(ours.new_trace_id()));
    });
    // The generator of opentelemetry-aws, for comparison (same ids, via hex strings).
    let aws = opentelemetry_aws::trace::XrayIdGenerator::default();
    c.bench_function("xray_trace_id_generation_opentelemetry_aws", |b| {
        b.iter(|| black_box(aws.new_trace_id()));
    });
}

fn extract_inject(c: &mut Criterion) {
    let propagator =
        TelemetryConfig::from_lookup(|key| (key == "OTEL_PROPAGATORS").then(|| "xray".to_owned()))
            .expect("config")
            .propagator();
    let incoming = HashMap::from([("x-amzn-trace-id".to_owned(), HEADER.to_owned())]);
    let mut outgoing = HashMap::with_capacity(4);
    c.bench_function("xray_header_extract_inject", |b| {
        b.iter(|| {
            let cx = propagator.extract(black_box(&incoming));
            propagator.inject_context(&cx, &mut outgoing);
            black_box(&outgoing);
        });
    });
}

fn span_through_batch_processor(c: &mut Criterion) {
    let receiver = OtlpReceiver::start_blocking();
    let telemetry = TelemetryConfig::from_lookup(|_| None)
        .expect("config")
        .service_name("bench")
        .otlp_endpoint(receiver.grpc_endpoint())
        .install_subscriber(false)
        .init()
        .expect("telemetry init");
    let tracer = telemetry.tracer();
    c.bench_function("span_start_end_batch_processor", |b| {
        b.iter(|| {
            let mut span = tracer.start("bench-span");
            span.end();
        });
    });
    let stats = telemetry.shutdown_blocking().expect("shutdown");
    // Nothing ended when a filter skipped this benchmark; otherwise spans must have arrived.
    assert!(
        stats.spans_ended == 0 || stats.spans_exported > 0,
        "the receiver got nothing: {stats:?}"
    );
    assert_eq!(stats.spans_failed, 0, "export failures: {stats:?}");
}

criterion_group!(
    benches,
    trace_id,
    extract_inject,
    span_through_batch_processor
);
criterion_main!(benches);
