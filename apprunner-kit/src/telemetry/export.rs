//! The export pipeline: the SDK's batch span processor, the exporter (OTLP or console), the
//! accounting of what happened to each span, and the kit's export thread.
//!
//! Exports run on a small current-thread Tokio runtime owned by the kit, on its own thread
//! (`apprunner-otlp`): the batch processor's thread hands each batch to it and waits. Exports
//! therefore never depend on the application's runtime: they work from a `#[tokio::test]`,
//! while the application's runtime is busy or blocked, and during shutdown after the
//! application's runtime has stopped accepting work. The same thread acts on
//! [`export_soon`].

use std::fmt;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use opentelemetry::trace::{SpanKind, Status};
use opentelemetry::{Array, Context, KeyValue, StringValue, Value};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Span, SpanData, SpanExporter, SpanProcessor,
};
use opentelemetry_sdk::{Resource, trace::SdkTracerProvider};
use tokio::sync::{Notify, oneshot};

use super::config::{TelemetryConfig, TracesExporter};
use super::diagnosis::ExportDiagnosis;
use super::error::TelemetryError;
use super::otlp;
use super::xray::xray_trace_id;

/// Counters of the export pipeline, shared between the processor, the exporter and the guard.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) ended: AtomicU64,
    pub(crate) exported: AtomicU64,
    pub(crate) failed: AtomicU64,
    failing: AtomicBool,
    /// The diagnosis last logged during the current failure.
    last_cause: Mutex<Option<String>>,
}

/// A snapshot of what the export pipeline did with finished spans.
///
/// ```
/// let stats = apprunner::telemetry::ExportStats::default();
/// assert_eq!(stats.spans_dropped(), 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportStats {
    /// Sampled spans that ended and were handed to the batch processor.
    pub spans_ended: u64,
    /// Spans the collector accepted.
    pub spans_exported: u64,
    /// Spans whose export failed (collector down, timeout, rejected).
    pub spans_failed: u64,
}

impl ExportStats {
    /// Spans neither exported nor failed: dropped because the queue was full, or (before
    /// shutdown) still waiting in the queue.
    ///
    /// ```
    /// let stats = apprunner::telemetry::ExportStats { spans_ended: 10, spans_exported: 7, spans_failed: 1 };
    /// assert_eq!(stats.spans_dropped(), 2);
    /// ```
    pub fn spans_dropped(&self) -> u64 {
        self.spans_ended
            .saturating_sub(self.spans_exported + self.spans_failed)
    }
}

impl Counters {
    pub(crate) fn snapshot(&self) -> ExportStats {
        ExportStats {
            spans_ended: self.ended.load(Ordering::Relaxed),
            spans_exported: self.exported.load(Ordering::Relaxed),
            spans_failed: self.failed.load(Ordering::Relaxed),
        }
    }
}

/// Wraps the real exporter: runs each export on the kit's export runtime, bounded by
/// `OTEL_BSP_EXPORT_TIMEOUT`; counts; and logs a failure once (then once on recovery) instead
/// of once per batch.
#[derive(Debug)]
struct ReportingExporter<E> {
    inner: Arc<E>,
    runtime: tokio::runtime::Handle,
    timeout: Duration,
    endpoint: String,
    counters: Arc<Counters>,
    diagnosis: Arc<ExportDiagnosis>,
}

