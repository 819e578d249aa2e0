//! `OTEL_*` environment parsing and the [`TelemetryConfig`] builder.

use std::time::Duration;

use super::error::TelemetryError;
use super::xray::{PropagatorKind, TraceHeaderPrecedence};

mod otlp;
mod sampler;
mod sigv4;

pub(crate) use otlp::{BspSettings, EndpointSource, FileSetting, LimitSettings, OtlpEnv};
pub use sampler::XraySampling;
pub(crate) use sampler::{SamplerSetting, parse_sampler};
pub(crate) use sigv4::{Signing, SigningSetting};

/// Settings the kit could not honour but that lose nothing when ignored: logged once, as
/// warnings, as soon as the log subscriber is installed.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Warnings(pub(crate) Vec<String>);

impl Warnings {
    pub(crate) fn push(&mut self, var: &str, value: &str, expected: &str) {
        self.0
            .push(format!("ignoring {var}={value:?}: expected {expected}"));
    }

    /// `value` parsed, or `None` and a warning naming `var`.
    pub(crate) fn number<T: std::str::FromStr>(
        &mut self,
        var: &str,
        value: &str,
        expected: &str,
    ) -> Option<T> {
        let value = value.trim();
        if value.is_empty() {
            return None;
        }
        match value.parse() {
            Ok(n) => Some(n),
            Err(_) => {
                self.push(var, value, &format!("{expected}; the default is used"));
                None
            }
        }
    }
}

/// The log filter without `RUST_LOG`: `info`, minus the OpenTelemetry SDK's own diagnostics
/// (the kit reports export failures and drops itself, once, instead of once per batch) and
/// PostgreSQL notices such as "relation _sqlx_migrations already exists".
pub(crate) const DEFAULT_LOG_FILTER: &str = "info,opentelemetry=off,opentelemetry_sdk=off,opentelemetry_otlp=off,opentelemetry_aws=off,sqlx::postgres::notice=warn";

/// Where finished spans go (`OTEL_TRACES_EXPORTER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TracesExporter {
    /// OTLP to a collector (the default; App Runner runs one on `localhost:4317`).
    Otlp,
    /// One readable line per span on standard error, for local development.
    Console,
    /// Spans are created (trace ids still reach logs) but sent nowhere.
    None,
}

/// The OTLP transport (`OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` / `OTEL_EXPORTER_OTLP_PROTOCOL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OtlpProtocol {
    /// `grpc` (the default, port 4317).
    Grpc,
    /// `http/protobuf` (port 4318, path `/v1/traces`).
    HttpProtobuf,
}

/// How log lines are written to standard output (`APPRUNNER_LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LogFormat {
    /// JSON when standard output is not a terminal (App Runner, CI), text otherwise.
    Auto,
    /// One JSON object per line, with `trace_id` in X-Ray form and `span_id`.
    Json,
    /// Human-readable text.
    Text,
}

