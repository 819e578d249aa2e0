//! `OTEL_EXPORTER_OTLP_[TRACES_]*`: where and how the OTLP exporter sends spans.
//!
//! Each setting is read from the signal-specific variable first, then the generic one, as the
//! specification says. Values the kit cannot honour fail start-up only where going on would
//! lose spans (a certificate that cannot be read, a malformed header that may carry the
//! credentials); otherwise they become one warning, logged once telemetry is up.

use std::path::PathBuf;
use std::time::Duration;

use super::{Warnings, percent_decode};
use crate::telemetry::error::TelemetryError;

/// Where the endpoint came from: it decides whether `/v1/traces` is appended for OTLP/HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EndpointSource {
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`: used as it is.
    Traces,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`: a base URL, `v1/traces` is appended for OTLP/HTTP.
    Generic,
    /// [`TelemetryConfig::otlp_endpoint`](super::TelemetryConfig::otlp_endpoint):
    /// `/v1/traces` is appended for OTLP/HTTP when the URL has no path.
    Code,
}

/// A file named by a variable (certificates and keys); the variable is kept for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileSetting {
    pub(crate) var: &'static str,
    pub(crate) path: PathBuf,
}

impl FileSetting {
    /// Reads the file, or fails naming the variable and the path.
    pub(crate) fn read(&self) -> Result<Vec<u8>, TelemetryError> {
        std::fs::read(&self.path).map_err(|e| TelemetryError::File {
            var: self.var,
            path: self.path.clone(),
            reason: e.to_string(),
        })
    }
}

/// The OTLP exporter settings of the environment.
#[derive(Clone, Default, PartialEq)]
pub(crate) struct OtlpEnv {
    pub(crate) endpoint: Option<(String, EndpointSource)>,
    /// Header names (lowercase) and percent-decoded values; the signal-specific variable wins
    /// per name.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) gzip: bool,
    pub(crate) certificate: Option<FileSetting>,
    pub(crate) client_certificate: Option<FileSetting>,
    pub(crate) client_key: Option<FileSetting>,
    pub(crate) insecure: bool,
}

impl std::fmt::Debug for OtlpEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Header values are often credentials (API keys): only their names are shown.
        let names: Vec<&str> = self.headers.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("OtlpEnv")
            .field("endpoint", &self.endpoint)
            .field("headers", &names)
            .field("timeout", &self.timeout)
            .field("gzip", &self.gzip)
            .field("certificate", &self.certificate)
            .field("client_certificate", &self.client_certificate)
            .field("client_key", &self.client_key)
            .field("insecure", &self.insecure)
            .finish()
    }
}

/// The signal-specific variable's value if set, else the generic one's, with the name of the
/// variable it came from.
fn either(
    lookup: &impl Fn(&str) -> Option<String>,
    traces: &'static str,
    generic: &'static str,
) -> Option<(&'static str, String)> {
    let non_empty = |key: &'static str| {
        lookup(key)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .map(|v| (key, v))
    };
    non_empty(traces).or_else(|| non_empty(generic))
}

