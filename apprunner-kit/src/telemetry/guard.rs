//! [`TelemetryGuard`]: keeps the pipeline running and shuts it down, flushing every span.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};

use super::error::TelemetryError;
use super::export::{self, Counters, ExportStats, ExportThread};
use super::kit_span::set_kit_tracer;

/// Keeps telemetry running; [`shutdown`](Self::shutdown) flushes every finished span.
///
/// Dropping the guard without calling `shutdown` flushes too (blocking the dropping thread up
/// to the shutdown timeout).
///
/// ```no_run
/// # async fn run() -> Result<(), apprunner::telemetry::TelemetryError> {
/// let telemetry = apprunner::telemetry::init()?;
/// let stats = telemetry.shutdown().await?;
/// assert_eq!(stats.spans_dropped(), 0);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
    thread: Option<ExportThread>,
    counters: Arc<Counters>,
    tracer: SdkTracer,
    shutdown_timeout: Duration,
    /// The X-Ray sampling rules poller, stopped at shutdown.
    #[cfg(feature = "xray-sampling")]
    sampling_poller: Option<super::xray_sampling::Poller>,
}

impl TelemetryGuard {
    pub(super) fn new(
        provider: SdkTracerProvider,
        thread: Option<ExportThread>,
        counters: Arc<Counters>,
        tracer: SdkTracer,
        shutdown_timeout: Duration,
    ) -> Self {
        Self {
            provider: Some(provider),
            thread,
            counters,
            tracer,
            shutdown_timeout,
            #[cfg(feature = "xray-sampling")]
            sampling_poller: None,
        }
    }

    #[cfg(feature = "xray-sampling")]
    pub(super) fn set_sampling_poller(&mut self, poller: Option<super::xray_sampling::Poller>) {
        self.sampling_poller = poller;
    }

    /// Flushes every finished span, stops the exporter and returns what it did.
    ///
    /// Waits at most the configured shutdown timeout
    /// ([`TelemetryConfig::shutdown_timeout`](super::TelemetryConfig::shutdown_timeout), default 5 s), then returns
    /// [`TelemetryError::ShutdownTimeout`]. Runs the blocking part off the async workers.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), apprunner::telemetry::TelemetryError> {
    /// apprunner::telemetry::init()?.shutdown().await?;
    /// # Ok(()) }
    /// ```
    pub async fn shutdown(mut self) -> Result<ExportStats, TelemetryError> {
        if tokio::runtime::Handle::try_current().is_ok() {
            tokio::task::spawn_blocking(move || self.shutdown_inner())
                .await
                .map_err(|e| TelemetryError::Flush(e.to_string()))?
        } else {
            self.shutdown_inner()
        }
    }

    /// Like [`shutdown`](Self::shutdown), for code without an async runtime.
    ///
    /// ```no_run
    /// let telemetry = apprunner::telemetry::init()?;
    /// telemetry.shutdown_blocking()?;
    /// # Ok::<(), apprunner::telemetry::TelemetryError>(())
    /// ```
    pub fn shutdown_blocking(mut self) -> Result<ExportStats, TelemetryError> {
        self.shutdown_inner()
    }

    /// Exports every span finished so far and waits for the collector's answer.
    ///
    /// Blocking; safe to call from any thread, since exports run on the kit's own thread.
    ///
    /// ```no_run
    /// let telemetry = apprunner::telemetry::init()?;
    /// telemetry.force_flush()?;
    /// # Ok::<(), apprunner::telemetry::TelemetryError>(())
    /// ```
    pub fn force_flush(&self) -> Result<(), TelemetryError> {
        match &self.provider {
            Some(p) => p
                .force_flush()
                .map_err(|e| TelemetryError::Flush(e.to_string())),
            None => Ok(()),
        }
    }

    /// What the export pipeline did so far.
    ///
    /// ```no_run
    /// let telemetry = apprunner::telemetry::init()?;
    /// println!("{} spans exported", telemetry.stats().spans_exported);
    /// # Ok::<(), apprunner::telemetry::TelemetryError>(())
    /// ```
    pub fn stats(&self) -> ExportStats {
        self.counters.snapshot()
    }

    /// The tracer, for building your own `tracing-opentelemetry` layer when
    /// [`TelemetryConfig::install_subscriber`](super::TelemetryConfig::install_subscriber) is `false`.
    ///
    /// ```no_run
    /// use tracing_subscriber::layer::SubscriberExt;
    ///
    /// let telemetry = apprunner::telemetry::TelemetryConfig::from_env()?
    ///     .install_subscriber(false)
    ///     .init()?;
    /// let subscriber = tracing_subscriber::registry()
    ///     .with(tracing_opentelemetry::layer().with_tracer(telemetry.tracer()));
    /// # let _ = subscriber;
    /// # Ok::<(), apprunner::telemetry::TelemetryError>(())
    /// ```
    pub fn tracer(&self) -> SdkTracer {
        self.tracer.clone()
    }

    pub(super) fn shutdown_inner(&mut self) -> Result<ExportStats, TelemetryError> {
        let Some(provider) = self.provider.take() else {
            return Ok(self.counters.snapshot());
        };
        export::clear_nudge();
        set_kit_tracer(None);
        #[cfg(feature = "xray-sampling")]
        if let Some(mut poller) = self.sampling_poller.take() {
            poller.stop();
        }
        let result = provider.shutdown_with_timeout(self.shutdown_timeout);
        if let Some(mut thread) = self.thread.take() {
            thread.stop();
        }
        let stats = self.counters.snapshot();
        if stats.spans_dropped() > 0 || stats.spans_failed > 0 {
            tracing::warn!(
                target: "apprunner::telemetry",
                spans_dropped = stats.spans_dropped(),
                spans_failed = stats.spans_failed,
                spans_exported = stats.spans_exported,
                "telemetry shut down with spans lost"
            );
        }
        match result {
            Ok(()) | Err(opentelemetry_sdk::error::OTelSdkError::AlreadyShutdown) => Ok(stats),
            Err(opentelemetry_sdk::error::OTelSdkError::Timeout(d)) => {
                Err(TelemetryError::ShutdownTimeout(d))
            }
            Err(e) => Err(TelemetryError::Flush(e.to_string())),
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        let _ = self.shutdown_inner();
    }
}
