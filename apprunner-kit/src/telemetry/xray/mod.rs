//! X-Ray trace ids, the X-Ray and W3C propagators and their precedence, and the X-Ray-aware
//! sampler.
//!
//! The X-Ray id generator and propagator are `opentelemetry-aws`'s. The kit adds, as thin
//! wrappers, only what App Runner needs and they lack (see [`XrayPropagator`]); the W3C
//! propagator is the SDK's behind an exact check of the `traceparent` grammar.

use opentelemetry::propagation::text_map_propagator::FieldIter;
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::propagation::{TextMapCompositePropagator, TextMapPropagator};
use opentelemetry::trace::{Link, SpanContext, SpanKind, TraceContextExt, TraceFlags, TraceId};
use opentelemetry::{Context, KeyValue};
use opentelemetry_aws::trace::MissingSampledBehavior;
use opentelemetry_aws::trace::xray_propagator::span_context_to_string;
use opentelemetry_sdk::propagation::BaggagePropagator;
use opentelemetry_sdk::trace::{Sampler, SamplingResult, ShouldSample};

pub use opentelemetry_aws::trace::XrayIdGenerator;

use super::error::TelemetryError;

/// The trace flag `opentelemetry-aws`'s propagator sets for `Sampled=?` (the decision is
/// deferred to this service); its own constant is private (checked in the tests).
const DEFERRED: TraceFlags = TraceFlags::new(0x02);

/// Formats an OpenTelemetry trace id the way X-Ray shows it: `1-{8 hex epoch}-{24 hex}`.
///
/// Paste the result into the X-Ray console's trace search.
///
/// ```
/// use opentelemetry::trace::TraceId;
///
/// let id = TraceId::from_hex("5759e988bd862e3fe1be46a994272793").unwrap();
/// assert_eq!(
///     apprunner::telemetry::xray_trace_id(id),
///     "1-5759e988-bd862e3fe1be46a994272793"
/// );
/// ```
pub fn xray_trace_id(trace_id: TraceId) -> String {
    let hex = format!("{trace_id:032x}");
    format!("1-{}-{}", &hex[..8], &hex[8..])
}

/// The X-Ray form of the trace id of the current OpenTelemetry context, if any.
///
/// Inside a `tracing` span (with telemetry initialised) this is the span's trace.
///
/// ```
/// // Outside any span there is no trace.
/// assert_eq!(apprunner::telemetry::current_xray_trace_id(), None);
/// ```
pub fn current_xray_trace_id() -> Option<String> {
    let cx = Context::current();
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid().then(|| xray_trace_id(sc.trace_id()))
}

/// Which header continues a request that carries both `X-Amzn-Trace-Id` and `traceparent`
/// (`APPRUNNER_TRACE_HEADER_PRECEDENCE`, or
/// [`TelemetryConfig::trace_header_precedence`](super::TelemetryConfig::trace_header_precedence)).
///
/// It applies whatever order `OTEL_PROPAGATORS` lists the two in, and only when both are
/// listed and both headers are valid: a header that is malformed (or names no parent) counts
/// as absent, so the other one is continued.
///
/// ```
/// use apprunner::telemetry::{TelemetryConfig, TraceHeaderPrecedence};
///
/// let config = TelemetryConfig::from_lookup(|key| {
///     (key == "APPRUNNER_TRACE_HEADER_PRECEDENCE").then(|| "tracecontext".to_owned())
/// })?;
/// # let _ = config;
/// let err = TelemetryConfig::from_lookup(|key| {
///     (key == "APPRUNNER_TRACE_HEADER_PRECEDENCE").then(|| "w3c".to_owned())
/// })
/// .unwrap_err();
/// assert!(err.to_string().contains("APPRUNNER_TRACE_HEADER_PRECEDENCE"));
/// # let _ = TraceHeaderPrecedence::Xray;
/// # Ok::<(), apprunner::telemetry::TelemetryError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum TraceHeaderPrecedence {
    /// `xray` (the default): `X-Amzn-Trace-Id` wins. App Runner's front end is the hop that
    /// called the service and writes this header, so a `traceparent` sent by the client cannot
    /// detach the request from App Runner's trace.
    #[default]
    Xray,
    /// `tracecontext`: the W3C `traceparent` wins (for callers that propagate W3C context
    /// end to end and whose traces should not be split at App Runner's front end).
    TraceContext,
}

