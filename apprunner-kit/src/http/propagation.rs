//! Trace context in and out of `http::HeaderMap`s.

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::{
    Context,
    propagation::Extractor,
    trace::{SpanContext, TraceFlags, TraceState},
};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};

/// The `X-Amzn-Trace-Id` header: AWS X-Ray's trace header, added by App Runner's front end and
/// returned by this kit on every traced response.
pub const X_AMZN_TRACE_ID: HeaderName = HeaderName::from_static("x-amzn-trace-id");

/// Reads a header map for a propagator: `opentelemetry-http`'s extractor, except that more than
/// one `traceparent` reads as none (W3C Trace Context: none of them can be trusted, and combined
/// they would break the grammar too), which the upstream extractor does not check.
struct RequestHeaders<'a>(HeaderExtractor<'a>);

impl Extractor for RequestHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        if key == "traceparent" {
            let mut values = self.0.0.get_all(TRACEPARENT).iter();
            return values
                .next()
                .filter(|_| values.next().is_none())
                .and_then(|value| value.to_str().ok());
        }
        self.0.get(key)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys()
    }
}

const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// Extracts the remote trace context (and baggage) of an incoming request with the global
/// text-map propagator.
///
/// [`telemetry::init`](crate::telemetry::init) installs X-Ray (`X-Amzn-Trace-Id`), W3C
/// `traceparent` and W3C `baggage` propagators unless `OTEL_PROPAGATORS` says otherwise. When
/// both trace headers are valid, the X-Ray one wins unless
/// `APPRUNNER_TRACE_HEADER_PRECEDENCE=tracecontext`
/// ([`TraceHeaderPrecedence`](crate::telemetry::TraceHeaderPrecedence)); a malformed header
/// counts as absent. The result is independent of the caller's current context: a request
/// always starts from what its headers say. [`TraceLayer`](super::TraceLayer) calls this for
/// every request.
///
/// # Example
///
/// ```
/// use opentelemetry::trace::TraceContextExt;
///
/// let mut headers = http::HeaderMap::new();
/// headers.insert(
///     "x-amzn-trace-id",
///     "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
///         .parse()
///         .unwrap(),
/// );
/// let cx = apprunner::http::extract_context(&headers);
/// // Without `telemetry::init` the global propagator is a no-op, so nothing is extracted.
/// assert!(!cx.span().span_context().is_valid());
/// ```
pub fn extract_context(headers: &HeaderMap) -> Context {
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract_with_context(&Context::new(), &RequestHeaders(HeaderExtractor(headers)))
    })
}

/// Injects `cx` into the headers of an outgoing request with the global text-map propagator, so
/// the service called continues the trace.
///
/// # Example
///
/// ```
/// let mut request = http::Request::new(());
/// // Inside a traced handler, the current context holds the request's SERVER span (or the
/// // `tracing` span entered in it).
/// apprunner::http::inject_context(&opentelemetry::Context::current(), request.headers_mut());
/// ```
pub fn inject_context(cx: &Context, headers: &mut HeaderMap) {
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(cx, &mut HeaderInjector(headers));
    });
}