/// Counts an export of `spans` spans, and logs a failure once (then once on recovery) instead
/// of once per batch; `diagnosis`, when the client understood the failure, replaces the
/// SDK's error (and a new cause is logged once more).
pub(crate) fn report_export(
    counters: &Counters,
    endpoint: &str,
    spans: u64,
    result: &OTelSdkResult,
    diagnosis: Option<String>,
) {
    match result {
        Ok(()) => {
            counters.exported.fetch_add(spans, Ordering::Relaxed);
            if let Ok(mut last) = counters.last_cause.lock() {
                *last = None;
            }
            if counters.failing.swap(false, Ordering::Relaxed) {
                tracing::info!(
                    target: "apprunner::telemetry",
                    endpoint = %endpoint,
                    "span export recovered"
                );
            }
        }
        Err(err) => {
            counters.failed.fetch_add(spans, Ordering::Relaxed);
            let was_failing = counters.failing.swap(true, Ordering::Relaxed);
            let new_cause = match (&diagnosis, counters.last_cause.lock()) {
                (Some(line), Ok(mut last)) if last.as_deref() != Some(line.as_str()) => {
                    *last = Some(line.clone());
                    true
                }
                _ => false,
            };
            if !was_failing || new_cause {
                let error = diagnosis.unwrap_or_else(|| err.to_string());
                tracing::warn!(
                    target: "apprunner::telemetry",
                    endpoint = %endpoint,
                    error = %error,
                    "span export failed; spans are dropped and counted until the collector \
                     answers again (logged once)"
                );
            }
        }
    }
}

impl<E: SpanExporter + 'static> SpanExporter for ReportingExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let n = batch.len() as u64;
        let inner = Arc::clone(&self.inner);
        let timeout = self.timeout;
        let result = match self
            .runtime
            .spawn(async move { tokio::time::timeout(timeout, inner.export(batch)).await })
            .await
        {
            Ok(Ok(result)) => result,
            Ok(Err(_elapsed)) => Err(OTelSdkError::Timeout(timeout)),
            Err(stopped) => Err(OTelSdkError::InternalFailure(format!(
                "the export thread stopped: {stopped}"
            ))),
        };
        let diagnosis = self.diagnosis.take().filter(|_| result.is_err());
        report_export(&self.counters, &self.endpoint, n, &result, diagnosis);
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        // Called once, while the provider is built: no export holds the exporter yet.
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.set_resource(resource);
        }
    }
}

/// Counts sampled spans handed to the batch processor, and cuts string attribute values to
/// `OTEL_[SPAN_]ATTRIBUTE_VALUE_LENGTH_LIMIT` characters (the SDK has no such limit).
#[derive(Debug)]
struct CountingProcessor<P> {
    inner: P,
    counters: Arc<Counters>,
    value_length_limit: Option<usize>,
}

impl<P: SpanProcessor> SpanProcessor for CountingProcessor<P> {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, mut span: SpanData) {
        if span.span_context.is_sampled() {
            self.counters.ended.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(limit) = self.value_length_limit {
            truncate_values(&mut span, limit);
        }
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

/// `s` cut to at most `limit` characters, or `None` when it is not longer.
fn truncated(s: &str, limit: usize) -> Option<String> {
    let (cut, _) = s.char_indices().nth(limit)?;
    Some(s[..cut].to_owned())
}

fn truncate_value(value: &mut Value, limit: usize) {
    match value {
        Value::String(s) => {
            if let Some(short) = truncated(s.as_str(), limit) {
                *s = StringValue::from(short);
            }
        }
        Value::Array(Array::String(items)) => {
            for item in items {
                if let Some(short) = truncated(item.as_str(), limit) {
                    *item = StringValue::from(short);
                }
            }
        }
        _ => {}
    }
}

fn truncate_attributes(attributes: &mut [KeyValue], limit: usize) {
    for kv in attributes {
        truncate_value(&mut kv.value, limit);
    }
}

/// Applies the attribute value length limit to a span's, its events' and its links'
/// attributes, as the specification asks.
fn truncate_values(span: &mut SpanData, limit: usize) {
    truncate_attributes(&mut span.attributes, limit);
    for event in &mut span.events.events {
        truncate_attributes(&mut event.attributes, limit);
    }
    for link in &mut span.links.links {
        truncate_attributes(&mut link.attributes, limit);
    }
}

/// `OTEL_TRACES_EXPORTER=console`: one readable line per span on standard error.
#[derive(Debug, Default)]
pub(crate) struct ConsoleExporter;

fn kind_name(kind: &SpanKind) -> &'static str {
    match kind {
        SpanKind::Server => "SERVER",
        SpanKind::Client => "CLIENT",
        SpanKind::Producer => "PRODUCER",
        SpanKind::Consumer => "CONSUMER",
        SpanKind::Internal => "INTERNAL",
    }
}

pub(crate) fn console_line(span: &SpanData) -> String {
    let ms = span
        .end_time
        .duration_since(span.start_time)
        .unwrap_or_default()
        .as_secs_f64()
        * 1000.0;
    let status = match &span.status {
        Status::Unset => String::new(),
        Status::Ok => " status=ok".to_owned(),
        Status::Error { description } => format!(" status=error({description})"),
    };
    let mut line = format!(
        "span {} {:>8} {:<40} {:>9.3}ms trace={} span={}{}",
        span.instrumentation_scope.name(),
        kind_name(&span.span_kind),
        span.name,
        ms,
        xray_trace_id(span.span_context.trace_id()),
        span.span_context.span_id(),
        status
    );
    for kv in &span.attributes {
        line.push_str(&format!(" {}={}", kv.key, kv.value));
    }
    line
}

impl SpanExporter for ConsoleExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let mut err = std::io::stderr().lock();
        for span in &batch {
            let _ = writeln!(err, "{}", console_line(span));
        }
        Ok(())
    }
}

