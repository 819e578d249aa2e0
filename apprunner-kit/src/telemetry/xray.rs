//! X-Ray trace ids, the X-Ray-aware sampler and propagator construction.

use opentelemetry::propagation::{TextMapCompositePropagator, TextMapPropagator};
use opentelemetry::trace::{Link, SpanKind, TraceContextExt, TraceFlags, TraceId};
use opentelemetry::{Context, KeyValue};
use opentelemetry_aws::trace::{MissingSampledBehavior, XrayPropagator};
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use opentelemetry_sdk::trace::{
    IdGenerator, RandomIdGenerator, Sampler, SamplingResult, ShouldSample,
};

use super::config::PropagatorKind;

/// The trace flag the X-Ray propagator sets for `Sampled=?` (decision deferred to us).
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

/// Trace and span ids X-Ray accepts: the first 32 bits of a trace id are the epoch seconds,
/// the other 96 bits random — the same ids as `opentelemetry_aws`'s `XrayIdGenerator`, built
/// with integer operations instead of formatting and parsing hex strings (see
/// `benches/README.md`: about 5x faster).
///
/// ```
/// use opentelemetry_sdk::trace::IdGenerator;
///
/// let id = apprunner::telemetry::XrayIdGenerator::default().new_trace_id();
/// let epoch = std::time::SystemTime::now()
///     .duration_since(std::time::UNIX_EPOCH)
///     .unwrap()
///     .as_secs();
/// let first_32_bits = u64::from_str_radix(&format!("{id:032x}")[..8], 16).unwrap();
/// assert!(epoch.abs_diff(first_32_bits) < 60);
/// ```
#[derive(Debug, Default)]
pub struct XrayIdGenerator {
    random: RandomIdGenerator,
}

impl IdGenerator for XrayIdGenerator {
    fn new_trace_id(&self) -> TraceId {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let random = u128::from_be_bytes(self.random.new_trace_id().to_bytes());
        let low96 = random & ((1u128 << 96) - 1);
        TraceId::from_bytes((((secs as u128) & 0xffff_ffff) << 96 | low96).to_be_bytes())
    }

    fn new_span_id(&self) -> opentelemetry::trace::SpanId {
        self.random.new_span_id()
    }
}

/// The composite propagator for the configured list (`OTEL_PROPAGATORS`).
pub(crate) fn propagator(kinds: &[PropagatorKind]) -> TextMapCompositePropagator {
    let mut list: Vec<Box<dyn TextMapPropagator + Send + Sync>> = Vec::new();
    for kind in kinds {
        match kind {
            // App Runner's front end may send a header without `Sampled`: treat it as sampled
            // rather than letting a parent-based sampler silently drop the request's trace.
            PropagatorKind::Xray => list.push(Box::new(
                XrayPropagator::new()
                    .with_missing_sampled_behavior(MissingSampledBehavior::Sampled),
            )),
            PropagatorKind::TraceContext => list.push(Box::new(TraceContextPropagator::new())),
            PropagatorKind::Baggage => list.push(Box::new(BaggagePropagator::new())),
        }
    }
    TextMapCompositePropagator::new(list)
}

/// Wraps the configured sampler so that a remote parent whose X-Ray header said `Sampled=?`
/// (the decision was deferred to this service) gets a decision from the root sampler instead
/// of being dropped as "not sampled" by a parent-based sampler.
#[derive(Debug, Clone)]
pub(crate) struct XrayAwareSampler {
    configured: Sampler,
    root: Sampler,
}

impl XrayAwareSampler {
    pub(crate) fn new(configured: Sampler, root: Sampler) -> Self {
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

/// Whether a sampling decision records the span (used by tests of the sampler).
#[cfg(test)]
fn records(result: &SamplingResult) -> bool {
    result.decision == opentelemetry_sdk::trace::SamplingDecision::RecordAndSample
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::propagation::TextMapPropagator;
    use std::collections::HashMap;

    fn extract(header: &str) -> Context {
        let mut carrier = HashMap::new();
        carrier.insert("x-amzn-trace-id".to_owned(), header.to_owned());
        propagator(&[PropagatorKind::Xray]).extract(&carrier)
    }

    fn sample(cx: &Context) -> SamplingResult {
        let sampler = XrayAwareSampler::new(
            Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
            Sampler::AlwaysOn,
        );
        let trace_id = cx.span().span_context().trace_id();
        sampler.should_sample(Some(cx), trace_id, "x", &SpanKind::Server, &[], &[])
    }

    #[test]
    fn ids_match_the_aws_generator_shape() {
        let ours = XrayIdGenerator::default().new_trace_id();
        let theirs = opentelemetry_aws::trace::XrayIdGenerator::default().new_trace_id();
        let (ours, theirs) = (format!("{ours:032x}"), format!("{theirs:032x}"));
        let epoch = |hex: &str| u64::from_str_radix(&hex[..8], 16).unwrap();
        assert!(
            epoch(&ours).abs_diff(epoch(&theirs)) <= 1,
            "{ours} vs {theirs}"
        );
        assert_ne!(ours[8..], theirs[8..]);
        let generator = XrayIdGenerator::default();
        assert_ne!(generator.new_trace_id(), generator.new_trace_id());
        assert_ne!(
            generator.new_span_id(),
            opentelemetry::trace::SpanId::INVALID
        );
    }

    #[test]
    fn formats_xray_ids() {
        let id = TraceId::from_hex("0123456789abcdef0123456789abcdef").unwrap();
        assert_eq!(xray_trace_id(id), "1-01234567-89abcdef0123456789abcdef");
    }

    #[test]
    fn missing_sampled_field_is_sampled() {
        let cx = extract("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8");
        assert!(cx.span().span_context().is_sampled());
        assert!(records(&sample(&cx)));
    }

    #[test]
    fn deferred_decision_is_taken_by_the_root_sampler() {
        let cx =
            extract("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=?");
        assert!(!cx.span().span_context().is_sampled());
        assert!(records(&sample(&cx)));
    }

    #[test]
    fn explicit_not_sampled_is_honoured() {
        let cx =
            extract("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0");
        assert!(!records(&sample(&cx)));
    }
}
