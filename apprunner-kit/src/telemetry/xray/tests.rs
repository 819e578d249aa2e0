//! Tests of the X-Ray and W3C propagators, their precedence and the X-Ray-aware sampler.

use super::*;
use opentelemetry::trace::{Span as _, SpanId, TraceState, Tracer as _, TracerProvider as _};
use opentelemetry_aws::trace::XrayPropagator as AwsXrayPropagator;
use opentelemetry_sdk::trace::IdGenerator as _;
use std::collections::HashMap;

/// Whether a sampling decision records the span (used by tests of the sampler).
fn records(result: &SamplingResult) -> bool {
    result.decision == opentelemetry_sdk::trace::SamplingDecision::RecordAndSample
}

const APP_RUNNER: &str =
    "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
const TRACEPARENT_OK: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn carrier(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn xray_carrier(header: &str) -> HashMap<String, String> {
    carrier(&[(XRAY_HEADER, header)])
}

fn span_context(cx: &Context) -> SpanContext {
    cx.span().span_context().clone()
}

/// `opentelemetry-aws`'s propagator as the kit configures it.
fn aws() -> AwsXrayPropagator {
    AwsXrayPropagator::new().with_missing_sampled_behavior(MissingSampledBehavior::Sampled)
}

fn extract(header: &str) -> Context {
    propagator(&[PropagatorKind::Xray], TraceHeaderPrecedence::default())
        .extract(&xray_carrier(header))
}

fn sample(cx: &Context) -> SamplingResult {
    let sampler = XrayAwareSampler::new(
        Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
        Sampler::AlwaysOn,
    );
    let trace_id = cx.span().span_context().trace_id();
    sampler.should_sample(Some(cx), trace_id, "x", &SpanKind::Server, &[], &[])
}

fn w3c(propagator: &dyn TextMapPropagator, traceparent: &str) -> SpanContext {
    span_context(&propagator.extract(&carrier(&[
        (TRACEPARENT, traceparent),
        ("tracestate", "k=v"),
    ])))
}

/// Each entry breaks exactly one rule of the W3C `traceparent` grammar.
#[rustfmt::skip]
const TRACEPARENTS_BROKEN: &[(&str, &str)] = &[
    ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0", "flags: one digit"),
    ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1", "flags: one digit (sampled)"),
    ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-001", "flags: three digits"),
    ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g", "flags: not hex"),
    ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A", "flags: upper case"),
    ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-+1", "flags: sign"),
    ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", "flags: missing"),
    ("0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "version: one digit"),
    ("000-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "version: three digits"),
    ("+0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "version: sign"),
    ("0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "version: upper case"),
    ("0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "version: not hex"),
    ("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "version: ff"),
    ("00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01", "trace-id: 31 digits"),
    ("00-4bf92f3577b34da6a3ce929d0e0e47361-00f067aa0ba902b7-01", "trace-id: 33 digits"),
    ("00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "trace-id: sign"),
    ("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", "trace-id: upper case"),
    ("00-4bf92f3577b34da6a3ce929d0e0e473z-00f067aa0ba902b7-01", "trace-id: not hex"),
    ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", "trace-id: all zeros"),
    ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01", "parent-id: 15 digits"),
    ("00-4bf92f3577b34da6a3ce929d0e0e4736-+0f067aa0ba902b7-01", "parent-id: sign"),
    ("00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01", "parent-id: upper case"),
    ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bz-01", "parent-id: not hex"),
    ("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", "parent-id: all zeros"),
    ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-", "version 00: 56 characters"),
    ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-ab", "version 00: another field"),
    ("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x", "version 01: no dash after the flags"),
    ("00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01", "separators"),
    ("", "empty"),
];

#[test]
fn a_traceparent_breaking_the_grammar_is_ignored() {
    let strict = W3cTraceContextPropagator::default();
    for (header, rule) in TRACEPARENTS_BROKEN {
        assert!(!traceparent_well_formed(header), "{rule}: {header}");
        let sc = w3c(&strict, header);
        assert_eq!(sc, SpanContext::empty_context(), "{rule}: {header}");
    }
}

/// Why the wrapper exists: the SDK's own propagator continues some of those headers. If
/// this fails after an upgrade, the SDK became strict and the wrapper may go.
#[test]
fn the_sdk_propagator_alone_is_lenient() {
    let sdk = opentelemetry_sdk::propagation::TraceContextPropagator::new();
    let accepted: Vec<&str> = TRACEPARENTS_BROKEN
        .iter()
        .filter(|(header, _)| w3c(&sdk, header).is_valid())
        .map(|(_, rule)| *rule)
        .collect();
    for rule in [
        "flags: one digit",
        "flags: one digit (sampled)",
        "version: one digit",
        "version: sign",
        "trace-id: 31 digits",
        "trace-id: sign",
        "parent-id: 15 digits",
        "version 00: 56 characters",
    ] {
        assert!(accepted.contains(&rule), "{rule} (accepted: {accepted:?})");
    }
    // The case from the field: a one-digit flags field reads as "not sampled".
    let sc = w3c(&sdk, TRACEPARENTS_BROKEN[0].0);
    assert!(sc.is_valid() && !sc.is_sampled());
}

#[test]
fn a_valid_traceparent_is_continued_as_the_sdk_reads_it() {
    let strict = W3cTraceContextPropagator::default();
    let sdk = opentelemetry_sdk::propagation::TraceContextPropagator::new();
    for (header, sampled) in [
        (TRACEPARENT_OK, true),
        (
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
            false,
        ),
        (
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03",
            true,
        ),
        (
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-fe",
            false,
        ),
        (
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            true,
        ),
        (
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-next",
            true,
        ),
        (
            "fe-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-",
            false,
        ),
        (
            " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\t",
            true,
        ),
        (
            "00-00000000000000000000000000000001-0000000000000001-01",
            true,
        ),
    ] {
        let sc = w3c(&strict, header);
        assert!(sc.is_valid(), "{header}");
        assert_eq!(sc.is_sampled(), sampled, "{header}");
        assert_eq!(sc, w3c(&sdk, header), "{header}");
        assert_eq!(sc.trace_state().get("k"), Some("v"), "{header}");
    }
}

/// Headers on which the kit's X-Ray propagator and `opentelemetry-aws`'s (configured with
/// `MissingSampledBehavior::Sampled`) must give the same context and write the same header.
#[rustfmt::skip]
const XRAY_SAME_AS_AWS: &[&str] = &[
    APP_RUNNER,
    "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0",
    "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=?",
    "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=x",
    "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=",
    "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8",
    "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1;Lineage=a87bd80c:1|68fd508a:5",
    "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1;Lineage=a87bd80c",
    "Root=1-5759e988-bd862e3fe1be46a994272793;Self=1-5759e988-bf42676c05e20ba4a90e448e;Parent=53995c3f42cd8ad8;Sampled=1",
    "Sampled=1;Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8",
    "Parent=53995c3f42cd8ad8;Sampled=0;Root=1-5759e988-bd862e3fe1be46a994272793",
    "Root=1-5759E988-BD862E3FE1BE46A994272793;Parent=53995C3F42CD8AD8;Sampled=1",
    "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1;",
    "  Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1  ",
    "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1;novalue",
    // Rejected by both.
    "Root=1-5759e988-bd862e3fe1be46a99427279z;Parent=53995c3f42cd8ad8;Sampled=1",
    "Root=1-00000000-000000000000000000000000;Parent=53995c3f42cd8ad8;Sampled=1",
    "Root=1-5759e988-bd862e3fe1be46a994272793; Parent=53995c3f42cd8ad8; Sampled=1",
    "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Bad Key=1",
    "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Key=a,b",
    "Parent=53995c3f42cd8ad8;Sampled=1",
    "Root=;Parent=53995c3f42cd8ad8",
    "garbage",
    "",
];

#[test]
fn agrees_with_opentelemetry_aws_on_these_headers() {
    let (aws, ours) = (aws(), XrayPropagator::default());
    for header in XRAY_SAME_AS_AWS {
        let carrier = xray_carrier(header);
        let (a, o) = (aws.extract(&carrier), ours.extract(&carrier));
        let (a_sc, o_sc) = (span_context(&a), span_context(&o));
        if a_sc.is_valid() {
            assert_eq!(o_sc, a_sc, "{header}");
        } else {
            assert_eq!(o_sc, SpanContext::empty_context(), "{header}");
        }
        let (mut a_out, mut o_out) = (HashMap::new(), HashMap::new());
        aws.inject_context(&a, &mut a_out);
        ours.inject_context(&o, &mut o_out);
        assert_eq!(o_out, a_out, "{header}");
    }
    assert_eq!(
        ours.fields().collect::<Vec<_>>(),
        aws.fields().collect::<Vec<_>>()
    );
}

/// The behaviours the kit keeps on top of `opentelemetry-aws`, each against its output on
/// the same header.
#[test]
fn missing_sampled_is_sampled_as_configured_in_opentelemetry_aws() {
    let header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8";
    let carrier = xray_carrier(header);
    let ours = span_context(&XrayPropagator::default().extract(&carrier));
    assert_eq!(ours.trace_flags(), TraceFlags::SAMPLED);
    // opentelemetry-aws's default defers instead; the kit configures `Sampled`.
    let aws_default = span_context(&AwsXrayPropagator::default().extract(&carrier));
    assert_eq!(aws_default.trace_flags(), DEFERRED);
    assert_eq!(ours, span_context(&aws().extract(&carrier)));
}

#[test]
fn deferred_is_the_flag_opentelemetry_aws_sets() {
    let header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=?";
    let aws_sc = span_context(&aws().extract(&xray_carrier(header)));
    assert_eq!(aws_sc.trace_flags(), DEFERRED);
    assert_eq!(span_context(&extract(header)).trace_flags(), DEFERRED);
}

#[test]
fn ids_that_are_not_xray_ids_are_ignored_where_opentelemetry_aws_reads_them() {
    for header in [
        // Version 2, short and signed ids, misplaced dash, trailing dash.
        "Root=2-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        "Root=1-5759e988-bd862e3fe1be46a99427279;Parent=53995c3f42cd8ad8;Sampled=1",
        "Root=1-+759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        "Root=1-5759e988bd862e3f-e1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        "Root=1-5759e988-bd862e3fe1be46a994272793-;Parent=53995c3f42cd8ad8;Sampled=1",
        "Root==1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=3995c3f42cd8ad8;Sampled=1",
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=+3995c3f42cd8ad8;Sampled=1",
    ] {
        let carrier = xray_carrier(header);
        assert!(
            span_context(&aws().extract(&carrier)).is_valid(),
            "{header}"
        );
        assert!(!xray_ids_well_formed(header), "{header}");
        assert_eq!(
            span_context(&XrayPropagator::default().extract(&carrier)),
            SpanContext::empty_context(),
            "{header}"
        );
    }
}

#[test]
fn a_header_naming_no_parent_leaves_the_context_alone() {
    let w3c_cx =
        W3cTraceContextPropagator::default().extract(&carrier(&[(TRACEPARENT, TRACEPARENT_OK)]));
    for header in [
        "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1",
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=0000000000000000;Sampled=1",
    ] {
        let carrier = xray_carrier(header);
        let aws_cx = aws().extract_with_context(&w3c_cx, &carrier);
        assert!(!aws_cx.span().span_context().is_valid(), "{header}");
        let ours = XrayPropagator::default().extract_with_context(&w3c_cx, &carrier);
        assert_eq!(span_context(&ours), span_context(&w3c_cx), "{header}");
    }
}

#[test]
fn only_the_http_header_is_read() {
    // (A `HashMap` carrier is read with lower-cased keys, as HTTP headers are.)
    let carrier = carrier(&[("_x_amzn_trace_id", APP_RUNNER)]);
    assert!(span_context(&aws().extract(&carrier)).is_valid());
    assert!(!span_context(&XrayPropagator::default().extract(&carrier)).is_valid());
}

#[test]
fn a_decision_taken_here_is_written_as_one() {
    let deferred = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=?";
    let remote = extract(deferred);
    for (root, written) in [(Sampler::AlwaysOn, "1"), (Sampler::AlwaysOff, "0")] {
        let sampler =
            XrayAwareSampler::new(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)), root);
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_sampler(sampler)
            .build();
        let span = provider.tracer("t").start_with_context("server", &remote);
        let local = span.span_context().clone();
        let (mut ours, mut theirs) = (HashMap::new(), HashMap::new());
        XrayPropagator::default().inject_context(&remote.with_span(span), &mut ours);
        let cx = Context::new().with_remote_span_context(local.clone());
        aws().inject_context(&cx, &mut theirs);
        let expected = format!(
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent={};Sampled={written}",
            local.span_id()
        );
        assert_eq!(ours[XRAY_HEADER], expected);
        // The SDK copies the parent's flags into a sampled span, deferred bit included,
        // and opentelemetry-aws writes that bit as `?`. (A dropped span gets no flags from
        // the SDK; the kit's own tracer keeps the bit there too.)
        let kept = local.trace_flags() & DEFERRED == DEFERRED;
        assert_eq!(kept, local.is_sampled());
        assert_eq!(theirs[XRAY_HEADER].ends_with(";Sampled=?"), kept);
    }
    // A remote context still deferred (nothing decided here) is forwarded as deferred.
    let mut out = HashMap::new();
    XrayPropagator::default().inject_context(&remote, &mut out);
    assert_eq!(out[XRAY_HEADER], deferred);
}

proptest::proptest! {
    /// On arbitrary field layouts, the kit's propagator gives what `opentelemetry-aws`
    /// gives, except that it ignores ids that are not X-Ray's exact forms.
    #[test]
    fn matches_opentelemetry_aws_up_to_exact_ids(
        root in proptest::option::of("[0-9a-fA-F+-]{0,40}|1-[0-9a-f]{8}-[0-9a-f]{24}"),
        parent in proptest::option::of("[0-9a-fA-Fx+]{0,18}|[0-9a-f]{16}"),
        sampled in proptest::option::of("[01?x]?"),
        extra in proptest::option::of("[A-Za-z]{1,6}=[a-z0-9:|]{0,8}"),
        order in 0_usize..4,
    ) {
        let mut fields: Vec<String> = [
            root.map(|v| format!("Root={v}")),
            parent.map(|v| format!("Parent={v}")),
            sampled.map(|v| format!("Sampled={v}")),
            extra,
        ]
        .into_iter()
        .flatten()
        .collect();
        let turn = order.min(fields.len());
        fields.rotate_left(turn);
        let header = fields.join(";");
        let carrier = xray_carrier(&header);
        let theirs = span_context(&aws().extract(&carrier));
        let ours = span_context(&XrayPropagator::default().extract(&carrier));
        if theirs.is_valid() && xray_ids_well_formed(&header) {
            proptest::prop_assert_eq!(ours, theirs, "{}", header);
        } else {
            proptest::prop_assert_eq!(ours, SpanContext::empty_context(), "{}", header);
        }
    }
}

#[test]
fn the_id_generator_is_opentelemetry_aws_s() {
    let generator: opentelemetry_aws::trace::XrayIdGenerator = XrayIdGenerator::default();
    let id = format!("{:032x}", generator.new_trace_id());
    let epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(epoch.abs_diff(u64::from_str_radix(&id[..8], 16).unwrap()) < 60);
    assert_ne!(generator.new_span_id(), SpanId::INVALID);
}

#[test]
fn formats_xray_ids() {
    let id = TraceId::from_hex("0123456789abcdef0123456789abcdef").unwrap();
    assert_eq!(xray_trace_id(id), "1-01234567-89abcdef0123456789abcdef");
}

#[test]
fn xray_header_writes_the_decision_of_local_spans_only() {
    let (trace_id, span_id) = (TraceId::from(0x5759_e988_u128 << 96 | 1), SpanId::from(2));
    let header = |flags, remote| {
        xray_header(&SpanContext::new(
            trace_id,
            span_id,
            flags,
            remote,
            TraceState::default(),
        ))
        .unwrap()
    };
    let ends = |flags, remote| header(flags, remote).rsplit('=').next().map(str::to_owned);
    assert_eq!(ends(DEFERRED, true).as_deref(), Some("?"));
    assert_eq!(ends(DEFERRED, false).as_deref(), Some("0"));
    assert_eq!(
        ends(DEFERRED | TraceFlags::SAMPLED, false).as_deref(),
        Some("1")
    );
    assert_eq!(ends(TraceFlags::SAMPLED, true).as_deref(), Some("1"));
    assert_eq!(xray_header(&SpanContext::empty_context()), None);
}

#[test]
fn precedence_is_read_from_its_variable() {
    let parse = TraceHeaderPrecedence::from_env_value;
    assert_eq!(parse(None).unwrap(), TraceHeaderPrecedence::Xray);
    assert_eq!(parse(Some(" ")).unwrap(), TraceHeaderPrecedence::Xray);
    assert_eq!(parse(Some("XRay")).unwrap(), TraceHeaderPrecedence::Xray);
    assert_eq!(
        parse(Some(" tracecontext ")).unwrap(),
        TraceHeaderPrecedence::TraceContext
    );
    let err = parse(Some("w3c")).unwrap_err().to_string();
    assert!(
        err.contains("APPRUNNER_TRACE_HEADER_PRECEDENCE") && err.contains("\"w3c\""),
        "{err}"
    );
}

#[test]
fn the_winner_extracts_last_whatever_the_configured_order() {
    use PropagatorKind::{Baggage, TraceContext, Xray};
    let both = carrier(&[(XRAY_HEADER, APP_RUNNER), (TRACEPARENT, TRACEPARENT_OK)]);
    let xray_id = TraceId::from_hex("5759e988bd862e3fe1be46a994272793").unwrap();
    let w3c_id = TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
    for kinds in [
        &[Xray, TraceContext, Baggage][..],
        &[TraceContext, Xray, Baggage],
        &[Baggage, TraceContext, Xray],
        &[Xray, Baggage, TraceContext],
    ] {
        for (precedence, expected) in [
            (TraceHeaderPrecedence::Xray, xray_id),
            (TraceHeaderPrecedence::TraceContext, w3c_id),
        ] {
            let cx = propagator(kinds, precedence).extract(&both);
            assert_eq!(
                span_context(&cx).trace_id(),
                expected,
                "{kinds:?} {precedence:?}"
            );
            assert_eq!(propagator(kinds, precedence).fields().count(), 4);
        }
    }
}

#[test]
fn missing_sampled_field_is_sampled() {
    let cx = extract("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8");
    assert!(cx.span().span_context().is_sampled());
    assert!(records(&sample(&cx)));
}

#[test]
fn deferred_decision_is_taken_by_the_root_sampler() {
    let cx = extract("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=?");
    assert!(!cx.span().span_context().is_sampled());
    assert!(records(&sample(&cx)));
}

#[test]
fn explicit_not_sampled_is_honoured() {
    let cx = extract("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0");
    assert!(!records(&sample(&cx)));
}