impl TraceHeaderPrecedence {
    /// The variable that sets it.
    const VAR: &'static str = "APPRUNNER_TRACE_HEADER_PRECEDENCE";

    /// Parses the value of `APPRUNNER_TRACE_HEADER_PRECEDENCE` (unset or empty: the default).
    pub(crate) fn from_env_value(value: Option<&str>) -> Result<Self, TelemetryError> {
        match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") | Some("xray") => Ok(Self::Xray),
            Some("tracecontext") => Ok(Self::TraceContext),
            Some(_) => Err(TelemetryError::InvalidVar {
                var: Self::VAR,
                value: value.unwrap_or_default().to_owned(),
                expected: "xray or tracecontext",
            }),
        }
    }
}

/// The `X-Amzn-Trace-Id` header name (lower case, as `http::HeaderMap` stores it).
const XRAY_HEADER: &str = "x-amzn-trace-id";

/// The AWS X-Ray propagator (`X-Amzn-Trace-Id: Root=1-…;Parent=…;Sampled=…`):
/// `opentelemetry_aws`'s `XrayPropagator` with `MissingSampledBehavior::Sampled`, plus what
/// App Runner needs and it lacks.
///
/// From `opentelemetry-aws`, unchanged: parsing and formatting; a header without `Sampled`
/// continues a sampled trace (so a front end that omits it never silently drops the request's
/// trace); `Sampled=?` defers the decision to this service's sampler; extra fields
/// (`Lineage=…`) are kept in the trace state and written back.
///
/// Added here:
///
/// - **exact ids**: a header whose `Root` is not `1-` + 8 + `-` + 24 hex digits, or whose
///   `Parent` is not 16 hex digits, is ignored (`opentelemetry-aws` ignores the version and
///   zero-pads short ids);
/// - **a header that names no parent counts as absent**: the context is left as it was (so a
///   valid `traceparent` extracted before it is kept), where `opentelemetry-aws` would replace
///   it with an invalid one;
/// - **only the HTTP header is read**: `opentelemetry-aws` also reads a `_X_AMZN_TRACE_ID` key
///   (the Lambda environment variable), which from a client is just another header;
/// - **a decision taken here is written as one**: a local span under a `Sampled=?` parent
///   carries the deferred flag, which `opentelemetry-aws` would write as `Sampled=?` again;
///   this propagator writes the decision (`1` or `0`). A remote context still deferred (a
///   request forwarded without a span) is written as `?`.
///
/// ```
/// use std::collections::HashMap;
/// use opentelemetry::propagation::TextMapPropagator;
/// use opentelemetry::trace::TraceContextExt;
///
/// let header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
/// let incoming = HashMap::from([("x-amzn-trace-id".to_owned(), header.to_owned())]);
/// let cx = apprunner::telemetry::XrayPropagator::default().extract(&incoming);
/// assert!(cx.span().span_context().is_sampled());
///
/// let mut outgoing = HashMap::new();
/// apprunner::telemetry::XrayPropagator::default().inject_context(&cx, &mut outgoing);
/// assert_eq!(outgoing["x-amzn-trace-id"], header);
/// ```
#[derive(Debug, Clone)]
pub struct XrayPropagator {
    aws: opentelemetry_aws::trace::XrayPropagator,
}

impl Default for XrayPropagator {
    fn default() -> Self {
        Self {
            aws: opentelemetry_aws::trace::XrayPropagator::new()
                .with_missing_sampled_behavior(MissingSampledBehavior::Sampled),
        }
    }
}

