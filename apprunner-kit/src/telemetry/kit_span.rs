//! The kit's own spans (HTTP SERVER spans, SQL CLIENT spans), made with the OpenTelemetry API
//! directly: with what [`init`](super::init) installed, cached per thread, else with the global
//! provider's tracer (an application that set up OpenTelemetry itself).
//!
//! With OTLP/gRPC export, `init` installs a [`NativeTracer`]: its spans are sampled by the
//! provider's sampler, get ids from the same generator, and implement the OpenTelemetry `Span`
//! API, but they skip the SDK's span machinery (tracer and scope clones, the processor chain,
//! the `SpanData` copy): when one ends it is encoded straight into the export queue
//! ([`batch`](super::batch)). Other exporters get SDK spans.
#![cfg_attr(
    not(any(feature = "http", feature = "db")),
    allow(
        dead_code,
        reason = "only the HTTP layer and the database pools make kit spans"
    )
)]

use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::SystemTime;

use opentelemetry::trace::Tracer as _;
use opentelemetry::trace::{
    Event, Link, SpanBuilder, SpanContext, SpanId, SpanKind, Status, TraceContextExt as _,
    TraceFlags, TraceState,
};
use opentelemetry::{Context, InstrumentationScope, KeyValue};
use opentelemetry_sdk::trace::{IdGenerator as _, SamplingDecision, SdkTracer, ShouldSample as _};

use super::batch::SpanQueue;
use super::encode::{EncodedAttributes, SpanFields, append_span};
use super::packed::PackedAttributes;
use super::xray::{XrayAwareSampler, XrayIdGenerator};

/// What [`init`](super::init) installed for the spans the kit makes with the OpenTelemetry API
/// directly (HTTP SERVER spans, SQL CLIENT spans).
#[derive(Debug, Clone)]
pub(super) struct KitTracer {
    pub(super) sdk: SdkTracer,
    pub(super) native: Option<Arc<NativeTracer>>,
}

/// The installed [`KitTracer`]; `None` before `init` and after shutdown.
static KIT_TRACER: RwLock<Option<KitTracer>> = RwLock::new(None);

/// Bumped whenever [`KIT_TRACER`] changes, so that threads drop their cached copy.
static KIT_TRACER_GENERATION: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Each thread's copy of the installed tracer and the generation it was read at: starting
    /// a span then costs one atomic load instead of a lock and a clone of the tracer.
    static CACHED_TRACER: RefCell<Option<(u64, KitTracer)>> = const { RefCell::new(None) };
}

fn installed_tracer() -> Option<KitTracer> {
    KIT_TRACER
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

/// Starts one of the kit's own spans as a child of `parent`: with the SDK tracer
/// [`init`](super::init) installed (no dynamic dispatch, no boxing), else with a tracer of
/// whatever global provider the application installed itself.
#[cfg(feature = "http")]
pub(crate) fn start_kit_span(builder: SpanBuilder, parent: &Context) -> KitSpan {
    start_kit_span_with(parent, |_| builder)
}

/// [`start_kit_span`] with the builder made by `build`, told whether the span will be a
/// [`NativeSpan`] (which can take its name and attributes after the start, without the
/// `KeyValue`s a sampler may look at).
pub(crate) fn start_kit_span_with(
    parent: &Context,
    build: impl FnOnce(bool) -> SpanBuilder,
) -> KitSpan {
    let generation = KIT_TRACER_GENERATION.load(Ordering::Acquire);
    let mut build = Some(build);
    let cached = CACHED_TRACER.with(|cell| {
        // Re-entered from inside a span start (a sampler starting spans): no cache.
        let mut cached = cell.try_borrow_mut().ok()?;
        if cached.as_ref().is_none_or(|(seen, _)| *seen != generation) {
            *cached = installed_tracer().map(|tracer| (generation, tracer));
        }
        let (_, tracer) = cached.as_ref()?;
        let build = build.take()?;
        Some(tracer.start(build(tracer.native.is_some()), parent))
    });
    if let Some(span) = cached {
        return span;
    }
    let build = build.expect("the builder is only taken to start a span");
    match installed_tracer() {
        Some(tracer) => {
            let builder = build(tracer.native.is_some());
            tracer.start(builder, parent)
        }
        None => KitSpan::Global(
            opentelemetry::global::tracer_with_scope(kit_scope())
                .build_with_context(build(false), parent),
        ),
    }
}

/// A span started by [`start_kit_span`].
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "boxing the SDK span would cost an allocation per span, on the hot path"
)]
pub(crate) enum KitSpan {
    Native(NativeSpan),
    Sdk(opentelemetry_sdk::trace::Span),
    Global(opentelemetry::global::BoxedSpan),
}

