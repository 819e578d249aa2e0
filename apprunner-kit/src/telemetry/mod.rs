//! OpenTelemetry for App Runner and X-Ray, in one call.
//!
//! [`init`] installs, from the `OTEL_*` environment (see [`TelemetryConfig`]):
//!
//! - a tracer provider whose trace ids X-Ray accepts ([`XrayIdGenerator`], `opentelemetry_aws`'s
//!   generator: the first 8 hex digits are the epoch seconds);
//! - the global propagator (`OTEL_PROPAGATORS`, default `xray,tracecontext,baggage`), so an
//!   incoming `X-Amzn-Trace-Id` from App Runner's front end is continued. A header without a
//!   `Sampled` field is treated as sampled, and `Sampled=?` lets this service decide, instead of
//!   silently dropping the trace. When a valid `traceparent` arrives too, the X-Ray header wins
//!   unless `APPRUNNER_TRACE_HEADER_PRECEDENCE=tracecontext` ([`TraceHeaderPrecedence`]); a
//!   `traceparent` that breaks the W3C grammar is ignored;
//! - OTLP export with `opentelemetry-otlp` (gRPC to `http://localhost:4317` by default, where
//!   App Runner's managed collector listens, or http/protobuf), over TLS where the endpoint is
//!   `https://` (`OTEL_EXPORTER_OTLP_CERTIFICATE` and mutual TLS supported), gzip on request,
//!   transient failures retried with backoff within the export timeout. Spans go through the
//!   SDK's batch processor and are exported on the kit's own thread: a collector that is down
//!   or slow never blocks the service, failures are logged once, and spans that do not fit the
//!   bounded queue are dropped and counted ([`TelemetryGuard::stats`]). The kit's own HTTP and
//!   SQL spans are ordinary SDK spans of the same provider;
//! - the global `tracing` subscriber: `tracing-opentelemetry` turns `tracing` spans into
//!   OpenTelemetry spans, and log lines are JSON (with `trace_id` in X-Ray form and `span_id`)
//!   when standard output is not a terminal, readable text when it is. `RUST_LOG` filters logs.
//!
//! # Shutdown
//!
//! [`TelemetryGuard::shutdown`] flushes every finished span and waits at most the configured
//! timeout. Dropping the guard does the same as a fallback. `std::process::exit` skips
//! destructors, so a process that calls it loses whatever is still queued:
//! `#[apprunner::main]` therefore returns an `ExitCode` from `main` after the explicit
//! shutdown and never calls `exit` itself. Do the same in hand-written mains.
//!
//! ```no_run
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let telemetry = apprunner::telemetry::init()?;
//!     tracing::info_span!("work").in_scope(|| tracing::info!("traced"));
//!     telemetry.shutdown().await?;
//!     Ok(())
//! }
//! ```

mod config;
mod ecs;
mod error;
mod export;
mod kit_span;
mod logs;
mod otlp;
mod resource;
#[cfg(feature = "xray-otlp")]
mod sigv4;
mod xray;

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

pub use config::{LogFormat, OtlpProtocol, PropagatorKind, TelemetryConfig, TracesExporter};
pub use error::TelemetryError;
pub use export::{ExportStats, export_soon};
pub use logs::JsonFormat;
#[cfg(feature = "http")]
pub(crate) use xray::xray_header;
pub use xray::{
    TraceHeaderPrecedence, XrayIdGenerator, XrayPropagator, current_xray_trace_id, xray_trace_id,
};

use export::{Counters, ExportThread};
#[cfg(feature = "db")]
pub(crate) use kit_span::KitSpan;
#[cfg(any(feature = "http", feature = "db"))]
pub(crate) use kit_span::start_kit_span;
use kit_span::{kit_scope, set_kit_tracer};

/// Initialises telemetry from the environment: `TelemetryConfig::from_env()?.init()`.
///
/// ```no_run
/// # async fn run() -> Result<(), apprunner::telemetry::TelemetryError> {
/// let telemetry = apprunner::telemetry::init()?;
/// // ... serve ...
/// telemetry.shutdown().await?;
/// # Ok(()) }
/// ```
pub fn init() -> Result<TelemetryGuard, TelemetryError> {
    TelemetryConfig::from_env()?.init()
}

