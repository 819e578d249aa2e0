//! The kit's own spans (HTTP SERVER spans, SQL CLIENT spans), started with the OpenTelemetry
//! tracer API directly rather than through the `tracing` bridge: with the SDK tracer
//! [`init`](super::init) installed (cached per thread), else with a tracer of whatever global
//! provider the application installed itself. Either way they are ordinary SDK spans: same
//! sampler, ids, limits, processor and exporter as every other span.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use opentelemetry::InstrumentationScope;
use opentelemetry_sdk::trace::SdkTracer;

#[cfg(any(feature = "db", feature = "client"))]
pub(crate) use spans::KitSpan;
#[cfg(any(feature = "db", feature = "client"))]
pub(crate) use spans::current_parent;
#[cfg(any(feature = "http", feature = "db"))]
pub(crate) use spans::start_kit_span;
#[cfg(feature = "client")]
pub(crate) use spans::start_kit_span_in;

/// The tracer [`init`](super::init) installed; `None` before `init` and after shutdown.
static KIT_TRACER: RwLock<Option<SdkTracer>> = RwLock::new(None);

/// Bumped whenever [`KIT_TRACER`] changes, so that threads drop their cached copy.
static KIT_TRACER_GENERATION: AtomicU64 = AtomicU64::new(0);

/// The `service.name` of the telemetry [`init`](super::init) installed.
static SERVICE_NAME: RwLock<Option<Arc<str>>> = RwLock::new(None);

/// Records the `service.name` of the installed telemetry.
pub(super) fn set_local_service_name(name: Option<Arc<str>>) {
    *SERVICE_NAME.write().unwrap_or_else(PoisonError::into_inner) = name;
}