macro_rules! each_span {
    ($self:ident, $span:ident => $body:expr) => {
        match $self {
            KitSpan::Native($span) => $body,
            KitSpan::Sdk($span) => $body,
            KitSpan::Global($span) => $body,
        }
    };
}

#[cfg_attr(
    not(feature = "db"),
    allow(
        dead_code,
        reason = "only the database pools encode attributes beforehand"
    )
)]
impl KitSpan {
    /// Whether this is a [`NativeSpan`], which takes [`set_encoded`](Self::set_encoded)
    /// attributes as they are.
    pub(crate) fn is_native(&self) -> bool {
        matches!(self, KitSpan::Native(_))
    }

    /// Gives the span the attributes in `encoded`: kept as they are by a native span, else (or
    /// past the attribute limit) the `KeyValue`s of `fallback` are set.
    pub(crate) fn set_encoded(
        &mut self,
        encoded: Arc<EncodedAttributes>,
        fallback: impl FnOnce() -> Vec<KeyValue>,
    ) {
        use opentelemetry::trace::Span as _;
        match self {
            KitSpan::Native(span)
                if span.recording
                    && span.encoded.is_none()
                    && span.attribute_count() + encoded.len() <= MAX_ATTRIBUTES =>
            {
                span.encoded = Some(encoded);
            }
            span => {
                if span.is_recording() {
                    span.set_attributes(fallback());
                }
            }
        }
    }

    /// Gives the span the name and attributes in `packed`: kept as they are by a native span
    /// (encoded from the buffer when it ends), turned into `KeyValue`s for other spans.
    pub(crate) fn set_packed(&mut self, packed: Box<PackedAttributes>) {
        use opentelemetry::trace::Span as _;
        match self {
            KitSpan::Native(span)
                if span.recording
                    && span.packed.is_none()
                    && span.attribute_count() + packed.len() <= MAX_ATTRIBUTES =>
            {
                span.packed = Some(packed);
            }
            span => {
                if span.is_recording() {
                    if let Some(name) = packed.name() {
                        span.update_name(name.to_owned());
                    }
                    span.set_attributes(packed.to_key_values());
                }
                PackedAttributes::recycle(packed);
            }
        }
    }
}

impl KitTracer {
    fn start(&self, builder: SpanBuilder, parent: &Context) -> KitSpan {
        match &self.native {
            Some(native) => KitSpan::Native(native.start(builder, parent)),
            None => KitSpan::Sdk(self.sdk.build_with_context(builder, parent)),
        }
    }
}

/// The OpenTelemetry SDK's default span limits, which the native spans keep too.
const MAX_ATTRIBUTES: usize = 128;
const MAX_EVENTS: usize = 128;
const MAX_LINKS: usize = 128;

/// Starts [`NativeSpan`]s (of the kit's scope): the provider's sampler and id generator, and the
/// export queue their spans go to when they end.
#[derive(Debug)]
pub(crate) struct NativeTracer {
    queue: Arc<SpanQueue>,
    sampler: XrayAwareSampler,
    ids: XrayIdGenerator,
}

impl NativeTracer {
    pub(super) fn new(queue: Arc<SpanQueue>, sampler: XrayAwareSampler) -> Self {
        Self {
            queue,
            sampler,
            ids: XrayIdGenerator::default(),
        }
    }