fn env_filter(var: &'static str, directives: &str) -> Result<EnvFilter, TelemetryError> {
    EnvFilter::try_new(directives).map_err(|_| TelemetryError::InvalidVar {
        var,
        value: directives.to_owned(),
        expected: "tracing filter directives such as `info` or `info,my_crate=debug`",
    })
}

impl TelemetryConfig {
    /// Installs the tracer provider, the propagator and (unless disabled) the global `tracing`
    /// subscriber. Call it once per process; it does not need a Tokio runtime.
    ///
    /// ```no_run
    /// let telemetry = apprunner::telemetry::TelemetryConfig::from_env()?
    ///     .service_name("users-api")
    ///     .init()?;
    /// # drop(telemetry);
    /// # Ok::<(), apprunner::telemetry::TelemetryError>(())
    /// ```
    pub fn init(self) -> Result<TelemetryGuard, TelemetryError> {
        let log_filter = env_filter("RUST_LOG", &self.log_filter)?;
        let span_filter = env_filter("APPRUNNER_SPAN_FILTER", &self.span_filter)?;

        let (sampler, root) = if self.disabled {
            config::SamplerSetting::AlwaysOff.build()
        } else {
            self.sampler.build()
        };
        let sampler = xray::XrayAwareSampler::new(sampler, root);
        let builder = SdkTracerProvider::builder()
            .with_id_generator(XrayIdGenerator::default())
            .with_sampler(sampler)
            .with_span_limits(self.limits.sdk())
            .with_resource(resource::resource(&self));
        let export::Pipeline {
            provider,
            thread,
            counters,
        } = export::pipeline(&self, builder)?;

        let tracer = provider.tracer_with_scope(kit_scope());
        let mut guard = TelemetryGuard {
            provider: Some(provider.clone()),
            thread,
            counters,
            tracer: tracer.clone(),
            shutdown_timeout: self.shutdown_timeout,
        };

        if self.install_subscriber {
            // Source locations, thread ids and busy/idle timings would only add noise to
            // X-Ray segments (and cost on every span).
            let otel_layer = tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_location(false)
                .with_threads(false)
                .with_target(false)
                .with_tracked_inactivity(false)
                .with_filter(span_filter);
            let json = match self.log_format {
                LogFormat::Json => true,
                LogFormat::Text => false,
                LogFormat::Auto => !std::io::IsTerminal::is_terminal(&std::io::stdout()),
            };
            let fmt_layer = if json {
                tracing_subscriber::fmt::layer()
                    .event_format(JsonFormat::default().service_name(self.resolved_service_name()))
                    .with_writer(std::io::stdout)
                    .boxed()
            } else {
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stdout)
                    .boxed()
            };
            let installed = tracing_subscriber::registry()
                .with(otel_layer)
                .with(fmt_layer.with_filter(log_filter))
                .try_init();
            if installed.is_err() {
                // Stop what was started; nothing global has been replaced yet.
                let _ = guard.shutdown_inner();
                return Err(TelemetryError::SubscriberAlreadySet);
            }
        }
        opentelemetry::global::set_text_map_propagator(self.propagator());
        opentelemetry::global::set_tracer_provider(provider);
        set_kit_tracer(Some(guard.tracer.clone()));
        for warning in &self.warnings.0 {
            tracing::warn!(target: "apprunner::telemetry", "{warning}");
        }
        Ok(guard)
    }
}

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
}

impl TelemetryGuard {
    /// Flushes every finished span, stops the exporter and returns what it did.
    ///
    /// Waits at most the configured shutdown timeout
    /// ([`TelemetryConfig::shutdown_timeout`], default 5 s), then returns
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
    /// [`TelemetryConfig::install_subscriber`] is `false`.
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

    fn shutdown_inner(&mut self) -> Result<ExportStats, TelemetryError> {
        let Some(provider) = self.provider.take() else {
            return Ok(self.counters.snapshot());
        };
        export::clear_nudge();
        set_kit_tracer(None);
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
