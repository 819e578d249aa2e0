use std::time::Duration;

/// What can go wrong while setting up or shutting down telemetry.
///
/// Every variant names the setting at fault and says what to do about it.
///
/// ```
/// use apprunner::telemetry::{TelemetryConfig, TelemetryError};
///
/// let err = TelemetryConfig::from_lookup(|key| {
///     (key == "OTEL_TRACES_EXPORTER").then(|| "zipkin".to_owned())
/// })
/// .unwrap_err();
/// assert!(matches!(err, TelemetryError::InvalidVar { .. }));
/// assert!(err.to_string().contains("OTEL_TRACES_EXPORTER"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TelemetryError {
    /// An environment variable holds a value the kit does not understand.
    #[error("invalid value {value:?} for {var}: expected {expected}")]
    InvalidVar {
        /// The variable at fault, e.g. `OTEL_TRACES_SAMPLER`.
        var: &'static str,
        /// The value found.
        value: String,
        /// What would have been accepted.
        expected: &'static str,
    },
    /// The OTLP exporter could not be built (bad endpoint, unsupported scheme, ...).
    #[error("cannot build the OTLP span exporter for {endpoint}: {reason}")]
    Exporter {
        /// The endpoint that was configured, or `default` when none was.
        endpoint: String,
        /// Why the exporter could not be built.
        reason: String,
    },
    /// A file named by a variable (a certificate or key) cannot be used.
    #[error("cannot use {path:?} given by {var}: {reason}")]
    File {
        /// The variable naming the file, e.g. `OTEL_EXPORTER_OTLP_CERTIFICATE`.
        var: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// Why it cannot be used.
        reason: String,
    },
    /// A global `tracing` subscriber was already installed by someone else.
    #[error(
        "a global tracing subscriber is already installed: call apprunner::telemetry::init() once, \
         before any other subscriber, or use TelemetryConfig::install_subscriber(false) and give \
         TelemetryGuard::tracer() to a tracing_opentelemetry layer of your own subscriber"
    )]
    SubscriberAlreadySet,
    /// The background export thread could not be started.
    #[error("cannot start the telemetry export thread: {0}")]
    Thread(#[source] std::io::Error),
    /// Shutdown did not finish within its timeout: spans still queued may be lost.
    #[error(
        "telemetry shutdown did not finish within {0:?}: the collector is slow or unreachable; \
         check OTEL_EXPORTER_OTLP_ENDPOINT or raise the shutdown timeout"
    )]
    ShutdownTimeout(Duration),
    /// Flushing or shutting down the SDK failed.
    #[error("telemetry flush failed: {0}")]
    Flush(String),
}