    /// Starts a span as the SDK's tracer would: same parent rules, sampler call, flags, trace
    /// state and limits.
    fn start(self: &Arc<Self>, builder: SpanBuilder, parent: &Context) -> NativeSpan {
        let kind = builder.span_kind.unwrap_or(SpanKind::Internal);
        let mut span = NativeSpan {
            context: SpanContext::empty_context(),
            recording: false,
            parent_span_id: SpanId::INVALID,
            parent_is_remote: false,
            kind,
            name: builder.name,
            start: SystemTime::UNIX_EPOCH,
            attributes: Vec::new(),
            dropped_attributes: 0,
            events: Vec::new(),
            dropped_events: 0,
            links: Vec::new(),
            dropped_links: 0,
            status: Status::Unset,
            packed: None,
            encoded: None,
            name_updated: false,
            tracer: Arc::clone(self),
        };
        if parent.is_telemetry_suppressed() {
            return span;
        }
        let parent_span = parent.span();
        let parent_context = Some(parent_span.span_context()).filter(|sc| sc.is_valid());
        let (trace_id, flags) = match parent_context {
            Some(sc) => {
                span.parent_span_id = sc.span_id();
                span.parent_is_remote = sc.is_remote();
                (sc.trace_id(), sc.trace_flags())
            }
            None => (self.ids.new_trace_id(), TraceFlags::default()),
        };
        let mut attributes = builder.attributes.unwrap_or_default();
        let mut links = builder.links.unwrap_or_default();
        let result = self.sampler.should_sample(
            Some(parent),
            trace_id,
            &span.name,
            &span.kind,
            &attributes,
            &links,
        );
        let sampled = match result.decision {
            SamplingDecision::Drop => None,
            SamplingDecision::RecordOnly => Some(false),
            SamplingDecision::RecordAndSample => Some(true),
        };
        let span_id = self.ids.new_span_id();
        let flags = flags.with_sampled(sampled == Some(true));
        let trace_state: TraceState = result.trace_state;
        span.context = SpanContext::new(trace_id, span_id, flags, false, trace_state);
        if sampled.is_none() {
            return span;
        }
        attributes.extend(result.attributes);
        span.dropped_attributes = saturating_u32(attributes.len().saturating_sub(MAX_ATTRIBUTES));
        attributes.truncate(MAX_ATTRIBUTES);
        span.dropped_links = saturating_u32(links.len().saturating_sub(MAX_LINKS));
        links.truncate(MAX_LINKS);
        let mut events = builder.events.unwrap_or_default();
        span.dropped_events = saturating_u32(events.len().saturating_sub(MAX_EVENTS));
        events.truncate(MAX_EVENTS);
        span.events = events;
        span.attributes = attributes;
        span.links = links;
        span.recording = true;
        span.start = builder.start_time.unwrap_or_else(SystemTime::now);
        span
    }
}

fn saturating_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A span of the kit's [`NativeTracer`]: the OpenTelemetry `Span` API over plain fields,
/// encoded into the export queue when it ends (or is dropped).
#[derive(Debug)]
pub(crate) struct NativeSpan {
    context: SpanContext,
    /// Recording and not ended yet.
    recording: bool,
    parent_span_id: SpanId,
    parent_is_remote: bool,
    kind: SpanKind,
    name: Cow<'static, str>,
    start: SystemTime,
    attributes: Vec<KeyValue>,
    dropped_attributes: u32,
    events: Vec<Event>,
    dropped_events: u32,
    links: Vec<Link>,
    dropped_links: u32,
    status: Status,
    /// Attributes (and the name) kept in one buffer: see [`KitSpan::set_packed`].
    packed: Option<Box<PackedAttributes>>,
    /// Attributes encoded beforehand: see [`KitSpan::set_encoded`].
    encoded: Option<Arc<EncodedAttributes>>,
    /// `update_name` was called: the name wins over the packed one.
    name_updated: bool,
    tracer: Arc<NativeTracer>,
}

impl NativeSpan {
    fn attribute_count(&self) -> usize {
        self.attributes.len()
            + self.packed.as_ref().map_or(0, |packed| packed.len())
            + self.encoded.as_ref().map_or(0, |encoded| encoded.len())
    }
}

impl opentelemetry::trace::Span for NativeSpan {
    fn add_event_with_timestamp<T>(
        &mut self,
        name: T,
        timestamp: SystemTime,
        attributes: Vec<KeyValue>,
    ) where
        T: Into<Cow<'static, str>>,
    {
        if !self.recording {
            return;
        }
        if self.events.len() < MAX_EVENTS {
            self.events.push(Event::new(name, timestamp, attributes, 0));
        } else {
            self.dropped_events = self.dropped_events.saturating_add(1);
        }
    }

    fn span_context(&self) -> &SpanContext {
        &self.context
    }

    fn is_recording(&self) -> bool {
        self.recording
    }

    fn set_attribute(&mut self, attribute: KeyValue) {
        if !self.recording {
            return;
        }
        if self.attribute_count() < MAX_ATTRIBUTES {
            self.attributes.push(attribute);
        } else {
            self.dropped_attributes = self.dropped_attributes.saturating_add(1);
        }
    }

    fn set_status(&mut self, status: Status) {
        // As the SDK: Ok > Error > Unset, a status never goes down.
        if self.recording && status > self.status {
            self.status = status;
        }
    }