/// Everything [`init`](super::init) needs, read from the environment and refined in code.
///
/// A value the kit cannot honour fails start-up, naming the variable, where going on would
/// lose spans (an unreadable certificate, a malformed header); otherwise it is logged once as
/// a warning and the default applies.
///
/// Programmatic settings win over environment variables, except for the service name, whose
/// order is: [`service_name`](Self::service_name), then `OTEL_SERVICE_NAME`, then
/// `service.name` in `OTEL_RESOURCE_ATTRIBUTES`, then
/// [`default_service_name`](Self::default_service_name) (the macro passes the package name).
///
/// | variable | effect |
/// |---|---|
/// | `OTEL_SDK_DISABLED` | `true`: no spans are exported (logs still work) |
/// | `OTEL_SERVICE_NAME` | `service.name` |
/// | `OTEL_RESOURCE_ATTRIBUTES` | `k=v,k2=v2`, percent-decoded, added to the resource |
/// | `OTEL_TRACES_EXPORTER` | `otlp` (default), `console`, `none` |
/// | `OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL` | `grpc` (default), `http/protobuf` (the default, and required, when exports are signed with SigV4) |
/// | `OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT` | collector URL; default `http://localhost:4317` (gRPC) or `http://localhost:4318/v1/traces`; the generic variable gets `v1/traces` appended for http/protobuf, the `TRACES_` one is used as it is |
/// | `OTEL_EXPORTER_OTLP_[TRACES_]HEADERS` | `k=v,k2=v2` (percent-decoded) sent with every export; values never logged |
/// | `OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT` | milliseconds one export may take, retries included (default 10000) |
/// | `OTEL_EXPORTER_OTLP_[TRACES_]COMPRESSION` | `gzip` or `none` (default) |
/// | `OTEL_EXPORTER_OTLP_[TRACES_]CERTIFICATE` | PEM file of CA certificates trusted for the collector (besides the system's) |
/// | `OTEL_EXPORTER_OTLP_[TRACES_]CLIENT_CERTIFICATE`, `..._CLIENT_KEY` | PEM files of the client's certificate and key (mutual TLS) |
/// | `APPRUNNER_OTLP_SIGV4` | SigV4-sign every OTLP/HTTP export for X-Ray (service `xray`) with the `aws-config` credential chain. Unset: on when the endpoint's host is `xray.<region>.amazonaws.com[.cn]`, with that region. `true`: on for any endpoint (a proxy, a VPC endpoint), region from the host, else `AWS_REGION`. A region (`eu-west-1`): on, with that region. `false`: off. With no endpoint set, a region means `https://xray.<region>.amazonaws.com/v1/traces` ([`otlp_sigv4_region`](Self::otlp_sigv4_region)) |
/// | `OTEL_EXPORTER_OTLP_[TRACES_]INSECURE` | `true`: an endpoint without scheme is plain `http://` for gRPC (default `false`: `https://`) |
/// | `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG` | default `parentbased_always_on`; also `always_on`, `always_off`, `traceidratio`, `parentbased_always_off`, `parentbased_traceidratio` (`_ARG`: the ratio), and `xray`: X-Ray centralized sampling, the console's sampling rules polled from a sampling proxy or the X-Ray API (`_ARG`: `endpoint=http://localhost:2000,polling_interval=300`, see [`XraySampling`](super::XraySampling)); a parent's decision always wins |
/// | `OTEL_PROPAGATORS` | `xray`, `tracecontext`, `baggage`, `none`; default `xray,tracecontext,baggage` |
/// | `APPRUNNER_TRACE_HEADER_PRECEDENCE` | `xray` (default) or `tracecontext`: which of `X-Amzn-Trace-Id` and `traceparent` wins when both are valid ([`TraceHeaderPrecedence`](super::TraceHeaderPrecedence)) |
/// | `OTEL_BSP_SCHEDULE_DELAY`, `OTEL_BSP_MAX_QUEUE_SIZE`, `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`, `OTEL_BSP_EXPORT_TIMEOUT` | batch processor (defaults 5000 ms, 8192 — the kit's, four times the SDK's: 2048 lost spans under load —, 512, 30000 ms); the SDK allocates every queue slot at start-up, ~550 bytes each |
/// | `OTEL_[SPAN_]ATTRIBUTE_COUNT_LIMIT`, `OTEL_SPAN_EVENT_COUNT_LIMIT`, `OTEL_SPAN_LINK_COUNT_LIMIT`, `OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT`, `OTEL_LINK_ATTRIBUTE_COUNT_LIMIT` | span limits (default 128 each) |
/// | `OTEL_[SPAN_]ATTRIBUTE_VALUE_LENGTH_LIMIT` | longer string values are cut to this many characters (default: no limit) |
/// | `RUST_LOG` | log filter (default `info`, without the SDK's own diagnostics) |
/// | `APPRUNNER_LOG_FORMAT` | `json`, `text`, `auto` (default) |
/// | `AWS_REGION` / `AWS_DEFAULT_REGION` | `cloud.region`, and `cloud.provider=aws` |
/// | `ECS_CONTAINER_METADATA_URI_V4` | set by ECS: the task metadata gives `cloud.platform=aws_ecs`, `cloud.region`, `cloud.account.id`, `aws.ecs.*` (task, cluster, launch type) and, with the `awslogs` driver, `aws.log.group.names` / `aws.log.stream.names`; at most 1 s of start-up |
///
/// ```
/// use apprunner::telemetry::{TelemetryConfig, TracesExporter};
///
/// let config = TelemetryConfig::from_lookup(|key| match key {
///     "OTEL_TRACES_EXPORTER" => Some("none".to_owned()),
///     _ => None,
/// })?
/// .service_name("users-api");
/// assert_eq!(config.traces_exporter(), TracesExporter::None);
/// # Ok::<(), apprunner::telemetry::TelemetryError>(())
/// ```
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    pub(crate) disabled: bool,
    pub(crate) service_name: Option<String>,
    pub(crate) env_service_name: Option<String>,
    pub(crate) default_service_name: Option<String>,
    pub(crate) service_version: Option<String>,
    pub(crate) resource_attributes: Vec<(String, String)>,
    pub(crate) exporter: TracesExporter,
    pub(crate) protocol: OtlpProtocol,
    /// The variable (or builder) that set the protocol; `None`: the default.
    pub(crate) protocol_source: Option<&'static str>,
    pub(crate) sigv4: SigningSetting,
    pub(crate) endpoint: Option<String>,
    pub(crate) export_timeout: Option<Duration>,
    pub(crate) otlp_env: OtlpEnv,
    pub(crate) sampler: SamplerSetting,
    pub(crate) propagators: Vec<PropagatorKind>,
    pub(crate) trace_header_precedence: TraceHeaderPrecedence,
    pub(crate) log_format: LogFormat,
    pub(crate) log_filter: String,
    pub(crate) span_filter: String,
    pub(crate) region: Option<String>,
    /// `ECS_CONTAINER_METADATA_URI_V4`: the task's metadata endpoint, for the resource.
    pub(crate) ecs_metadata_uri: Option<String>,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) bsp: BspSettings,
    pub(crate) limits: LimitSettings,
    pub(crate) warnings: Warnings,
    pub(crate) install_subscriber: bool,
    pub(crate) min_flush_interval: Duration,
}