/// Whether every `Root` and `Parent` field of an `X-Amzn-Trace-Id` value has X-Ray's exact
/// form. Fields are split as `opentelemetry-aws` splits them (`;`, then the first `=`).
fn xray_ids_well_formed(value: &str) -> bool {
    let hex = |s: &[u8]| s.iter().all(u8::is_ascii_hexdigit);
    value
        .split_terminator(';')
        .all(|field| match field.split_once('=') {
            Some(("Root", root)) => {
                let b = root.as_bytes();
                b.len() == 35
                    && b.starts_with(b"1-")
                    && b[10] == b'-'
                    && hex(&b[2..10])
                    && hex(&b[11..])
            }
            Some(("Parent", parent)) => parent.len() == 16 && hex(parent.as_bytes()),
            _ => true,
        })
}

/// Shows a propagator the X-Ray header and nothing else.
struct XrayHeaderOnly<'a>(&'a str);

impl Extractor for XrayHeaderOnly<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        (key == XRAY_HEADER).then_some(self.0)
    }

    fn keys(&self) -> Vec<&str> {
        vec![XRAY_HEADER]
    }
}

/// The `X-Amzn-Trace-Id` value naming `sc` — the one place the kit writes this header (the
/// propagator and [`xray_header_value`](crate::http::xray_header_value) both come here) —
/// formatted by `opentelemetry-aws`. A local span that still carries the deferred flag had its
/// sampling decided here: that decision is written, not `?`. `None` for an invalid context.
pub(crate) fn xray_header(sc: &SpanContext) -> Option<String> {
    if sc.is_remote() || sc.trace_flags() & DEFERRED != DEFERRED {
        return span_context_to_string(sc);
    }
    span_context_to_string(&SpanContext::new(
        sc.trace_id(),
        sc.span_id(),
        sc.trace_flags() & TraceFlags::SAMPLED,
        false,
        sc.trace_state().clone(),
    ))
}

impl TextMapPropagator for XrayPropagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        if let Some(value) = xray_header(cx.span().span_context()) {
            injector.set(XRAY_HEADER, value);
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        let Some(header) = extractor.get(XRAY_HEADER) else {
            return cx.clone();
        };
        if !xray_ids_well_formed(header.trim()) {
            return cx.clone();
        }
        let extracted = self.aws.extract_with_context(cx, &XrayHeaderOnly(header));
        if extracted.span().span_context().is_valid() {
            extracted
        } else {
            cx.clone()
        }
    }

    fn fields(&self) -> FieldIter<'_> {
        self.aws.fields()
    }
}

/// The W3C `traceparent` header name.
const TRACEPARENT: &str = "traceparent";

/// W3C Trace Context (`traceparent`, `tracestate`): the SDK's propagator, which only sees a
/// `traceparent` that follows the W3C grammar exactly. The SDK's own parser accepts ids and
/// flags of any length up to their size (`00-…-…-0` reads as "not sampled"), a one-digit
/// version, and more fields after a version-00 header; such a header is ignored here, as if
/// absent (and its `tracestate` with it, as the specification requires).
#[derive(Debug, Default)]
struct W3cTraceContextPropagator {
    sdk: opentelemetry_sdk::propagation::TraceContextPropagator,
}

/// Whether `value` is a `traceparent` per W3C Trace Context: `version-traceid-parentid-flags`,
/// all lowercase hex; version not `ff`; ids not all zeros; version `00` exactly 55 characters,
/// a higher version may carry more after a `-`. Optional whitespace around the value (which an
/// HTTP parser strips anyway) is allowed.
fn traceparent_well_formed(value: &str) -> bool {
    let b = value.trim_matches([' ', '\t']).as_bytes();
    if b.len() < 55 {
        return false;
    }
    let hex = |s: &[u8]| s.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'));
    let non_zero = |s: &[u8]| s.iter().any(|&c| c != b'0');
    let (version, trace_id, parent_id, flags) = (&b[..2], &b[3..35], &b[36..52], &b[53..55]);
    let dashes = b[2] == b'-' && b[35] == b'-' && b[52] == b'-';
    let rest_ok = match b.get(55) {
        None => true,
        Some(b'-') => version != b"00",
        Some(_) => false,
    };
    dashes
        && rest_ok
        && hex(version)
        && version != b"ff"
        && hex(trace_id)
        && non_zero(trace_id)
        && hex(parent_id)
        && non_zero(parent_id)
        && hex(flags)
}