    fn update_name<T>(&mut self, new_name: T)
    where
        T: Into<Cow<'static, str>>,
    {
        if self.recording {
            self.name = new_name.into();
            self.name_updated = true;
        }
    }

    fn add_link(&mut self, span_context: SpanContext, attributes: Vec<KeyValue>) {
        if !self.recording || !span_context.is_valid() {
            return;
        }
        if self.links.len() < MAX_LINKS {
            self.links.push(Link::new(span_context, attributes, 0));
        } else {
            self.dropped_links = self.dropped_links.saturating_add(1);
        }
    }

    fn end_with_timestamp(&mut self, timestamp: SystemTime) {
        let was_recording = std::mem::replace(&mut self.recording, false);
        let packed = self.packed.take();
        let encoded = self.encoded.take();
        if was_recording && self.context.is_sampled() {
            self.export(timestamp, packed.as_deref(), encoded.as_deref());
        }
        if let Some(packed) = packed {
            PackedAttributes::recycle(packed);
        }
    }
}

impl NativeSpan {
    /// Encodes the ended span into the export queue.
    fn export(
        &self,
        end: SystemTime,
        packed: Option<&PackedAttributes>,
        encoded: Option<&EncodedAttributes>,
    ) {
        let packed_name = packed
            .and_then(PackedAttributes::name)
            .filter(|_| !self.name_updated);
        let fields = SpanFields {
            context: &self.context,
            parent_span_id: self.parent_span_id,
            parent_is_remote: self.parent_is_remote,
            kind: &self.kind,
            name: packed_name.unwrap_or(&self.name),
            start: self.start,
            end,
            attributes: &self.attributes,
            packed,
            encoded,
            dropped_attributes: self.dropped_attributes,
            events: &self.events,
            dropped_events: self.dropped_events,
            links: &self.links,
            dropped_links: self.dropped_links,
            status: &self.status,
        };
        self.tracer.queue.push_kit(|buf| append_span(buf, &fields));
    }
}

impl Drop for NativeSpan {
    fn drop(&mut self) {
        use opentelemetry::trace::Span as _;
        self.end();
    }
}

impl opentelemetry::trace::Span for KitSpan {
    fn add_event_with_timestamp<T>(
        &mut self,
        name: T,
        timestamp: std::time::SystemTime,
        attributes: Vec<opentelemetry::KeyValue>,
    ) where
        T: Into<std::borrow::Cow<'static, str>>,
    {
        each_span!(self, span => span.add_event_with_timestamp(name, timestamp, attributes));
    }

    fn span_context(&self) -> &opentelemetry::trace::SpanContext {
        each_span!(self, span => span.span_context())
    }

    fn is_recording(&self) -> bool {
        each_span!(self, span => span.is_recording())
    }

    fn set_attribute(&mut self, attribute: opentelemetry::KeyValue) {
        each_span!(self, span => span.set_attribute(attribute));
    }

    fn set_status(&mut self, status: opentelemetry::trace::Status) {
        each_span!(self, span => span.set_status(status));
    }

    fn update_name<T>(&mut self, new_name: T)
    where
        T: Into<std::borrow::Cow<'static, str>>,
    {
        each_span!(self, span => span.update_name(new_name));
    }

    fn add_link(
        &mut self,
        span_context: opentelemetry::trace::SpanContext,
        attributes: Vec<opentelemetry::KeyValue>,
    ) {
        each_span!(self, span => span.add_link(span_context, attributes));
    }

    fn end_with_timestamp(&mut self, timestamp: std::time::SystemTime) {
        each_span!(self, span => span.end_with_timestamp(timestamp));
    }
}

pub(super) fn kit_scope() -> InstrumentationScope {
    InstrumentationScope::builder("apprunner")
        .with_version(env!("CARGO_PKG_VERSION"))
        .build()
}