/// The `X-Amzn-Trace-Id` value naming `span_context`:
/// `Root=1-xxxxxxxx-yyyyyyyyyyyyyyyyyyyyyyyy;Parent=<span id>;Sampled=<0|1>`, or `None` when the
/// context is not valid (no tracer provider installed, for example).
///
/// [`TraceLayer`](super::TraceLayer) puts this value, naming the SERVER span, on every response,
/// so a caller can paste the trace id into the X-Ray console. It is formatted where the X-Ray
/// propagator formats its header (by `opentelemetry-aws`), but it always states the sampling
/// decision (never `?`) and never copies trace state or baggage into the value.
///
/// # Example
///
/// ```
/// use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
///
/// let span_context = SpanContext::new(
///     TraceId::from_hex("5759e988bd862e3fe1be46a994272793").unwrap(),
///     SpanId::from_hex("53995c3f42cd8ad8").unwrap(),
///     TraceFlags::SAMPLED,
///     true,
///     TraceState::default(),
/// );
/// let value = apprunner::http::xray_header_value(&span_context).unwrap();
/// assert_eq!(
///     value,
///     "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
/// );
/// ```
pub fn xray_header_value(span_context: &SpanContext) -> Option<HeaderValue> {
    let decided = SpanContext::new(
        span_context.trace_id(),
        span_context.span_id(),
        span_context.trace_flags() & TraceFlags::SAMPLED,
        false,
        TraceState::NONE,
    );
    crate::telemetry::xray_header(&decided).and_then(|value| HeaderValue::try_from(value).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::propagation::Injector as _;
    use opentelemetry::trace::{SpanId, TraceFlags, TraceId, TraceState};

    #[test]
    fn xray_header_value_matches_the_telemetry_formatting() {
        for (trace, span, flags) in [
            (u128::MAX, u64::MAX, TraceFlags::SAMPLED),
            (
                0x0000_0001_0203_0405_0607_0809_0a0b_0c0d,
                1,
                TraceFlags::default(),
            ),
        ] {
            let trace_id = TraceId::from(trace);
            let span_id = SpanId::from(span);
            let span_context =
                SpanContext::new(trace_id, span_id, flags, true, TraceState::default());
            let expected = format!(
                "Root={};Parent={span_id};Sampled={}",
                crate::telemetry::xray_trace_id(trace_id),
                u8::from(flags.is_sampled()),
            );
            assert_eq!(xray_header_value(&span_context).unwrap(), expected.as_str());
        }
        assert_eq!(xray_header_value(&SpanContext::empty_context()), None);
    }

    /// One formatting for the response header and the propagator: the same value as the
    /// X-Ray propagator injects for the same context, minus trace state, and the decision
    /// rather than `?`.
    #[test]
    fn xray_header_value_is_what_the_propagator_writes() {
        use opentelemetry::propagation::TextMapPropagator;
        use opentelemetry::trace::TraceContextExt;

        let header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
        for incoming in [
            header.to_owned(),
            format!("{header};Lineage=a87bd80c"),
            header.replace("Sampled=1", "Sampled=?"),
            header.replace("Sampled=1", "Sampled=0"),
        ] {
            let propagator = crate::telemetry::XrayPropagator::default();
            let carrier =
                std::collections::HashMap::from([("x-amzn-trace-id".to_owned(), incoming.clone())]);
            let cx = propagator.extract(&carrier);
            let sc = cx.span().span_context().clone();
            let mut out = std::collections::HashMap::new();
            propagator.inject_context(&cx, &mut out);
            assert_eq!(out["x-amzn-trace-id"], incoming);
            let value = xray_header_value(&sc).unwrap();
            let sampled = if sc.is_sampled() { "1" } else { "0" };
            let expected = format!("{};Sampled={sampled}", &header[..header.len() - 10]);
            assert_eq!(value, expected.as_str(), "{incoming}");
        }
    }

    #[test]
    fn more_than_one_traceparent_is_none() {
        let value = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let mut headers = HeaderMap::new();
        headers.append("traceparent", HeaderValue::from_static(value));
        assert_eq!(
            RequestHeaders(HeaderExtractor(&headers)).get("traceparent"),
            Some(value)
        );
        headers.append("traceparent", HeaderValue::from_static(value));
        assert_eq!(
            RequestHeaders(HeaderExtractor(&headers)).get("traceparent"),
            None
        );
    }

    #[test]
    fn injector_skips_values_that_are_not_http() {
        let mut headers = HeaderMap::new();
        let mut injector = HeaderInjector(&mut headers);
        injector.set("traceparent", "00-abc".to_owned());
        injector.set("bad name", "x".to_owned());
        injector.set("x-bad-value", "line\nbreak".to_owned());
        assert_eq!(headers.len(), 1);
        assert_eq!(headers["traceparent"], "00-abc");
    }

    #[test]
    fn extractor_lists_every_header_name() {
        let mut headers = HeaderMap::new();
        headers.insert("x-amzn-trace-id", HeaderValue::from_static("Root=1"));
        headers.insert("baggage", HeaderValue::from_static("k=v"));
        let extractor = RequestHeaders(HeaderExtractor(&headers));
        let mut keys = extractor.keys();
        keys.sort_unstable();
        assert_eq!(keys, ["baggage", "x-amzn-trace-id"]);
        assert_eq!(extractor.get("x-amzn-trace-id"), Some("Root=1"));
        assert_eq!(extractor.get("X-Amzn-Trace-Id"), Some("Root=1"));
        assert_eq!(extractor.get("baggage"), Some("k=v"));
        assert_eq!(extractor.get("traceparent"), None);
    }
}