impl TextMapPropagator for W3cTraceContextPropagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        self.sdk.inject_context(cx, injector);
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        match extractor.get(TRACEPARENT) {
            Some(value) if traceparent_well_formed(value) => {
                self.sdk.extract_with_context(cx, extractor)
            }
            _ => cx.clone(),
        }
    }

    fn fields(&self) -> FieldIter<'_> {
        self.sdk.fields()
    }
}

/// One entry of `OTEL_PROPAGATORS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PropagatorKind {
    /// AWS X-Ray `X-Amzn-Trace-Id`.
    Xray,
    /// W3C `traceparent` / `tracestate`.
    TraceContext,
    /// W3C `baggage`.
    Baggage,
}

/// The composite propagator for the configured list (`OTEL_PROPAGATORS`) and precedence.
///
/// The composite's extract runs its propagators in order, and each one that finds a valid
/// header replaces the context the ones before it extracted; both trace propagators leave the
/// context alone when their header is absent or invalid. So the winning one is placed after the
/// other, whatever order the list gives; the rest of the list keeps its order.
pub(crate) fn propagator(
    kinds: &[PropagatorKind],
    precedence: TraceHeaderPrecedence,
) -> TextMapCompositePropagator {
    let mut kinds = kinds.to_vec();
    let position = |kind| kinds.iter().position(|&k| k == kind);
    if let (Some(xray), Some(w3c)) = (
        position(PropagatorKind::Xray),
        position(PropagatorKind::TraceContext),
    ) {
        let (winner, loser) = match precedence {
            TraceHeaderPrecedence::Xray => (xray, w3c),
            TraceHeaderPrecedence::TraceContext => (w3c, xray),
        };
        if winner < loser {
            kinds.swap(winner, loser);
        }
    }
    let list = kinds
        .iter()
        .map(|kind| -> Box<dyn TextMapPropagator + Send + Sync> {
            match kind {
                PropagatorKind::Xray => Box::new(XrayPropagator::default()),
                PropagatorKind::TraceContext => Box::new(W3cTraceContextPropagator::default()),
                PropagatorKind::Baggage => Box::new(BaggagePropagator::new()),
            }
        })
        .collect();
    TextMapCompositePropagator::new(list)
}

/// Wraps the configured sampler so that a remote parent whose X-Ray header said `Sampled=?`
/// (the decision was deferred to this service) gets a decision from the root sampler instead
/// of being dropped as "not sampled" by a parent-based sampler.
#[derive(Debug, Clone)]
pub(crate) struct XrayAwareSampler {
    configured: Sampler,
    root: Box<dyn ShouldSample>,
}

impl XrayAwareSampler {
    pub(crate) fn new(configured: Sampler, root: Sampler) -> Self {
        Self {
            configured,
            root: Box::new(root),
        }
    }

    /// With a root sampler of the kit's own (X-Ray centralized sampling).
    #[cfg(feature = "xray-sampling")]
    pub(crate) fn with_root(configured: Sampler, root: Box<dyn ShouldSample>) -> Self {
        Self { configured, root }
    }
}

impl ShouldSample for XrayAwareSampler {
    fn should_sample(
        &self,
        parent_context: Option<&Context>,
        trace_id: TraceId,
        name: &str,
        span_kind: &SpanKind,
        attributes: &[KeyValue],
        links: &[Link],
    ) -> SamplingResult {
        let deferred = parent_context.is_some_and(|cx| {
            let span = cx.span();
            let sc = span.span_context();
            sc.is_remote() && !sc.is_sampled() && sc.trace_flags() & DEFERRED == DEFERRED
        });
        if deferred {
            let result = self
                .root
                .should_sample(None, trace_id, name, span_kind, attributes, links);
            let trace_state = parent_context
                .map(|cx| cx.span().span_context().trace_state().clone())
                .unwrap_or_default();
            return SamplingResult {
                decision: result.decision,
                attributes: result.attributes,
                trace_state,
            };
        }
        self.configured
            .should_sample(parent_context, trace_id, name, span_kind, attributes, links)
    }
}

#[cfg(test)]
mod tests;
