//! X-Ray trace ids, the X-Ray-aware sampler and propagator construction.

use opentelemetry::propagation::text_map_propagator::FieldIter;
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::propagation::{TextMapCompositePropagator, TextMapPropagator};
use opentelemetry::trace::{
    Link, SpanContext, SpanId, SpanKind, TraceContextExt, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{Context, KeyValue};
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

/// The `X-Amzn-Trace-Id` header name (lower case, as `http::HeaderMap` stores it).
const XRAY_HEADER: &str = "x-amzn-trace-id";

static XRAY_FIELDS: std::sync::OnceLock<[String; 1]> = std::sync::OnceLock::new();

/// The AWS X-Ray propagator (`X-Amzn-Trace-Id: Root=1-…;Parent=…;Sampled=…`).
///
/// Reads and writes the same headers as `opentelemetry_aws`'s `XrayPropagator` configured with
/// `MissingSampledBehavior::Sampled` — a header without `Sampled` continues a sampled trace, so
/// App Runner's requests are never silently dropped; `Sampled=?` defers the decision to this
/// service's sampler — but parses and formats without intermediate strings (see
/// `benches/README.md`). Extra fields (`Lineage=…`) are kept in the trace state and written
/// back. A malformed header is ignored: the request starts a fresh trace.
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
#[derive(Debug, Clone, Default)]
pub struct XrayPropagator {
    _private: (),
}

/// `1-xxxxxxxx-yyyyyyyyyyyyyyyyyyyyyyyy` → trace id.
fn parse_root(value: &[u8]) -> Option<TraceId> {
    if value.len() != 35 || &value[..2] != b"1-" || value[10] != b'-' {
        return None;
    }
    let time = u128::from(hex_value(&value[2..10])?);
    let high = u128::from(hex_value(&value[11..19])?);
    let low = u128::from(hex_value(&value[19..35])?);
    let id = time << 96 | high << 64 | low;
    (id != 0).then(|| TraceId::from(id))
}

/// The value of up to 16 hex digits (no sign, no prefix).
fn hex_value(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0_u64, |value, &c| {
        let digit = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => return None,
        };
        Some(value << 4 | u64::from(digit))
    })
}

/// `Parent`: 16 hex digits on the fast path; anything else as `SpanId::from_hex` reads it.
fn parse_parent(value: &[u8]) -> SpanId {
    if value.len() == 16
        && let Some(id) = hex_value(value)
    {
        return SpanId::from(id);
    }
    std::str::from_utf8(value)
        .ok()
        .and_then(|value| SpanId::from_hex(value).ok())
        .unwrap_or(SpanId::INVALID)
}

/// Parses an `X-Amzn-Trace-Id` value. Runs for every request: it works on bytes, without
/// allocating unless the header carries fields beyond `Root`, `Parent` and `Sampled`.
fn parse_xray_header(value: &str) -> Option<SpanContext> {
    canonical_xray_header(value.as_bytes()).or_else(|| parse_xray_fields(value))
}

/// The header as App Runner's front end and the X-Ray SDKs write it,
/// `Root=1-xxxxxxxx-yyyyyyyyyyyyyyyyyyyyyyyy;Parent=zzzzzzzzzzzzzzzz;Sampled=d`, read at fixed
/// offsets; `None` for any other layout (which [`parse_xray_fields`] reads, with the same
/// result for this one).
fn canonical_xray_header(value: &[u8]) -> Option<SpanContext> {
    if value.len() != 74
        || !value.starts_with(b"Root=")
        || &value[40..48] != b";Parent="
        || &value[64..73] != b";Sampled="
    {
        return None;
    }
    let trace_id = parse_root(&value[5..40])?;
    let parent = SpanId::from(hex_value(&value[48..64])?);
    let flags = match value[73] {
        b'0' => TraceFlags::default(),
        b'1' => TraceFlags::SAMPLED,
        _ => DEFERRED,
    };
    Some(SpanContext::new(
        trace_id,
        parent,
        flags,
        true,
        TraceState::default(),
    ))
}

/// Parses an `X-Amzn-Trace-Id` value field by field, in any order, keeping unknown fields.
fn parse_xray_fields(value: &str) -> Option<SpanContext> {
    let mut trace_id = None;
    let mut parent = SpanId::INVALID;
    let mut flags = TraceFlags::SAMPLED;
    let mut extra: Vec<(String, String)> = Vec::new();
    for part in value.as_bytes().split(|&b| b == b';') {
        let Some(eq) = part.iter().position(|&b| b == b'=') else {
            continue;
        };
        let (key, val) = (part[..eq].trim_ascii(), part[eq + 1..].trim_ascii());
        match key {
            b"Root" => trace_id = Some(parse_root(val)?),
            b"Parent" => parent = parse_parent(val),
            b"Sampled" => {
                flags = match val {
                    b"0" => TraceFlags::default(),
                    b"1" => TraceFlags::SAMPLED,
                    _ => DEFERRED,
                };
            }
            other => {
                // `value` is a `str` and the split points are ASCII: both halves are UTF-8.
                let key = String::from_utf8_lossy(other).to_ascii_lowercase();
                extra.push((key, String::from_utf8_lossy(val).into_owned()));
            }
        }
    }
    let trace_state = if extra.is_empty() {
        TraceState::default()
    } else {
        TraceState::from_key_value(extra).ok()?
    };
    Some(SpanContext::new(
        trace_id?,
        parent,
        flags,
        true,
        trace_state,
    ))
}

