//! X-Ray / W3C propagation as configured by `apprunner::telemetry`, in process (no global
//! state): valid headers are continued, anything else starts a fresh trace and never panics.

use std::collections::HashMap;

use apprunner::telemetry::TelemetryConfig;
use opentelemetry::propagation::{TextMapCompositePropagator, TextMapPropagator};
use opentelemetry::trace::{Span as _, SpanId, TraceContextExt, TraceId, Tracer, TracerProvider};
use opentelemetry_sdk::trace::SdkTracerProvider;
use proptest::prelude::*;

fn propagator() -> TextMapCompositePropagator {
    TelemetryConfig::from_lookup(|_| None).unwrap().propagator()
}

fn carrier(header: &str) -> HashMap<String, String> {
    HashMap::from([("x-amzn-trace-id".to_owned(), header.to_owned())])
}

/// Starts a span under whatever was extracted, as the HTTP layer does.
fn child_of(cx: &opentelemetry::Context) -> opentelemetry::trace::SpanContext {
    let provider = SdkTracerProvider::builder()
        .with_id_generator(opentelemetry_aws::trace::XrayIdGenerator::default())
        .build();
    let span = provider.tracer("t").start_with_context("s", cx);
    span.span_context().clone()
}

#[test]
fn round_trips_an_app_runner_header() {
    let header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
    let cx = propagator().extract(&carrier(header));
    let sc = cx.span().span_context().clone();
    assert_eq!(
        sc.trace_id(),
        TraceId::from_hex("5759e988bd862e3fe1be46a994272793").unwrap()
    );
    assert_eq!(sc.span_id(), SpanId::from_hex("53995c3f42cd8ad8").unwrap());
    assert!(sc.is_sampled() && sc.is_remote());

    let mut out = HashMap::new();
    propagator().inject_context(&cx, &mut out);
    assert_eq!(out["x-amzn-trace-id"], header);
    assert_eq!(
        out["traceparent"],
        "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_headers_never_panic_and_never_forge_a_trace(header in ".{0,200}") {
        let cx = propagator().extract(&carrier(&header));
        let sc = cx.span().span_context().clone();
        let child = child_of(&cx);
        prop_assert!(child.is_valid());
        if sc.is_valid() {
            // Only a well-formed Root is ever continued, and the child stays in it.
            let hex = format!("{:032x}", sc.trace_id());
            let root = format!("1-{}-{}", &hex[..8], &hex[8..]);
            prop_assert!(header.contains(&root), "{header} -> {root}");
            prop_assert_eq!(child.trace_id(), sc.trace_id());
        } else {
            prop_assert_ne!(child.trace_id(), TraceId::INVALID);
        }
    }

    #[test]
    fn structured_but_mangled_headers_never_panic(
        root in "[0-9a-fA-Fz-]{0,40}",
        parent in "[0-9a-fA-Fxyz]{0,20}",
        sampled in "[0-9?a-z]{0,3}",
        extra in "[;=a-zA-Z0-9 ]{0,20}",
    ) {
        let header = format!("Root={root};Parent={parent};Sampled={sampled}{extra}");
        let cx = propagator().extract(&carrier(&header));
        prop_assert!(child_of(&cx).is_valid());
    }
}