pub(super) fn set_kit_tracer(tracer: Option<KitTracer>) {
    *KIT_TRACER.write().unwrap_or_else(PoisonError::into_inner) = tracer;
    KIT_TRACER_GENERATION.fetch_add(1, Ordering::Release);
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use opentelemetry::trace::{Span as _, TraceId};
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value;
    use opentelemetry_proto::tonic::trace::v1::{Span as ProtoSpan, span, status};
    use opentelemetry_sdk::Resource;
    use opentelemetry_sdk::trace::Sampler;
    use prost::Message as _;

    use super::super::export::Counters;
    use super::*;

    fn native(sampler: Sampler) -> (Arc<NativeTracer>, Arc<SpanQueue>, Arc<Counters>) {
        let counters = Arc::new(Counters::default());
        let (queue, _control) = SpanQueue::new(16, 8, counters.clone());
        let sampler = XrayAwareSampler::new(sampler.clone(), sampler);
        let tracer = Arc::new(NativeTracer::new(queue.clone(), sampler));
        (tracer, queue, counters)
    }

    /// What the collector would receive for the spans queued so far.
    fn exported(queue: &SpanQueue) -> Vec<ProtoSpan> {
        let queued = queue.take_queued();
        let scopes: Vec<(&InstrumentationScope, &[u8])> = queued
            .iter()
            .map(|(scope, spans)| (scope, spans.as_slice()))
            .collect();
        let request =
            super::super::encode::export_request(&scopes, &Resource::builder_empty().build());
        let request = ExportTraceServiceRequest::decode(&request[..]).expect("decodes");
        request
            .resource_spans
            .into_iter()
            .flat_map(|r| r.scope_spans)
            .inspect(|s| assert_eq!(s.scope.as_ref().map(|s| s.name.as_str()), Some("apprunner")))
            .flat_map(|s| s.spans)
            .collect()
    }

    fn remote_parent(sampled: bool) -> Context {
        let flags = if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        Context::new().with_remote_span_context(SpanContext::new(
            TraceId::from(0x5759e988_bd862e3f_e1be46a9_94272793),
            SpanId::from(0x53995c3f42cd8ad8),
            flags,
            true,
            TraceState::NONE,
        ))
    }

    #[test]
    fn a_sampled_span_arrives_as_the_sdk_would_send_it() {
        let (tracer, queue, counters) = native(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)));
        let parent = remote_parent(true);
        let mut span = tracer.start(
            SpanBuilder::from_name("HTTP")
                .with_kind(SpanKind::Server)
                .with_attributes([KeyValue::new("http.request.method", "GET")]),
            &parent,
        );
        assert!(span.is_recording());
        assert_eq!(
            span.span_context().trace_id(),
            TraceId::from(0x5759e988_bd862e3f_e1be46a9_94272793)
        );
        assert!(span.span_context().is_sampled() && !span.span_context().is_remote());
        span.update_name("GET /users/{id}");
        span.set_attribute(KeyValue::new("http.response.status_code", 500_i64));
        span.add_event("exception", vec![KeyValue::new("exception.type", "panic")]);
        span.set_status(Status::error("handler panicked"));
        // A status never goes down: Unset after Error is ignored.
        span.set_status(Status::Unset);
        let span_id = span.span_context().span_id();
        drop(span);

        let spans = exported(&queue);
        assert_eq!(spans.len(), 1);
        let s = &spans[0];
        assert_eq!(s.name, "GET /users/{id}");
        assert_eq!(s.kind, span::SpanKind::Server as i32);
        assert_eq!(
            s.trace_id,
            0x5759e988_bd862e3f_e1be46a9_94272793_u128.to_be_bytes()
        );
        assert_eq!(s.span_id, span_id.to_bytes());
        assert_eq!(s.parent_span_id, 0x53995c3f42cd8ad8_u64.to_be_bytes());
        // Sampled, and "the parent is remote" (OTLP span flags).
        assert_eq!(s.flags, 0x1 | 0x100 | 0x200);
        assert!(s.end_time_unix_nano >= s.start_time_unix_nano && s.start_time_unix_nano > 0);
        let attributes: Vec<(&str, Option<&any_value::Value>)> = s
            .attributes
            .iter()
            .map(|kv| {
                (
                    kv.key.as_str(),
                    kv.value.as_ref().and_then(|v| v.value.as_ref()),
                )
            })
            .collect();
        assert_eq!(
            attributes,
            [
                (
                    "http.request.method",
                    Some(&any_value::Value::StringValue("GET".into()))
                ),
                (
                    "http.response.status_code",
                    Some(&any_value::Value::IntValue(500))
                ),
            ]
        );
        assert_eq!(s.events.len(), 1);
        assert_eq!(s.events[0].name, "exception");
        let status = s.status.as_ref().expect("status");
        assert_eq!(status.code, status::StatusCode::Error as i32);
        assert_eq!(status.message, "handler panicked");
        assert_eq!(counters.snapshot().spans_ended, 1);
    }

    fn attribute_list(span: &ProtoSpan) -> Vec<(String, Option<any_value::Value>)> {
        span.attributes
            .iter()
            .map(|kv| {
                let value = kv.value.as_ref().and_then(|v| v.value.clone());
                (kv.key.clone(), value)
            })
            .collect()
    }

    fn packed_request() -> Box<PackedAttributes> {
        let mut packed = PackedAttributes::new();
        packed.set_name(&["GET", " ", "/users/{id}"]);
        packed.static_str("http.request.method", "GET");
        packed.string("url.path", "/users/7");
        packed.int("server.port", 8080);
        packed
    }

    #[test]
    fn packed_attributes_name_the_span_unless_it_is_renamed() {
        let (tracer, queue, _) = native(Sampler::AlwaysOn);
        let start =
            || KitSpan::Native(tracer.start(SpanBuilder::from_name("HTTP"), &Context::new()));
        let mut span = start();
        span.set_packed(packed_request());
        span.set_attribute(KeyValue::new("http.response.status_code", 200_i64));
        span.end();
        let mut renamed = start();
        renamed.set_packed(packed_request());
        renamed.update_name("custom");
        drop(renamed);

        let spans = exported(&queue);
        assert_eq!(spans.len(), 2);
        assert_eq!(spans[0].name, "GET /users/{id}");
        assert_eq!(
            spans[1].name, "custom",
            "update_name wins over the packed name"
        );
        let string = |s: &str| Some(any_value::Value::StringValue(s.to_owned()));
        assert_eq!(
            attribute_list(&spans[0]),
            [
                (
                    "http.response.status_code".to_owned(),
                    Some(any_value::Value::IntValue(200))
                ),
                ("http.request.method".to_owned(), string("GET")),
                ("url.path".to_owned(), string("/users/7")),
                (
                    "server.port".to_owned(),
                    Some(any_value::Value::IntValue(8080))
                ),
            ]
        );
    }

    #[test]
    fn packed_attributes_count_toward_the_attribute_limit() {
        let (tracer, queue, _) = native(Sampler::AlwaysOn);
        let mut span =
            KitSpan::Native(tracer.start(SpanBuilder::from_name("HTTP"), &Context::new()));
        span.set_packed(packed_request());
        for i in 0..MAX_ATTRIBUTES {
            span.set_attribute(KeyValue::new("i", i as i64));
        }
        span.end();
        let spans = exported(&queue);
        assert_eq!(spans[0].attributes.len(), MAX_ATTRIBUTES);
        assert_eq!(spans[0].dropped_attributes_count, 3);
    }

    #[test]
    fn spans_the_sampler_drops_or_only_records_are_not_exported() {
        let (tracer, queue, counters) = native(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)));
        // Parent-based: a parent that said "not sampled" drops the child.
        let mut dropped = tracer.start(SpanBuilder::from_name("GET /"), &remote_parent(false));
        assert!(!dropped.is_recording());
        assert!(!dropped.span_context().is_sampled());
        assert!(
            dropped.span_context().is_valid(),
            "ids are still made, for propagation"
        );
        dropped.set_attribute(KeyValue::new("ignored", true));
        dropped.end();
        let (off, off_queue, _) = native(Sampler::AlwaysOff);
        off.start(SpanBuilder::from_name("root"), &Context::new())
            .end();
        assert!(exported(&queue).is_empty() && exported(&off_queue).is_empty());
        assert_eq!(counters.snapshot().spans_ended, 0);
    }

    #[test]
    fn root_spans_get_xray_trace_ids_and_limits_hold() {
        let (tracer, queue, _) = native(Sampler::AlwaysOn);
        let mut span = tracer.start(SpanBuilder::from_name("root"), &Context::new());
        let epoch = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let first_32_bits =
            u64::from_str_radix(&span.span_context().trace_id().to_string()[..8], 16).unwrap();
        assert!(
            epoch.abs_diff(first_32_bits) < 60,
            "an X-Ray trace id starts with the time"
        );
        for i in 0..(MAX_ATTRIBUTES + 3) {
            span.set_attribute(KeyValue::new("i", i as i64));
        }
        span.end_with_timestamp(SystemTime::now() + Duration::from_millis(1));
        // Ending twice sends one span.
        span.end();
        let spans = exported(&queue);
        assert_eq!(spans.len(), 1);
        assert!(spans[0].parent_span_id.is_empty());
        assert_eq!(spans[0].attributes.len(), MAX_ATTRIBUTES);
        assert_eq!(spans[0].dropped_attributes_count, 3);
        assert_eq!(spans[0].flags, 0x1 | 0x100, "sampled, parent not remote");
    }
}