fn title_case(key: &str) -> String {
    let mut chars = key.chars();
    chars
        .next()
        .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

impl TextMapPropagator for XrayPropagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        use std::fmt::Write as _;
        let span = cx.span();
        let sc = span.span_context();
        if !sc.is_valid() {
            return;
        }
        let id = u128::from_be_bytes(sc.trace_id().to_bytes());
        let sampled = if sc.trace_flags() & DEFERRED == DEFERRED {
            '?'
        } else if sc.is_sampled() {
            '1'
        } else {
            '0'
        };
        let mut header = String::with_capacity(80);
        let _ = write!(
            header,
            "Root=1-{:08x}-{:024x};Parent={};Sampled={}",
            id >> 96,
            id & ((1u128 << 96) - 1),
            sc.span_id(),
            sampled
        );
        if *sc.trace_state() != TraceState::default() {
            let state = sc.trace_state().header_delimited("=", ";");
            for entry in state.split(';').filter(|e| !e.is_empty()) {
                header.push(';');
                header.push_str(&title_case(entry));
            }
        }
        injector.set(XRAY_HEADER, header);
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        match extractor
            .get(XRAY_HEADER)
            .and_then(|h| parse_xray_header(h.trim_ascii()))
        {
            Some(sc) => cx.with_remote_span_context(sc),
            None => cx.clone(),
        }
    }

    fn fields(&self) -> FieldIter<'_> {
        FieldIter::new(XRAY_FIELDS.get_or_init(|| [XRAY_HEADER.to_owned()]))
    }
}

/// The composite propagator for the configured list (`OTEL_PROPAGATORS`).
pub(crate) fn propagator(kinds: &[PropagatorKind]) -> TextMapCompositePropagator {
    let mut list: Vec<Box<dyn TextMapPropagator + Send + Sync>> = Vec::new();
    for kind in kinds {
        match kind {
            // App Runner's front end may send a header without `Sampled`: treat it as sampled
            // rather than letting a parent-based sampler silently drop the request's trace.
            PropagatorKind::Xray => list.push(Box::new(XrayPropagator::default())),
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

    proptest::proptest! {
        /// The fixed-offset reading of the canonical layout agrees with the field-by-field
        /// parser: for any hex digits (either case), any `Sampled` byte, and with one byte
        /// anywhere replaced by something else.
        #[test]
        fn the_canonical_layout_reads_as_the_field_parser_reads_it(
            time in "[0-9a-fA-F]{8}",
            random in "[0-9a-fA-F]{24}",
            parent in "[0-9a-fA-F]{16}",
            sampled in proptest::sample::select(vec!['0', '1', '?', 'x', ' ', ';']),
            corrupt in proptest::option::of((
                0_usize..74,
                proptest::sample::select(vec![b'x', b' ', b';', b'=', b'-', b'R']),
            )),
        ) {
            let mut header = format!("Root=1-{time}-{random};Parent={parent};Sampled={sampled}");
            proptest::prop_assert_eq!(header.len(), 74);
            if let Some((at, byte)) = corrupt {
                let mut bytes = header.into_bytes();
                bytes[at] = byte;
                header = String::from_utf8(bytes).expect("ASCII");
            }
            let canonical = canonical_xray_header(header.as_bytes());
            let fields = parse_xray_fields(&header);
            if canonical.is_some() {
                proptest::prop_assert_eq!(&canonical, &fields);
            }
            if corrupt.is_none() && fields.is_some() {
                proptest::prop_assert!(canonical.is_some(), "the fast path takes {}", header);
            }
            proptest::prop_assert_eq!(parse_xray_header(&header), fields);
        }
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

    /// Same contexts and headers as opentelemetry-aws's propagator (missing `Sampled` =
    /// sampled), on valid, partial and malformed headers.
    #[test]
    fn agrees_with_the_opentelemetry_aws_propagator() {
        use opentelemetry_aws::trace::{MissingSampledBehavior, XrayPropagator as Aws};
        let aws = Aws::new().with_missing_sampled_behavior(MissingSampledBehavior::Sampled);
        let ours = XrayPropagator::default();
        for header in [
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=?",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1;Lineage=a87bd80c",
            "Sampled=1;Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8",
            "Root=1-5759e988-bd862e3fe1be46a99427279z;Parent=53995c3f42cd8ad8",
            "Parent=53995c3f42cd8ad8;Sampled=1",
            "garbage",
            "",
        ] {
            let carrier = HashMap::from([("x-amzn-trace-id".to_owned(), header.to_owned())]);
            let (a, o) = (aws.extract(&carrier), ours.extract(&carrier));
            let (a_span, o_span) = (a.span(), o.span());
            let (a_sc, o_sc) = (a_span.span_context(), o_span.span_context());
            assert_eq!(a_sc.trace_id(), o_sc.trace_id(), "{header}");
            assert_eq!(a_sc.span_id(), o_sc.span_id(), "{header}");
            assert_eq!(a_sc.trace_flags(), o_sc.trace_flags(), "{header}");
            assert_eq!(a_sc.is_valid(), o_sc.is_valid(), "{header}");
            let (mut a_out, mut o_out) = (HashMap::new(), HashMap::new());
            aws.inject_context(&a, &mut a_out);
            ours.inject_context(&o, &mut o_out);
            assert_eq!(a_out, o_out, "{header}");
        }
        // Deliberate differences: a Root that is not `1-` + 8 + 24 hex digits is malformed
        // (opentelemetry-aws zero-pads short ones and ignores the version); this propagator
        // starts a fresh trace instead.
        for malformed in [
            "Root=1-5759e988-bd862e3fe1be46a99427279;Parent=53995c3f42cd8ad8;Sampled=1",
            "Root=2-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8",
        ] {
            let carrier = HashMap::from([("x-amzn-trace-id".to_owned(), malformed.to_owned())]);
            assert!(!ours.extract(&carrier).span().span_context().is_valid());
        }
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