fn parse_bool(var: &'static str, value: Option<&str>) -> Result<bool, TelemetryError> {
    match value.map(str::trim) {
        None | Some("") => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some(v) => Err(TelemetryError::InvalidVar {
            var,
            value: v.to_owned(),
            expected: "true or false",
        }),
    }
}

/// Percent-decodes a `OTEL_RESOURCE_ATTRIBUTES` value (W3C baggage octet rules).
fn percent_decode(input: &str) -> String {
    percent_encoding::percent_decode_str(input)
        .decode_utf8_lossy()
        .into_owned()
}

/// Parses `key1=value1,key2=value2` (`OTEL_RESOURCE_ATTRIBUTES`).
pub(crate) fn parse_resource_attributes(
    value: &str,
) -> Result<Vec<(String, String)>, TelemetryError> {
    let mut out = Vec::new();
    for pair in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((k, v)) = pair.split_once('=') else {
            return Err(TelemetryError::InvalidVar {
                var: "OTEL_RESOURCE_ATTRIBUTES",
                value: value.to_owned(),
                expected: "a comma-separated list of key=value pairs",
            });
        };
        let k = k.trim();
        if k.is_empty() {
            return Err(TelemetryError::InvalidVar {
                var: "OTEL_RESOURCE_ATTRIBUTES",
                value: value.to_owned(),
                expected: "a comma-separated list of key=value pairs with non-empty keys",
            });
        }
        out.push((percent_decode(k), percent_decode(v.trim())));
    }
    Ok(out)
}

fn parse_propagators(value: Option<String>) -> Result<Vec<PropagatorKind>, TelemetryError> {
    let Some(value) = value.filter(|v| !v.trim().is_empty()) else {
        return Ok(vec![
            PropagatorKind::Xray,
            PropagatorKind::TraceContext,
            PropagatorKind::Baggage,
        ]);
    };
    let mut out = Vec::new();
    for name in value.split(',').map(|n| n.trim().to_ascii_lowercase()) {
        let kind = match name.as_str() {
            "xray" => PropagatorKind::Xray,
            "tracecontext" => PropagatorKind::TraceContext,
            "baggage" => PropagatorKind::Baggage,
            "none" => return Ok(Vec::new()),
            "" => continue,
            _ => {
                return Err(TelemetryError::InvalidVar {
                    var: "OTEL_PROPAGATORS",
                    value: value.clone(),
                    expected: "a comma-separated list of xray, tracecontext, baggage, or none",
                });
            }
        };
        if !out.contains(&kind) {
            out.push(kind);
        }
    }
    Ok(out)
}

