//! Tracing set up by hand: `tracing-subscriber` (JSON logs) plus, unless `OTEL_SDK_DISABLED`,
//! `tracing-opentelemetry` over the SDK's batch span processor and the OTLP/gRPC exporter, with
//! X-Ray trace ids and X-Ray + W3C propagation.
//!
//! The only additions to the textbook set-up are two counters (an atomic add per span and one
//! per export) so that the process can say at shutdown how many spans it lost, as the kit does.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::http::HeaderMap;
use opentelemetry::propagation::{Extractor, TextMapCompositePropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{Context, global};
use opentelemetry_aws::trace::{XrayIdGenerator, XrayPropagator};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchSpanProcessor, SdkTracerProvider, Span, SpanData, SpanExporter, SpanProcessor,
};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The log filter without `RUST_LOG` (the kit's default minus its own targets).
const DEFAULT_LOG_FILTER: &str = "info,sqlx::postgres::notice=warn";

/// What `main` keeps to flush the spans at exit; `None` inside when tracing is off.
#[derive(Debug)]
pub(crate) struct Telemetry {
    provider: Option<SdkTracerProvider>,
    counts: Arc<Counts>,
}

/// Spans handed to the batch processor, and what became of them.
#[derive(Debug, Default)]
struct Counts {
    ended: AtomicU64,
    exported: AtomicU64,
    failed: AtomicU64,
}

/// Installs the global subscriber: JSON lines on standard output, and the OpenTelemetry layer
/// unless `OTEL_SDK_DISABLED=true`. Call inside the Tokio runtime (the tonic exporter spawns
/// its connection there).
pub(crate) fn init() -> Result<Telemetry, Box<dyn std::error::Error>> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| DEFAULT_LOG_FILTER.into());
    let logs = tracing_subscriber::fmt::layer().json();
    let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    let counts = Arc::new(Counts::default());
    if disabled {
        tracing_subscriber::registry()
            .with(filter)
            .with(logs)
            .try_init()?;
        return Ok(Telemetry {
            provider: None,
            counts,
        });
    }

    // OTEL_EXPORTER_OTLP_ENDPOINT (default http://localhost:4317), OTEL_SERVICE_NAME,
    // OTEL_TRACES_SAMPLER and OTEL_BSP_* are read by the SDK and the exporter themselves.
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()?;
    let processor = BatchSpanProcessor::builder(CountingExporter {
        inner: exporter,
        counts: Arc::clone(&counts),
    })
    .build();
    let provider = SdkTracerProvider::builder()
        .with_id_generator(XrayIdGenerator::default())
        .with_span_processor(CountingProcessor {
            inner: processor,
            counts: Arc::clone(&counts),
        })
        .with_resource(Resource::builder().build())
        .build();
    global::set_text_map_propagator(TextMapCompositePropagator::new(vec![
        Box::new(XrayPropagator::default()),
        Box::new(TraceContextPropagator::new()),
    ]));
    let spans = tracing_opentelemetry::layer().with_tracer(provider.tracer("baseline-users-api"));
    tracing_subscriber::registry()
        .with(filter)
        .with(logs)
        .with(spans)
        .try_init()?;
    Ok(Telemetry {
        provider: Some(provider),
        counts,
    })
}

impl Telemetry {
    /// Flushes and shuts the tracer provider down, then logs one line with the span counts.
    pub(crate) fn shutdown(mut self) {
        let Some(provider) = self.provider.take() else {
            return;
        };
        let result = provider.shutdown_with_timeout(Duration::from_secs(10));
        let ended = self.counts.ended.load(Ordering::Relaxed);
        let exported = self.counts.exported.load(Ordering::Relaxed);
        let failed = self.counts.failed.load(Ordering::Relaxed);
        // Dropped: ended but neither exported nor failed (the queue was full).
        let dropped = ended.saturating_sub(exported + failed);
        tracing::info!(
            spans_ended = ended,
            spans_exported = exported,
            spans_failed = failed,
            spans_dropped = dropped,
            shutdown = ?result,
            "telemetry shut down"
        );
    }
}

/// Counts the spans that end (before the batch processor may drop them from a full queue).
#[derive(Debug)]
struct CountingProcessor<P> {
    inner: P,
    counts: Arc<Counts>,
}

impl<P: SpanProcessor> SpanProcessor for CountingProcessor<P> {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        self.counts.ended.fetch_add(1, Ordering::Relaxed);
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// Counts the spans of successful and failed exports.
#[derive(Debug)]
struct CountingExporter<E> {
    inner: E,
    counts: Arc<Counts>,
}

impl<E: SpanExporter> SpanExporter for CountingExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len() as u64;
        let result = self.inner.export(batch).await;
        let counter = if result.is_ok() {
            &self.counts.exported
        } else {
            &self.counts.failed
        };
        counter.fetch_add(spans, Ordering::Relaxed);
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The parent context in a request's headers (`X-Amzn-Trace-Id`, `traceparent`), through the
/// global propagator (a no-op one when tracing is off).
pub(crate) fn parent_context(headers: &HeaderMap) -> Context {
    global::get_text_map_propagator(|propagator| propagator.extract(&HeaderExtractor(headers)))
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|name| name.as_str()).collect()
    }
}
