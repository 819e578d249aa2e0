//! X-Ray / W3C propagation as configured by `apprunner::telemetry`, in process (no global
//! state): valid headers are continued, anything else starts a fresh trace and never panics;
//! when both trace headers arrive, the configured precedence decides which one is continued.

use std::collections::HashMap;

use apprunner::telemetry::{TelemetryConfig, TelemetryError, TraceHeaderPrecedence};
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

/// App Runner's header and a client's `traceparent`, naming different traces.
const XRAY: &str = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
const XRAY_TRACE: &str = "5759e988bd862e3fe1be46a994272793";
const W3C: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const W3C_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// The propagator for these variables (the rest unset).
fn configured(vars: &[(&str, &str)]) -> Result<TextMapCompositePropagator, TelemetryError> {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Ok(TelemetryConfig::from_lookup(|key| vars.get(key).cloned())?.propagator())
}

/// The trace id continued by `propagator` for these headers (and that of a child span, which
/// must be the same), or `None` for a fresh trace.
fn continued(propagator: &TextMapCompositePropagator, headers: &[(&str, &str)]) -> Option<String> {
    let carrier: HashMap<String, String> = headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let cx = propagator.extract(&carrier);
    let sc = cx.span().span_context().clone();
    if !sc.is_valid() {
        return None;
    }
    assert_eq!(child_of(&cx).trace_id(), sc.trace_id());
    Some(sc.trace_id().to_string())
}

/// Every order `OTEL_PROPAGATORS` can list the two trace propagators in (unset is the default).
const ORDERS: [Option<&str>; 4] = [
    None,
    Some("xray,tracecontext,baggage"),
    Some("tracecontext,xray"),
    Some("baggage,tracecontext,xray"),
];

fn with_order<'a>(order: Option<&'a str>, more: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut vars: Vec<_> = order.map(|o| ("OTEL_PROPAGATORS", o)).into_iter().collect();
    vars.extend_from_slice(more);
    vars
}

#[test]
fn by_default_the_xray_header_wins_over_traceparent() {
    let both = [("x-amzn-trace-id", XRAY), ("traceparent", W3C)];
    for order in ORDERS {
        for extra in [&[][..], &[("APPRUNNER_TRACE_HEADER_PRECEDENCE", "xray")]] {
            let propagator = configured(&with_order(order, extra)).unwrap();
            assert_eq!(
                continued(&propagator, &both).as_deref(),
                Some(XRAY_TRACE),
                "{order:?} {extra:?}"
            );
        }
    }
}

#[test]
fn with_tracecontext_precedence_traceparent_wins() {
    let both = [("x-amzn-trace-id", XRAY), ("traceparent", W3C)];
    for order in ORDERS {
        let vars = with_order(
            order,
            &[("APPRUNNER_TRACE_HEADER_PRECEDENCE", "tracecontext")],
        );
        let propagator = configured(&vars).unwrap();
        assert_eq!(
            continued(&propagator, &both).as_deref(),
            Some(W3C_TRACE),
            "{order:?}"
        );
    }
}

#[test]
fn the_builder_method_wins_over_the_variable() {
    let both = [("x-amzn-trace-id", XRAY), ("traceparent", W3C)];
    let config = |value: &str| {
        let value = value.to_owned();
        TelemetryConfig::from_lookup(move |key| {
            (key == "APPRUNNER_TRACE_HEADER_PRECEDENCE").then(|| value.clone())
        })
        .unwrap()
    };
    let w3c = config("xray").trace_header_precedence(TraceHeaderPrecedence::TraceContext);
    assert_eq!(
        continued(&w3c.propagator(), &both).as_deref(),
        Some(W3C_TRACE)
    );
    let xray = config("tracecontext").trace_header_precedence(TraceHeaderPrecedence::Xray);
    assert_eq!(
        continued(&xray.propagator(), &both).as_deref(),
        Some(XRAY_TRACE)
    );
}

#[test]
fn a_single_trace_header_is_continued_whatever_the_precedence() {
    for order in ORDERS {
        for precedence in ["xray", "tracecontext"] {
            let vars = with_order(order, &[("APPRUNNER_TRACE_HEADER_PRECEDENCE", precedence)]);
            let propagator = configured(&vars).unwrap();
            let only_xray = continued(&propagator, &[("x-amzn-trace-id", XRAY)]);
            let only_w3c = continued(&propagator, &[("traceparent", W3C)]);
            assert_eq!(
                only_xray.as_deref(),
                Some(XRAY_TRACE),
                "{order:?} {precedence}"
            );
            assert_eq!(
                only_w3c.as_deref(),
                Some(W3C_TRACE),
                "{order:?} {precedence}"
            );
        }
    }
}

/// A header that is malformed, or names no parent, counts as absent: the other one is
/// continued even when the malformed one would have won.
#[test]
fn a_malformed_winner_counts_as_absent() {
    let xray_no_parent = "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1";
    let w3c_one_digit_flags = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0";
    for order in ORDERS {
        let default = configured(&with_order(order, &[])).unwrap();
        let headers = [("x-amzn-trace-id", xray_no_parent), ("traceparent", W3C)];
        assert_eq!(
            continued(&default, &headers).as_deref(),
            Some(W3C_TRACE),
            "{order:?}"
        );

        // The case that switched tracing off: App Runner says `Sampled=1`, a client sends a
        // traceparent with one-digit flags (which the SDK alone reads as "not sampled").
        let vars = with_order(
            order,
            &[("APPRUNNER_TRACE_HEADER_PRECEDENCE", "tracecontext")],
        );
        let w3c_first = configured(&vars).unwrap();
        let carrier = HashMap::from([
            ("x-amzn-trace-id".to_owned(), XRAY.to_owned()),
            ("traceparent".to_owned(), w3c_one_digit_flags.to_owned()),
        ]);
        let sc = w3c_first.extract(&carrier).span().span_context().clone();
        assert_eq!(sc.trace_id().to_string(), XRAY_TRACE, "{order:?}");
        assert!(sc.is_sampled(), "{order:?}");
        assert!(
            child_of(&w3c_first.extract(&carrier)).is_sampled(),
            "{order:?}"
        );
    }
}

#[test]
fn a_bad_precedence_value_names_the_variable() {
    let err = configured(&[("APPRUNNER_TRACE_HEADER_PRECEDENCE", "w3c")]).unwrap_err();
    assert!(matches!(
        err,
        TelemetryError::InvalidVar {
            var: "APPRUNNER_TRACE_HEADER_PRECEDENCE",
            ..
        }
    ));
    let message = err.to_string();
    assert!(
        message.contains("APPRUNNER_TRACE_HEADER_PRECEDENCE"),
        "{message}"
    );
    assert!(message.contains("xray or tracecontext"), "{message}");
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