impl TelemetryConfig {
    /// Reads the configuration from the process environment.
    ///
    /// Fails with [`TelemetryError::InvalidVar`] naming the variable when a value is not
    /// understood, rather than silently falling back.
    ///
    /// ```
    /// let config = apprunner::telemetry::TelemetryConfig::from_env()?;
    /// # let _ = config;
    /// # Ok::<(), apprunner::telemetry::TelemetryError>(())
    /// ```
    pub fn from_env() -> Result<Self, TelemetryError> {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    /// Reads the configuration through `lookup` instead of the process environment.
    ///
    /// Useful in tests. With `OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf`, the endpoint, headers
    /// and timeout are read by `opentelemetry-otlp` from the process environment instead
    /// (unless set in code).
    ///
    /// ```
    /// use apprunner::telemetry::{OtlpProtocol, TelemetryConfig};
    ///
    /// let config = TelemetryConfig::from_lookup(|key| {
    ///     (key == "OTEL_EXPORTER_OTLP_PROTOCOL").then(|| "http/protobuf".to_owned())
    /// })?;
    /// assert_eq!(config.otlp_protocol(), OtlpProtocol::HttpProtobuf);
    /// # Ok::<(), apprunner::telemetry::TelemetryError>(())
    /// ```
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, TelemetryError> {
        let disabled = parse_bool("OTEL_SDK_DISABLED", lookup("OTEL_SDK_DISABLED").as_deref())?;

        let exporter = match lookup("OTEL_TRACES_EXPORTER")
            .map(|v| v.trim().to_ascii_lowercase())
            .as_deref()
        {
            None | Some("") | Some("otlp") => TracesExporter::Otlp,
            Some("console") => TracesExporter::Console,
            Some("none") => TracesExporter::None,
            Some(other) => {
                return Err(TelemetryError::InvalidVar {
                    var: "OTEL_TRACES_EXPORTER",
                    value: other.to_owned(),
                    expected: "otlp, console or none",
                });
            }
        };

        let (protocol_var, protocol_value) = match lookup("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") {
            Some(v) if !v.trim().is_empty() => ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", Some(v)),
            _ => (
                "OTEL_EXPORTER_OTLP_PROTOCOL",
                lookup("OTEL_EXPORTER_OTLP_PROTOCOL"),
            ),
        };
        let protocol = match protocol_value.as_deref().map(str::trim) {
            None | Some("") | Some("grpc") => OtlpProtocol::Grpc,
            Some("http/protobuf") => OtlpProtocol::HttpProtobuf,
            Some(other) => {
                return Err(TelemetryError::InvalidVar {
                    var: protocol_var,
                    value: other.to_owned(),
                    expected: "grpc or http/protobuf",
                });
            }
        };

        let resource_attributes = match lookup("OTEL_RESOURCE_ATTRIBUTES") {
            Some(v) => parse_resource_attributes(&v)?,
            None => Vec::new(),
        };

        let log_format = match lookup("APPRUNNER_LOG_FORMAT")
            .map(|v| v.trim().to_ascii_lowercase())
            .as_deref()
        {
            None | Some("") | Some("auto") => LogFormat::Auto,
            Some("json") => LogFormat::Json,
            Some("text") => LogFormat::Text,
            Some(other) => {
                return Err(TelemetryError::InvalidVar {
                    var: "APPRUNNER_LOG_FORMAT",
                    value: other.to_owned(),
                    expected: "json, text or auto",
                });
            }
        };

        let mut warnings = Warnings::default();
        let bsp = BspSettings::from_lookup(&lookup, &mut warnings);
        let limits = LimitSettings::from_lookup(&lookup, &mut warnings);
        let otlp_env = OtlpEnv::from_lookup(&lookup, &mut warnings)?;

        let non_empty = |key: &str| lookup(key).filter(|v| !v.trim().is_empty());

        Ok(Self {
            disabled,
            service_name: None,
            env_service_name: non_empty("OTEL_SERVICE_NAME"),
            default_service_name: None,
            service_version: None,
            resource_attributes,
            exporter,
            protocol,
            protocol_source: protocol_value
                .as_deref()
                .filter(|v| !v.trim().is_empty())
                .map(|_| protocol_var),
            sigv4: SigningSetting::from_value(lookup(sigv4::SIGV4_VAR).as_deref())?,
            endpoint: None,
            export_timeout: None,
            otlp_env,
            sampler: match parse_sampler(
                lookup("OTEL_TRACES_SAMPLER").as_deref(),
                lookup("OTEL_TRACES_SAMPLER_ARG").as_deref(),
            )? {
                #[cfg(feature = "xray-sampling")]
                SamplerSetting::Xray(s) => SamplerSetting::Xray(Box::new(s.with_env_region(
                    non_empty("AWS_REGION").or_else(|| non_empty("AWS_DEFAULT_REGION")),
                )?)),
                other => other,
            },
            propagators: parse_propagators(lookup("OTEL_PROPAGATORS"))?,
            trace_header_precedence: TraceHeaderPrecedence::from_env_value(
                lookup("APPRUNNER_TRACE_HEADER_PRECEDENCE").as_deref(),
            )?,
            log_format,
            log_filter: non_empty("RUST_LOG").unwrap_or_else(|| DEFAULT_LOG_FILTER.to_owned()),
            span_filter: non_empty("APPRUNNER_SPAN_FILTER").unwrap_or_else(|| "info".to_owned()),
            region: non_empty("AWS_REGION").or_else(|| non_empty("AWS_DEFAULT_REGION")),
            ecs_metadata_uri: non_empty("ECS_CONTAINER_METADATA_URI_V4"),
            shutdown_timeout: Duration::from_secs(5),
            bsp,
            limits,
            warnings,
            install_subscriber: true,
            min_flush_interval: Duration::from_millis(200),
        })
    }

    /// Sets `service.name`; wins over `OTEL_SERVICE_NAME`.
    ///
    /// ```
    /// # let config = apprunner::telemetry::TelemetryConfig::from_lookup(|_| None)?;
    /// let config = config.service_name("users-api");
    /// # let _ = config;
    /// # Ok::<(), apprunner::telemetry::TelemetryError>(())
    /// ```
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(name.into());
        self
    }