/// The `service.name` of the telemetry [`init`](super::init) installed, if any: what a span
/// that starts a trace in this service is reported under.
#[cfg(feature = "aws-sdk")]
pub(crate) fn local_service_name() -> Option<Arc<str>> {
    SERVICE_NAME
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

/// The instrumentation scope of the kit's spans.
pub(super) fn kit_scope() -> InstrumentationScope {
    InstrumentationScope::builder("apprunner")
        .with_version(env!("CARGO_PKG_VERSION"))
        .build()
}

/// Installs (or, with `None`, removes) the tracer the kit's spans are started with.
pub(super) fn set_kit_tracer(tracer: Option<SdkTracer>) {
    *KIT_TRACER.write().unwrap_or_else(PoisonError::into_inner) = tracer;
    KIT_TRACER_GENERATION.fetch_add(1, Ordering::Release);
}

/// Starting the kit's spans: only the HTTP layer, the database pools and the traced clients
/// make them.
#[cfg(any(feature = "http", feature = "db", feature = "client"))]
mod spans {
    use std::borrow::Cow;
    use std::cell::RefCell;
    use std::sync::PoisonError;
    use std::sync::atomic::Ordering;
    use std::time::SystemTime;

    #[cfg(any(feature = "db", feature = "client"))]
    use opentelemetry::trace::TraceContextExt as _;
    use opentelemetry::trace::{SpanBuilder, SpanContext, Status, Tracer as _};
    use opentelemetry::{Context, KeyValue};
    use opentelemetry_sdk::trace::SdkTracer;

    use super::{KIT_TRACER, KIT_TRACER_GENERATION, kit_scope};

    thread_local! {
        /// Each thread's copy of the installed tracer and the generation it was read at: starting
        /// a span then costs one atomic load instead of a lock and a clone of the tracer.
        static CACHED_TRACER: RefCell<Option<(u64, Option<SdkTracer>)>> = const { RefCell::new(None) };
    }

    fn installed_tracer() -> Option<SdkTracer> {
        KIT_TRACER
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The parent of a span started now, in code that runs inside a request or a `tracing`
    /// span: the current OpenTelemetry context. The kit's HTTP layer attaches its context, and
    /// `tracing-opentelemetry` (with context activation, its default) attaches the context of
    /// every span it enters. A subscriber built without activation leaves it empty; then the
    /// current `tracing` span is asked.
    #[cfg(any(feature = "db", feature = "client"))]
    pub(crate) fn current_parent() -> Context {
        use tracing_opentelemetry::OpenTelemetrySpanExt as _;
        let cx = Context::current();
        if cx.has_active_span() {
            return cx;
        }
        let current = tracing::Span::current();
        if current.is_none() {
            cx
        } else {
            current.context()
        }
    }

    /// Starts one of the kit's own spans from `builder` (name, kind and attributes, which the
    /// sampler sees) as a child of `parent`.
    pub(crate) fn start_kit_span(builder: SpanBuilder, parent: &Context) -> KitSpan {
        let generation = KIT_TRACER_GENERATION.load(Ordering::Acquire);
        let tracer = CACHED_TRACER.with(|cell| {
            // Re-entered from inside a span start (a sampler starting spans): no cache.
            let mut cached = cell.try_borrow_mut().ok()?;
            if cached.as_ref().is_none_or(|(seen, _)| *seen != generation) {
                *cached = Some((generation, installed_tracer()));
            }
            cached.as_ref().and_then(|(_, tracer)| tracer.clone())
        });
        match tracer.or_else(installed_tracer) {
            Some(tracer) => KitSpan::Sdk(tracer.build_with_context(builder, parent)),
            None => KitSpan::Global(
                opentelemetry::global::tracer_with_scope(kit_scope())
                    .build_with_context(builder, parent),
            ),
        }
    }

    /// Starts one of the kit's spans from `builder` under `parent`, and returns it with the
    /// context whose span it is: what its children and the trace headers it sends carry.
    #[cfg(feature = "client")]
    pub(crate) fn start_kit_span_in(builder: SpanBuilder, parent: Context) -> (KitSpan, Context) {
        use opentelemetry::trace::Span as _;
        let span = start_kit_span(builder, &parent);
        let cx = parent.with_remote_span_context(span.span_context().clone());
        (span, cx)
    }

    /// A span started by [`start_kit_span`].
    #[derive(Debug)]
    #[allow(
        clippy::large_enum_variant,
        reason = "boxing the SDK span would cost an allocation per span, on the hot path"
    )]
    pub(crate) enum KitSpan {
        /// A span of the tracer `init` installed.
        Sdk(opentelemetry_sdk::trace::Span),
        /// A span of the application's own global provider.
        Global(opentelemetry::global::BoxedSpan),
    }

    #[cfg(any(feature = "db", feature = "client"))]
    impl KitSpan {
        /// Marks the operation failed: `error.type` and an ERROR status without a message (an
        /// error's text may quote a URL, a payload or a literal).
        #[cfg(feature = "client")]
        pub(crate) fn fail(&mut self, error_type: impl Into<opentelemetry::Value>) {
            use opentelemetry::trace::Span as _;
            self.set_attribute(KeyValue::new("error.type", error_type));
            self.set_status(Status::error(""));
        }
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
            timestamp: SystemTime,
            attributes: Vec<KeyValue>,
        ) where
            T: Into<Cow<'static, str>>,
        {
            each_span!(self, span => span.add_event_with_timestamp(name, timestamp, attributes));
        }

        fn span_context(&self) -> &SpanContext {
            each_span!(self, span => span.span_context())
        }

        fn is_recording(&self) -> bool {
            each_span!(self, span => span.is_recording())
        }

        fn set_attribute(&mut self, attribute: KeyValue) {
            each_span!(self, span => span.set_attribute(attribute));
        }

        fn set_status(&mut self, status: Status) {
            each_span!(self, span => span.set_status(status));
        }

        fn update_name<T>(&mut self, new_name: T)
        where
            T: Into<Cow<'static, str>>,
        {
            each_span!(self, span => span.update_name(new_name));
        }

        fn add_link(&mut self, span_context: SpanContext, attributes: Vec<KeyValue>) {
            each_span!(self, span => span.add_link(span_context, attributes));
        }

        fn end_with_timestamp(&mut self, timestamp: SystemTime) {
            each_span!(self, span => span.end_with_timestamp(timestamp));
        }
    }
}