/// The kit's export thread: a current-thread runtime driving the OTLP client and the
/// `export_soon` flusher.
pub(crate) struct ExportThread {
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

impl fmt::Debug for ExportThread {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExportThread").finish_non_exhaustive()
    }
}

impl ExportThread {
    /// Stops the runtime (after the provider has been shut down) and joins the thread.
    pub(crate) fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

impl Drop for ExportThread {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The nudge used by [`export_soon`]; `None` when telemetry is not initialised.
static NUDGE: RwLock<Option<Arc<Notify>>> = RwLock::new(None);

/// Set by [`export_soon`], cleared by the export thread when it starts the export it asked for.
static NUDGE_PENDING: AtomicBool = AtomicBool::new(false);

/// Called by the export thread before it exports for a nudge: later calls of [`export_soon`]
/// nudge again.
pub(crate) fn nudge_taken() {
    NUDGE_PENDING.store(false, Ordering::Release);
}

/// Asks the exporter to send queued spans promptly, without waiting for the batch timer.
///
/// Cheap and non-blocking: it only wakes the kit's export thread, which flushes at most once
/// per [`min_flush_interval`](super::TelemetryConfig::min_flush_interval) and coalesces
/// nudges that arrive while a flush is running. The HTTP layer calls it after each response,
/// because App Runner throttles the CPU between requests and a batch timer may not fire while
/// the service is idle: the last request's spans would otherwise wait for the next request.
/// Does nothing when telemetry is not initialised.
///
/// ```
/// apprunner::telemetry::export_soon();
/// ```
pub fn export_soon() {
    // Most calls find a nudge still pending (the export thread clears it when it acts on it):
    // they only read a flag, and requests ending together do not contend on the lock.
    if NUDGE_PENDING.load(Ordering::Relaxed) || NUDGE_PENDING.swap(true, Ordering::AcqRel) {
        return;
    }
    if let Ok(guard) = NUDGE.read()
        && let Some(notify) = guard.as_ref()
    {
        notify.notify_one();
    }
}

fn set_nudge(notify: Option<Arc<Notify>>) {
    if let Ok(mut guard) = NUDGE.write() {
        *guard = notify;
    }
    nudge_taken();
}

pub(crate) fn clear_nudge() {
    set_nudge(None);
}

fn batch_processor<E: SpanExporter + 'static>(
    exporter: E,
    config: &TelemetryConfig,
) -> BatchSpanProcessor {
    let mut batch = BatchConfigBuilder::default();
    if let Some(delay) = config.bsp.schedule_delay {
        batch = batch.with_scheduled_delay(delay);
    }
    batch = batch.with_max_queue_size(config.bsp.max_queue_size.unwrap_or(DEFAULT_MAX_QUEUE_SIZE));
    if let Some(size) = config.bsp.max_export_batch_size {
        batch = batch.with_max_export_batch_size(size);
    }
    BatchSpanProcessor::builder(exporter)
        .with_batch_config(batch.build())
        .build()
}

/// What [`pipeline`] returns: the provider to install and the export thread to stop last.
pub(crate) struct Pipeline {
    pub(crate) provider: SdkTracerProvider,
    pub(crate) thread: Option<ExportThread>,
    pub(crate) counters: Arc<Counters>,
}

/// The kit's default of `OTEL_BSP_MAX_QUEUE_SIZE`: four times the SDK's 2048. A server ends
/// two spans or more per request. In the users API's load runs (`benches/README.md`) a queue of
/// 2048 overflowed while one export was in flight: 648 of 739 k spans lost at ~25 k spans/s on
/// two saturated cores (issue 24's method), ~400 of 770 k at ~30 k spans/s; 8192 lost none.
/// The price is memory, paid up front: the SDK's queue is a `sync_channel` whose slots (one
/// `SpanData`, ~550 bytes) are allocated and written when the pipeline starts, so 8192 slots
/// hold 3.4 MB more than 2048 for the life of the process, spans or not.
pub(crate) const DEFAULT_MAX_QUEUE_SIZE: usize = 8192;

/// The default of `OTEL_BSP_EXPORT_TIMEOUT`.
const DEFAULT_BSP_EXPORT_TIMEOUT: Duration = Duration::from_secs(30);

/// Builds the provider for `config`, starting the export thread when spans leave the process.
pub(crate) fn pipeline(
    config: &TelemetryConfig,
    builder: opentelemetry_sdk::trace::TracerProviderBuilder,
) -> Result<Pipeline, TelemetryError> {
    let counters = Arc::new(Counters::default());
    let diagnosis = Arc::new(ExportDiagnosis::default());
    match config.traces_exporter() {
        TracesExporter::None => Ok(Pipeline {
            provider: builder.build(),
            thread: None,
            counters,
        }),
        TracesExporter::Otlp => {
            // Start-up errors of the signing setup (gRPC asked for, no region) come first.
            config.signing()?;
            let config_for_thread = config.clone();
            let diagnosis_for_thread = diagnosis.clone();
            batch_pipeline(
                config,
                builder,
                counters,
                diagnosis,
                otlp::endpoint_label(config),
                move || otlp::build(&config_for_thread, diagnosis_for_thread),
            )
        }
        TracesExporter::Console => batch_pipeline(
            config,
            builder,
            counters,
            diagnosis,
            "console".to_owned(),
            || Ok(ConsoleExporter),
        ),
    }
}

/// The SDK's batch processor around `build`'s exporter, which is built and driven on the
/// export thread; that thread also flushes on [`export_soon`].
fn batch_pipeline<E: SpanExporter + 'static>(
    config: &TelemetryConfig,
    builder: opentelemetry_sdk::trace::TracerProviderBuilder,
    counters: Arc<Counters>,
    diagnosis: Arc<ExportDiagnosis>,
    endpoint: String,
    build: impl FnOnce() -> Result<E, TelemetryError> + Send + 'static,
) -> Result<Pipeline, TelemetryError> {
    let (exporter_tx, exporter_rx) = std::sync::mpsc::channel();
    let (provider_tx, provider_rx) = oneshot::channel::<SdkTracerProvider>();
    let min_interval = config.min_flush_interval;
    let thread = spawn_export_thread(move |nudge| {
        // Built on the export runtime, where the exporter's client spawns its tasks.
        let _ = exporter_tx.send((build()?, tokio::runtime::Handle::current()));
        Ok(async move {
            let Ok(provider) = provider_rx.await else {
                return;
            };
            let mut last = Instant::now() - min_interval;
            loop {
                nudge.notified().await;
                let since = last.elapsed();
                if since < min_interval {
                    tokio::time::sleep(min_interval - since).await;
                }
                nudge_taken();
                let p = provider.clone();
                // force_flush blocks until the batch thread has exported, and that export
                // runs on this runtime: wait on the blocking pool.
                let _ = tokio::task::spawn_blocking(move || p.force_flush()).await;
                last = Instant::now();
            }
        })
    })?;
    let (exporter, runtime) = exporter_rx.recv().map_err(|_| {
        TelemetryError::Thread(std::io::Error::other(
            "the export thread stopped while building the exporter",
        ))
    })?;
    let exporter = ReportingExporter {
        inner: Arc::new(exporter),
        runtime,
        timeout: config
            .bsp
            .export_timeout
            .unwrap_or(DEFAULT_BSP_EXPORT_TIMEOUT),
        endpoint,
        counters: counters.clone(),
        diagnosis,
    };
    let processor = CountingProcessor {
        inner: batch_processor(exporter, config),
        counters: counters.clone(),
        value_length_limit: config.limits.attribute_value_length,
    };
    let provider = builder.with_span_processor(processor).build();
    let _ = provider_tx.send(provider.clone());
    Ok(Pipeline {
        provider,
        thread: Some(thread),
        counters,
    })
}

