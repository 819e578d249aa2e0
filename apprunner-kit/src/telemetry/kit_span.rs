//! The kit's own spans (HTTP SERVER spans, SQL CLIENT spans), made with the OpenTelemetry API
//! directly: with the SDK tracer [`init`](super::init) installed, cached per thread, else with
//! the global provider's tracer (an application that set up OpenTelemetry itself).
#![cfg_attr(
    not(any(feature = "http", feature = "db")),
    allow(
        dead_code,
        reason = "only the HTTP layer and the database pools make kit spans"
    )
)]

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};

use opentelemetry::InstrumentationScope;
use opentelemetry_sdk::trace::SdkTracer;

/// The tracer [`init`](super::init) installed, for the spans the kit makes with the OpenTelemetry API
/// directly (HTTP SERVER spans, SQL CLIENT spans); `None` before `init` and after shutdown.
static KIT_TRACER: RwLock<Option<SdkTracer>> = RwLock::new(None);

/// Bumped whenever [`KIT_TRACER`] changes, so that threads drop their cached copy.
static KIT_TRACER_GENERATION: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Each thread's copy of the installed tracer and the generation it was read at: starting
    /// a span then costs one atomic load instead of a lock and a clone of the tracer.
    static CACHED_TRACER: RefCell<Option<(u64, SdkTracer)>> = const { RefCell::new(None) };
}

fn installed_tracer() -> Option<SdkTracer> {
    KIT_TRACER
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

/// Starts one of the kit's own spans as a child of `parent`: with the SDK tracer
/// [`init`](super::init) installed (no dynamic dispatch, no boxing), else with a tracer of
/// whatever global provider the application installed itself.
pub(crate) fn start_kit_span(
    builder: opentelemetry::trace::SpanBuilder,
    parent: &opentelemetry::Context,
) -> KitSpan {
    use opentelemetry::trace::Tracer as _;
    let generation = KIT_TRACER_GENERATION.load(Ordering::Acquire);
    let mut builder = Some(builder);
    let cached = CACHED_TRACER.with(|cell| {
        // Re-entered from inside a span start (a sampler starting spans): no cache.
        let mut cached = cell.try_borrow_mut().ok()?;
        if cached.as_ref().is_none_or(|(seen, _)| *seen != generation) {
            *cached = installed_tracer().map(|tracer| (generation, tracer));
        }
        let (_, tracer) = cached.as_ref()?;
        let builder = builder.take()?;
        Some(tracer.build_with_context(builder, parent))
    });
    if let Some(span) = cached {
        return KitSpan::Sdk(span);
    }
    let builder = builder.expect("the builder is only taken to start a span");
    match installed_tracer() {
        Some(tracer) => KitSpan::Sdk(tracer.build_with_context(builder, parent)),
        None => KitSpan::Global(
            opentelemetry::global::tracer_with_scope(kit_scope())
                .build_with_context(builder, parent),
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
    Sdk(opentelemetry_sdk::trace::Span),
    Global(opentelemetry::global::BoxedSpan),
}

macro_rules! each_span {
    ($self:ident, $span:ident => $body:expr) => {
        match $self {
            KitSpan::Sdk($span) => $body,
            KitSpan::Global($span) => $body,
        }
    };
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

pub(super) fn set_kit_tracer(tracer: Option<SdkTracer>) {
    *KIT_TRACER.write().unwrap_or_else(PoisonError::into_inner) = tracer;
    KIT_TRACER_GENERATION.fetch_add(1, Ordering::Release);
}