impl OtlpEnv {
    pub(crate) fn from_lookup(
        lookup: &impl Fn(&str) -> Option<String>,
        warnings: &mut Warnings,
    ) -> Result<Self, TelemetryError> {
        let endpoint = either(
            lookup,
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
        )
        .map(|(var, value)| {
            let source = if var == "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" {
                EndpointSource::Traces
            } else {
                EndpointSource::Generic
            };
            (value, source)
        });

        let mut headers = Vec::new();
        for var in [
            "OTEL_EXPORTER_OTLP_HEADERS",
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        ] {
            if let Some(value) = lookup(var).filter(|v| !v.trim().is_empty()) {
                for (name, value) in parse_headers(var, &value)? {
                    headers.retain(|(existing, _): &(String, String)| *existing != name);
                    headers.push((name, value));
                }
            }
        }

        let timeout = either(
            lookup,
            "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
            "OTEL_EXPORTER_OTLP_TIMEOUT",
        )
        .and_then(|(var, value)| {
            warnings
                .number::<u64>(var, &value, "a timeout in milliseconds")
                .map(Duration::from_millis)
        });

        let gzip = match either(
            lookup,
            "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
            "OTEL_EXPORTER_OTLP_COMPRESSION",
        ) {
            None => false,
            Some((_, v)) if v.eq_ignore_ascii_case("gzip") => true,
            Some((_, v)) if v.eq_ignore_ascii_case("none") => false,
            Some((var, v)) => {
                // Sending uncompressed loses nothing: a warning, not a failed start.
                warnings.push(var, &v, "gzip or none; exports are sent uncompressed");
                false
            }
        };

        let file = |traces, generic| {
            either(lookup, traces, generic).map(|(var, path)| FileSetting {
                var,
                path: PathBuf::from(path),
            })
        };
        let certificate = file(
            "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
            "OTEL_EXPORTER_OTLP_CERTIFICATE",
        );
        let client_certificate = file(
            "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
        );
        let client_key = file(
            "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY",
            "OTEL_EXPORTER_OTLP_CLIENT_KEY",
        );
        match (&client_certificate, &client_key) {
            (Some(_), None) => {
                return Err(TelemetryError::InvalidVar {
                    var: "OTEL_EXPORTER_OTLP_CLIENT_KEY",
                    value: String::new(),
                    expected: "the client's private key (PEM file) to go with \
                               OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                });
            }
            (None, Some(_)) => {
                return Err(TelemetryError::InvalidVar {
                    var: "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                    value: String::new(),
                    expected: "the client's certificate (PEM file) to go with \
                               OTEL_EXPORTER_OTLP_CLIENT_KEY",
                });
            }
            _ => {}
        }

        let insecure = match either(
            lookup,
            "OTEL_EXPORTER_OTLP_TRACES_INSECURE",
            "OTEL_EXPORTER_OTLP_INSECURE",
        ) {
            None => false,
            Some((_, v)) if v.eq_ignore_ascii_case("true") => true,
            Some((_, v)) if v.eq_ignore_ascii_case("false") => false,
            Some((var, v)) => {
                // Guessing would either send in clear text or fail every export.
                return Err(TelemetryError::InvalidVar {
                    var,
                    value: v,
                    expected: "true or false",
                });
            }
        };

        Ok(Self {
            endpoint,
            headers,
            timeout,
            gzip,
            certificate,
            client_certificate,
            client_key,
            insecure,
        })
    }
}

/// Parses `k=v,k2=v2` with percent-encoded values. An entry without `=` or with an empty name
/// is an error naming the variable and the entry's position, never its value (headers carry
/// credentials, and an export without them would be refused).
fn parse_headers(var: &'static str, value: &str) -> Result<Vec<(String, String)>, TelemetryError> {
    let mut headers = Vec::new();
    for (index, entry) in value.split(',').enumerate() {
        if entry.trim().is_empty() {
            continue;
        }
        match entry.split_once('=') {
            Some((name, value)) if !name.trim().is_empty() => {
                headers.push((
                    name.trim().to_ascii_lowercase(),
                    percent_decode(value.trim()),
                ));
            }
            _ => {
                return Err(TelemetryError::InvalidVar {
                    var,
                    value: format!("<entry {} of {var}, value not shown>", index + 1),
                    expected: "comma-separated name=value pairs",
                });
            }
        }
    }
    Ok(headers)
}

/// The `OTEL_BSP_*` settings; `None` keeps the SDK default.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct BspSettings {
    pub(crate) schedule_delay: Option<Duration>,
    pub(crate) max_queue_size: Option<usize>,
    pub(crate) max_export_batch_size: Option<usize>,
    pub(crate) export_timeout: Option<Duration>,
}

impl BspSettings {
    pub(crate) fn from_lookup(
        lookup: &impl Fn(&str) -> Option<String>,
        warnings: &mut Warnings,
    ) -> Self {
        let millis = |var, warnings: &mut Warnings| {
            let value = lookup(var)?;
            warnings
                .number::<u64>(var, value.trim(), "a duration in milliseconds")
                .map(Duration::from_millis)
        };
        let positive = |var, warnings: &mut Warnings| {
            let value = lookup(var)?;
            warnings
                .number::<usize>(var, value.trim(), "a positive integer")
                .filter(|n| {
                    *n > 0 || {
                        warnings.push(var, "0", "a positive integer; the default is used");
                        false
                    }
                })
        };
        Self {
            schedule_delay: millis("OTEL_BSP_SCHEDULE_DELAY", warnings),
            export_timeout: millis("OTEL_BSP_EXPORT_TIMEOUT", warnings),
            max_queue_size: positive("OTEL_BSP_MAX_QUEUE_SIZE", warnings),
            max_export_batch_size: positive("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", warnings),
        }
    }
}

/// The span limits (`OTEL_SPAN_*_COUNT_LIMIT`, `OTEL_[SPAN_]ATTRIBUTE_*_LIMIT`, ...); `None`
/// keeps the SDK default (128 of each, values of any length).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct LimitSettings {
    pub(crate) attribute_count: Option<u32>,
    pub(crate) attribute_value_length: Option<usize>,
    pub(crate) event_count: Option<u32>,
    pub(crate) link_count: Option<u32>,
    pub(crate) event_attribute_count: Option<u32>,
    pub(crate) link_attribute_count: Option<u32>,
}

impl LimitSettings {
    pub(crate) fn from_lookup(
        lookup: &impl Fn(&str) -> Option<String>,
        warnings: &mut Warnings,
    ) -> Self {
        let mut count = |specific: &'static str, generic: Option<&'static str>| {
            let (var, value) = match generic {
                Some(generic) => either(lookup, specific, generic)?,
                None => (specific, lookup(specific)?.trim().to_owned()),
            };
            warnings.number::<u32>(var, &value, "a non-negative integer")
        };
        let attribute_count = count(
            "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT",
            Some("OTEL_ATTRIBUTE_COUNT_LIMIT"),
        );
        let event_count = count("OTEL_SPAN_EVENT_COUNT_LIMIT", None);
        let link_count = count("OTEL_SPAN_LINK_COUNT_LIMIT", None);
        let event_attribute_count = count("OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT", None);
        let link_attribute_count = count("OTEL_LINK_ATTRIBUTE_COUNT_LIMIT", None);
        let attribute_value_length = either(
            lookup,
            "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT",
            "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT",
        )
        .and_then(|(var, value)| warnings.number::<usize>(var, &value, "a non-negative integer"));
        Self {
            attribute_count,
            attribute_value_length,
            event_count,
            link_count,
            event_attribute_count,
            link_attribute_count,
        }
    }

    /// The SDK's limits with these settings applied.
    pub(crate) fn sdk(&self) -> opentelemetry_sdk::trace::SpanLimits {
        let mut limits = opentelemetry_sdk::trace::SpanLimits::default();
        if let Some(n) = self.attribute_count {
            limits.max_attributes_per_span = n;
        }
        if let Some(n) = self.event_count {
            limits.max_events_per_span = n;
        }
        if let Some(n) = self.link_count {
            limits.max_links_per_span = n;
        }
        if let Some(n) = self.event_attribute_count {
            limits.max_attributes_per_event = n;
        }
        if let Some(n) = self.link_attribute_count {
            limits.max_attributes_per_link = n;
        }
        limits
    }
}