/// Starts the export thread: a current-thread runtime on which `start` runs first (given the
/// [`export_soon`] nudge) and whose future then runs until the thread is stopped. An error of
/// `start` stops the thread and is returned.
fn spawn_export_thread<F>(
    start: impl FnOnce(Arc<Notify>) -> Result<F, TelemetryError> + Send + 'static,
) -> Result<ExportThread, TelemetryError>
where
    F: Future<Output = ()> + 'static,
{
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let notify = Arc::new(Notify::new());
    let notify_for_thread = notify.clone();
    let handle = std::thread::Builder::new()
        .name("apprunner-otlp".to_owned())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = started_tx.send(Err(TelemetryError::Thread(e)));
                    return;
                }
            };
            let task = {
                let _enter = rt.enter();
                start(notify_for_thread)
            };
            let task = match task {
                Ok(task) => {
                    let _ = started_tx.send(Ok(()));
                    task
                }
                Err(e) => {
                    let _ = started_tx.send(Err(e));
                    return;
                }
            };
            rt.block_on(async move {
                tokio::select! {
                    _ = stop_rx => {}
                    () = task => {}
                }
            });
            // Dropping `rt` here cancels the OTLP connection tasks; the provider was shut down
            // before `stop` was signalled.
            rt.shutdown_timeout(Duration::from_secs(1));
        })
        .map_err(TelemetryError::Thread)?;
    let mut thread = ExportThread {
        stop: Some(stop_tx),
        handle: Some(handle),
    };
    match started_rx.recv() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            thread.stop();
            return Err(e);
        }
        Err(_) => {
            thread.stop();
            return Err(TelemetryError::Thread(std::io::Error::other(
                "the export thread stopped while starting",
            )));
        }
    }
    set_nudge(Some(notify));
    Ok(thread)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_count_drops() {
        let s = ExportStats {
            spans_ended: 5,
            spans_exported: 4,
            spans_failed: 0,
        };
        assert_eq!(s.spans_dropped(), 1);
    }

    #[test]
    fn values_are_cut_to_the_length_limit_in_characters() {
        assert_eq!(truncated("héllo", 2).as_deref(), Some("hé"));
        assert_eq!(truncated("héllo", 5), None);
        assert_eq!(truncated("", 0), None);
        let mut value = Value::Array(Array::String(vec!["abcdef".into(), "ab".into()]));
        truncate_value(&mut value, 3);
        assert_eq!(
            value,
            Value::Array(Array::String(vec!["abc".into(), "ab".into()]))
        );
        let mut number = Value::I64(123_456);
        truncate_value(&mut number, 1);
        assert_eq!(number, Value::I64(123_456), "only strings are cut");
    }
}