    /// Sets the `service.name` used when neither code nor the environment names the service
    /// (`#[apprunner::main]` passes the package name).
    ///
    /// ```
    /// # let config = apprunner::telemetry::TelemetryConfig::from_lookup(|_| None)?;
    /// let config = config.default_service_name(env!("CARGO_PKG_NAME"));
    /// # let _ = config;
    /// # Ok::<(), apprunner::telemetry::TelemetryError>(())
    /// ```
    pub fn default_service_name(mut self, name: impl Into<String>) -> Self {
        self.default_service_name = Some(name.into());
        self
    }

    /// Sets `service.version`.
    ///
    /// ```
    /// # let config = apprunner::telemetry::TelemetryConfig::from_lookup(|_| None)?;
    /// let config = config.service_version(env!("CARGO_PKG_VERSION"));
    /// # let _ = config;
    /// # Ok::<(), apprunner::telemetry::TelemetryError>(())
    /// ```
    pub fn service_version(mut self, version: impl Into<String>) -> Self {
        self.service_version = Some(version.into());
        self
    }

    /// Adds a resource attribute (after, and so overriding, `OTEL_RESOURCE_ATTRIBUTES`).
    ///
    /// ```
    /// # let config = apprunner::telemetry::TelemetryConfig::from_lookup(|_| None)?;
    /// let config = config.resource_attribute("cloud.platform", "aws_app_runner");
    /// # let _ = config;
    /// # Ok::<(), apprunner::telemetry::TelemetryError>(())
    /// ```
    pub fn resource_attribute(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.resource_attributes.push((key.into(), value.into()));
        self
    }

    /// Sets the OTLP endpoint (wins over `OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT`).
    ///
    /// For gRPC give `http://host:4317`; for http/protobuf give the base URL
    /// (`http://host:4318`) and `/v1/traces` is appended when no path is given.
    ///
    /// ```
    /// # let config = apprunner::telemetry::TelemetryConfig::from_lookup(|_| None)?;
    /// let config = config.otlp_endpoint("http://127.0.0.1:4317");
    /// # let _ = config;
    /// # Ok::<(), apprunner::telemetry::TelemetryError>(())
    /// ```
    pub fn otlp_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// Sets the OTLP transport (wins over `OTEL_EXPORTER_OTLP_PROTOCOL`).
    ///
    /// ```
    /// # use apprunner::telemetry::OtlpProtocol;
    /// # let config = apprunner::telemetry::TelemetryConfig::from_lookup(|_| None)?;
    /// let config = config.otlp_protocol_set(OtlpProtocol::HttpProtobuf);
    /// # let _ = config;
    /// # Ok::<(), apprunner::telemetry::TelemetryError>(())
    /// ```
    pub fn otlp_protocol_set(mut self, protocol: OtlpProtocol) -> Self {
        self.protocol = protocol;
        self.protocol_source = Some("TelemetryConfig::otlp_protocol_set");
        self
    }

