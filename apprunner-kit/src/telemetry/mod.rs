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
//! - with `OTEL_TRACES_SAMPLER=xray`, X-Ray centralized sampling: the console's sampling rules
//!   and reservoir quotas, polled on the kit's own thread (see [`XraySampling`]; feature
//!   `xray-sampling`);
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
mod diagnosis;
mod ecs;
mod error;
mod export;
mod guard;
mod init;
mod kit_span;
mod logs;
mod otlp;
mod resource;
#[cfg(feature = "xray-otlp")]
mod sigv4;
mod xray;
#[cfg(feature = "xray-sampling")]
mod xray_sampling;

pub use config::{LogFormat, OtlpProtocol, TelemetryConfig, TracesExporter, XraySampling};
pub use error::TelemetryError;
pub use export::{ExportStats, export_soon};
pub use guard::TelemetryGuard;
pub use init::init;
pub use logs::JsonFormat;
#[cfg(feature = "http")]
pub(crate) use xray::xray_header;
pub use xray::{
    PropagatorKind, TraceHeaderPrecedence, XrayIdGenerator, XrayPropagator, current_xray_trace_id,
    xray_trace_id,
};

#[cfg(any(feature = "db", feature = "client"))]
pub(crate) use kit_span::KitSpan;
#[cfg(any(feature = "db", feature = "client"))]
pub(crate) use kit_span::current_parent;
#[cfg(feature = "aws-sdk")]
pub(crate) use kit_span::local_service_name;
#[cfg(any(feature = "http", feature = "db"))]
pub(crate) use kit_span::start_kit_span;
#[cfg(feature = "client")]
pub(crate) use kit_span::start_kit_span_in;
