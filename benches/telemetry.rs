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

/// Telemetry whose spans are not exported, sampling as `vars` say.
fn unexported(vars: &[(&str, String)]) -> apprunner::telemetry::TelemetryGuard {
    let mut vars: HashMap<&str, String> = vars.iter().cloned().collect();
    vars.insert("OTEL_TRACES_EXPORTER", "none".to_owned());
    vars.insert("OTEL_SERVICE_NAME", "orders-api".to_owned());
    TelemetryConfig::from_lookup(|k| vars.get(k).cloned())
        .expect("config")
        .install_subscriber(false)
        .init()
        .expect("telemetry init")
}

/// One request's root SERVER span, as the HTTP layer starts it (the sampler sees these
/// attributes), ended at once.
fn request_span(tracer: &opentelemetry_sdk::trace::SdkTracer) {
    use opentelemetry::KeyValue;
    use opentelemetry::trace::SpanKind;
    let mut span = tracer
        .span_builder("GET /orders/{id}")
        .with_kind(SpanKind::Server)
        .with_attributes([
            KeyValue::new("http.request.method", "GET"),
            KeyValue::new("url.path", "/orders/42"),
            KeyValue::new("server.address", "orders.example.com"),
        ])
        .start(tracer);
    black_box(span.span_context().is_sampled());
    span.end();
}

/// A sampling rule as the X-Ray API returns it.
fn rule(
    name: &str,
    priority: u32,
    method: &str,
    path: &str,
    reservoir: u32,
    rate: f64,
) -> serde_json::Value {
    serde_json::json!({
        "RuleName": name, "Priority": priority, "FixedRate": rate, "ReservoirSize": reservoir,
        "ServiceName": "*", "ServiceType": "*", "Host": "*", "HTTPMethod": method,
        "URLPath": path, "ResourceARN": "*", "Version": 1, "Attributes": {},
    })
}

/// The decision for a root request span: the SDK's parent-based ratio sampler at X-Ray's
/// default rate (what a service writes without the kit's X-Ray sampling), then the kit's
/// `OTEL_TRACES_SAMPLER=xray` with five rules that do not match ahead of the one that does
/// (rules fetched from the test peer), side by side. Most spans are not sampled (5 %), so the
/// difference is the sampler's.
fn sampler_decision(c: &mut Criterion) {
    let baseline = unexported(&[
        ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio".to_owned()),
        ("OTEL_TRACES_SAMPLER_ARG", "0.05".to_owned()),
    ]);
    let tracer = baseline.tracer();
    c.bench_function("sampler_decision_sdk_ratio_baseline", |b| {
        b.iter(|| request_span(&tracer));
    });
    baseline.shutdown_blocking().expect("shutdown");

    let peer = apprunner_kit_tests::xray_sampling::SamplingPeer::start();
    peer.set(serde_json::json!({"rules": [
        rule("admin", 1, "POST", "/admin/*", 1, 1.0),
        rule("health", 2, "GET", "/healthz", 0, 0.0),
        rule("users", 3, "*", "/users/*", 5, 0.1),
        rule("put-orders", 4, "PUT", "/orders/*", 1, 0.5),
        rule("reports", 5, "GET", "/reports?*", 1, 0.2),
        rule("Default", 10000, "*", "*", 1, 0.05),
    ]}));
    let kit = unexported(&[
        ("OTEL_TRACES_SAMPLER", "xray".to_owned()),
        (
            "OTEL_TRACES_SAMPLER_ARG",
            format!("endpoint={},polling_interval=300", peer.endpoint()),
        ),
    ]);
    peer.wait_for("the rules", std::time::Duration::from_secs(20), |r| {
        !r["rules_calls"].as_array().is_none_or(Vec::is_empty)
    });
    // The poller installs the rules right after the answer.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let tracer = kit.tracer();
    c.bench_function("sampler_decision_xray_rules", |b| {
        b.iter(|| request_span(&tracer));
    });
    kit.shutdown_blocking().expect("shutdown");
    assert!(peer.violations().is_empty(), "{:?}", peer.violations());
}

criterion_group!(
    benches,
    trace_id,
    extract_inject,
    span_through_batch_processor,
    sampler_decision
);
criterion_main!(benches);