    /// Sets the timeout of one OTLP export call (wins over `OTEL_EXPORTER_OTLP_TIMEOUT`).
    ///
    /// ```
    /// # let config = apprunner::telemetry::TelemetryConfig::from_lookup(|_| None)?;
    /// let config = config.export_timeout(std::time::Duration::from_secs(2));
    /// # let _ = config;
    /// # Ok::<(), apprunner::telemetry::TelemetryError>(())
    /// ```
    pub fn export_timeout(mut self, timeout: Duration) -> Self {
        self.export_timeout = Some(timeout);
        self
    }

    /// Sets where spans go (wins over `OTEL_TRACES_EXPORTER`).
    ///
    /// ```
    /// # use apprunner::telemetry::TracesExporter;
    /// # let config = apprunner::telemetry::TelemetryConfig::from_lookup(|_| None)?;
    /// let config = config.traces_exporter_set(TracesExporter::Console);
    /// # let _ = config;
    /// # Ok::<(), apprunner::telemetry::TelemetryError>(())
    /// ```
    pub fn traces_exporter_set(mut self, exporter: TracesExporter) -> Self {
        self.exporter = exporter;
        self
    }

    /// Sets the log output format (wins over `APPRUNNER_LOG_FORMAT`).
    ///
    /// ```
    /// # use apprunner::telemetry::LogFormat;
    /// # let config = apprunner::telemetry::TelemetryConfig::from_lookup(|_| None)?;
    /// let config = config.log_format(LogFormat::Json);
    /// # let _ = config;
    /// # Ok::<(), apprunner::telemetry::TelemetryError>(())
    /// ```
    pub fn log_format(mut self, format: LogFormat) -> Self {
        self.log_format = format;
        self
    }

    /// How long [`TelemetryGuard::shutdown`](super::TelemetryGuard::shutdown) waits for the
    /// last spans to be exported (default 5 s).
    ///
    /// ```
    /// # let config = apprunner::telemetry::TelemetryConfig::from_lookup(|_| None)?;
    /// let config = config.shutdown_timeout(std::time::Duration::from_secs(3));
    /// # let _ = config;
    /// # Ok::<(), apprunner::telemetry::TelemetryError>(())
    /// ```
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Whether [`init`](Self::init) installs the global `tracing` subscriber (default `true`).
    ///
    /// ```
    /// # let config = apprunner::telemetry::TelemetryConfig::from_lookup(|_| None)?;
    /// let config = config.install_subscriber(false);
    /// # let _ = config;
    /// # Ok::<(), apprunner::telemetry::TelemetryError>(())
    /// ```
    pub fn install_subscriber(mut self, install: bool) -> Self {
        self.install_subscriber = install;
        self
    }

    /// Which trace header continues a request that carries both `X-Amzn-Trace-Id` and a
    /// `traceparent` (wins over `APPRUNNER_TRACE_HEADER_PRECEDENCE`; default: X-Ray, the header
    /// App Runner's front end writes).
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use opentelemetry::propagation::TextMapPropagator;
    /// use opentelemetry::trace::TraceContextExt;
    /// use apprunner::telemetry::{TelemetryConfig, TraceHeaderPrecedence};
    ///
    /// let headers = HashMap::from([
    ///     (
    ///         "x-amzn-trace-id".to_owned(),
    ///         "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1".to_owned(),
    ///     ),
    ///     (
    ///         "traceparent".to_owned(),
    ///         "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned(),
    ///     ),
    /// ]);
    /// let config = TelemetryConfig::from_lookup(|_| None)?
    ///     .trace_header_precedence(TraceHeaderPrecedence::TraceContext);
    /// let cx = config.propagator().extract(&headers);
    /// assert_eq!(
    ///     cx.span().span_context().trace_id().to_string(),
    ///     "4bf92f3577b34da6a3ce929d0e0e4736"
    /// );
    /// # Ok::<(), apprunner::telemetry::TelemetryError>(())
    /// ```
    pub fn trace_header_precedence(mut self, precedence: TraceHeaderPrecedence) -> Self {
        self.trace_header_precedence = precedence;
        self
    }

    /// Minimum interval between two exports triggered by [`export_soon`](super::export_soon)
    /// (default 200 ms).
    ///
    /// ```
    /// # let config = apprunner::telemetry::TelemetryConfig::from_lookup(|_| None)?;
    /// let config = config.min_flush_interval(std::time::Duration::from_millis(50));
    /// # let _ = config;
    /// # Ok::<(), apprunner::telemetry::TelemetryError>(())
    /// ```
    pub fn min_flush_interval(mut self, interval: Duration) -> Self {
        self.min_flush_interval = interval;
        self
    }

    /// Where spans go.
    ///
    /// ```
    /// # use apprunner::telemetry::{TelemetryConfig, TracesExporter};
    /// let config = TelemetryConfig::from_lookup(|_| None)?;
    /// assert_eq!(config.traces_exporter(), TracesExporter::Otlp);
    /// # Ok::<(), apprunner::telemetry::TelemetryError>(())
    /// ```
    pub fn traces_exporter(&self) -> TracesExporter {
        if self.disabled {
            TracesExporter::None
        } else {
            self.exporter
        }
    }

    /// The OTLP transport: the configured one, or http/protobuf when exports are signed with
    /// SigV4 (`APPRUNNER_OTLP_SIGV4`).
    ///
    /// ```
    /// # use apprunner::telemetry::{OtlpProtocol, TelemetryConfig};
    /// let config = TelemetryConfig::from_lookup(|_| None)?;
    /// assert_eq!(config.otlp_protocol(), OtlpProtocol::Grpc);
    /// # Ok::<(), apprunner::telemetry::TelemetryError>(())
    /// ```
    pub fn otlp_protocol(&self) -> OtlpProtocol {
        self.effective_protocol()
    }

    /// The configured propagators, in order.
    ///
    /// ```
    /// # use apprunner::telemetry::{PropagatorKind, TelemetryConfig};
    /// let config = TelemetryConfig::from_lookup(|_| None)?;
    /// assert_eq!(config.propagators()[0], PropagatorKind::Xray);
    /// # Ok::<(), apprunner::telemetry::TelemetryError>(())
    /// ```
    pub fn propagators(&self) -> &[PropagatorKind] {
        &self.propagators
    }

    /// The text-map propagator for [`propagators`](Self::propagators), as [`init`](Self::init)
    /// installs it globally; handy for injecting context into outgoing requests by hand.
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use opentelemetry::propagation::TextMapPropagator;
    /// use opentelemetry::trace::TraceContextExt;
    ///
    /// let config = apprunner::telemetry::TelemetryConfig::from_lookup(|_| None)?;
    /// let headers = HashMap::from([(
    ///     "x-amzn-trace-id".to_owned(),
    ///     "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1".to_owned(),
    /// )]);
    /// let cx = config.propagator().extract(&headers);
    /// assert!(cx.span().span_context().is_sampled());
    /// # Ok::<(), apprunner::telemetry::TelemetryError>(())
    /// ```
    pub fn propagator(&self) -> opentelemetry::propagation::TextMapCompositePropagator {
        super::xray::propagator(&self.propagators, self.trace_header_precedence)
    }

    /// The `service.name` that will be reported, following the documented precedence.
    ///
    /// ```
    /// # use apprunner::telemetry::TelemetryConfig;
    /// let config = TelemetryConfig::from_lookup(|k| (k == "OTEL_SERVICE_NAME").then(|| "env".into()))?
    ///     .default_service_name("pkg");
    /// assert_eq!(config.resolved_service_name(), "env");
    /// assert_eq!(config.service_name("code").resolved_service_name(), "code");
    /// # Ok::<(), apprunner::telemetry::TelemetryError>(())
    /// ```
    pub fn resolved_service_name(&self) -> String {
        self.service_name
            .clone()
            .or_else(|| self.env_service_name.clone())
            .or_else(|| {
                self.resource_attributes
                    .iter()
                    .rev()
                    .find(|(k, _)| k == "service.name")
                    .map(|(_, v)| v.clone())
            })
            .or_else(|| self.default_service_name.clone())
            .or_else(|| {
                std::env::current_exe()
                    .ok()
                    .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            })
            .unwrap_or_else(|| "unknown_service".to_owned())
    }
}

#[cfg(test)]
mod tests;
