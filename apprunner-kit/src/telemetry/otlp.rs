//! The OTLP span exporter of `opentelemetry-otlp`, configured from [`TelemetryConfig`]:
//! tonic for gRPC and reqwest for http/protobuf, both over rustls with the system's and
//! Mozilla's roots plus `OTEL_EXPORTER_OTLP_CERTIFICATE`, mutual TLS, gzip, headers, and the
//! library's retry (exponential backoff with jitter, `Retry-After` / `RetryInfo` honoured)
//! bounded by the export timeout.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry_otlp::tonic_types::metadata::MetadataMap;
use opentelemetry_otlp::tonic_types::transport::{Certificate, ClientTlsConfig, Identity};
use opentelemetry_otlp::{
    Compression, RetryPolicy, WithExportConfig as _, WithHttpConfig as _, WithTonicConfig as _,
};

use super::config::{EndpointSource, FileSetting, OtlpProtocol, Signing, TelemetryConfig};
use super::diagnosis::ExportDiagnosis;
use super::error::TelemetryError;

/// The default of `OTEL_EXPORTER_OTLP_TIMEOUT`.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Transient failures (connection refused, `UNAVAILABLE`, 429/502/503/504) are retried until
/// the export timeout runs out: a collector that starts a few seconds after the service loses
/// nothing, and one that is down costs a handful of connection attempts per batch, not one per
/// span.
fn retry_policy() -> RetryPolicy {
    RetryPolicy::default()
        .with_max_retries(64)
        .with_initial_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(2))
        .with_max_jitter(Duration::from_millis(100))
}

fn has_scheme(endpoint: &str) -> bool {
    endpoint.contains("://")
}

/// The gRPC endpoint: code, then `OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT`, then
/// `http://localhost:4317`. One without a scheme is `https://` unless `..._INSECURE=true`.
pub(crate) fn grpc_endpoint(config: &TelemetryConfig) -> String {
    let endpoint = config
        .endpoint
        .clone()
        .or_else(|| config.otlp_env.endpoint.clone().map(|(e, _)| e))
        .unwrap_or_else(|| "http://localhost:4317".to_owned());
    if has_scheme(&endpoint) {
        endpoint
    } else if config.otlp_env.insecure {
        format!("http://{endpoint}")
    } else {
        format!("https://{endpoint}")
    }
}

/// The OTLP/HTTP traces URL: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` as it is,
/// `OTEL_EXPORTER_OTLP_ENDPOINT` with `v1/traces` appended, an endpoint set in code with
/// `/v1/traces` appended when it has no path.
pub(crate) fn http_endpoint(config: &TelemetryConfig) -> String {
    let (endpoint, source) = match (&config.endpoint, &config.otlp_env.endpoint) {
        (Some(code), _) => (code.clone(), EndpointSource::Code),
        (None, Some((env, source))) => (env.clone(), *source),
        (None, None) => {
            return config
                .default_signed_endpoint()
                .unwrap_or_else(|| "http://localhost:4318/v1/traces".to_owned());
        }
    };
    match source {
        EndpointSource::Traces => endpoint,
        EndpointSource::Generic => {
            let separator = if endpoint.ends_with('/') { "" } else { "/" };
            format!("{endpoint}{separator}v1/traces")
        }
        EndpointSource::Code => {
            let trimmed = endpoint.trim_end_matches('/');
            let after_scheme = trimmed.split_once("://").map_or(trimmed, |(_, rest)| rest);
            if after_scheme.contains('/') {
                trimmed.to_owned()
            } else {
                format!("{trimmed}/v1/traces")
            }
        }
    }
}

/// The endpoint for messages (never the headers, which may hold credentials).
pub(crate) fn endpoint_label(config: &TelemetryConfig) -> String {
    match config.effective_protocol() {
        OtlpProtocol::Grpc => grpc_endpoint(config),
        OtlpProtocol::HttpProtobuf => http_endpoint(config),
    }
}

/// The timeout of one export, retries included.
pub(crate) fn export_timeout(config: &TelemetryConfig) -> Duration {
    config
        .export_timeout
        .or(config.otlp_env.timeout)
        .unwrap_or(DEFAULT_TIMEOUT)
}

/// Reads a PEM file and checks that it holds what `label` says (`CERTIFICATE`,
/// `PRIVATE KEY`), so that a wrong file is named at start-up rather than failing every export.
fn read_pem(file: &FileSetting, label: &str) -> Result<Vec<u8>, TelemetryError> {
    let bytes = file.read()?;
    let text = String::from_utf8_lossy(&bytes);
    let found = text.lines().any(|line| {
        line.starts_with("-----BEGIN ") && line.trim_end().ends_with(&format!("{label}-----"))
    });
    if found {
        Ok(bytes)
    } else {
        Err(TelemetryError::File {
            var: file.var,
            path: file.path.clone(),
            reason: format!("no PEM block ending in \"{label}\" found"),
        })
    }
}

/// A client certificate and its private key, PEM.
struct ClientIdentity {
    cert: Vec<u8>,
    key: Vec<u8>,
}

/// The client certificate and key for mutual TLS, when both are set.
fn client_identity(config: &TelemetryConfig) -> Result<Option<ClientIdentity>, TelemetryError> {
    match (
        &config.otlp_env.client_certificate,
        &config.otlp_env.client_key,
    ) {
        (Some(cert), Some(key)) => Ok(Some(ClientIdentity {
            cert: read_pem(cert, "CERTIFICATE")?,
            key: read_pem(key, "PRIVATE KEY")?,
        })),
        _ => Ok(None),
    }
}

fn exporter_error(config: &TelemetryConfig, reason: impl ToString) -> TelemetryError {
    TelemetryError::Exporter {
        endpoint: endpoint_label(config),
        reason: reason.to_string(),
    }
}

/// Builds the exporter for `config`. Call it inside the Tokio runtime that will drive the
/// exports: the gRPC channel starts its connection task there.
/// A refused export's cause goes to `diagnosis` (signed exports only).
pub(crate) fn build(
    config: &TelemetryConfig,
    diagnosis: Arc<ExportDiagnosis>,
) -> Result<opentelemetry_otlp::SpanExporter, TelemetryError> {
    match config.signing()? {
        Some(signing) => build_http(config, Some((signing, diagnosis))),
        None => match config.protocol {
            OtlpProtocol::Grpc => build_grpc(config),
            OtlpProtocol::HttpProtobuf => build_http(config, None),
        },
    }
}

fn build_grpc(
    config: &TelemetryConfig,
) -> Result<opentelemetry_otlp::SpanExporter, TelemetryError> {
    let endpoint = grpc_endpoint(config);
    let mut metadata = MetadataMap::new();
    for (name, value) in &config.otlp_env.headers {
        let key = tonic::metadata::AsciiMetadataKey::from_bytes(name.as_bytes()).map_err(|_| {
            TelemetryError::InvalidVar {
                var: "OTEL_EXPORTER_OTLP_HEADERS",
                value: format!("<header {name}, value not shown>"),
                expected: "header names that are valid gRPC metadata keys",
            }
        })?;
        let value =
            tonic::metadata::AsciiMetadataValue::try_from(value.as_str()).map_err(|_| {
                TelemetryError::InvalidVar {
                    var: "OTEL_EXPORTER_OTLP_HEADERS",
                    value: format!("<header {name}, value not shown>"),
                    expected: "header values of visible ASCII characters",
                }
            })?;
        metadata.insert(key, value);
    }
    let mut builder = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint.clone())
        .with_timeout(export_timeout(config))
        .with_metadata(metadata)
        .with_retry_policy(retry_policy());
    if config.otlp_env.gzip {
        builder = builder.with_compression(Compression::Gzip);
    }
    if endpoint.starts_with("https://") {
        let mut tls = ClientTlsConfig::new().with_enabled_roots();
        if let Some(ca) = &config.otlp_env.certificate {
            tls = tls.ca_certificate(Certificate::from_pem(read_pem(ca, "CERTIFICATE")?));
        }
        if let Some(ClientIdentity { cert, key }) = client_identity(config)? {
            tls = tls.identity(Identity::from_pem(cert, key));
        }
        builder = builder.with_tls_config(tls);
    }
    builder.build().map_err(|e| exporter_error(config, e))
}

fn build_http(
    config: &TelemetryConfig,
    signing: Option<(Signing, Arc<ExportDiagnosis>)>,
) -> Result<opentelemetry_otlp::SpanExporter, TelemetryError> {
    let timeout = export_timeout(config);
    let mut client = reqwest::Client::builder().timeout(timeout);
    if let Some(ca) = &config.otlp_env.certificate {
        let certs =
            reqwest::Certificate::from_pem_bundle(&read_pem(ca, "CERTIFICATE")?).map_err(|e| {
                TelemetryError::File {
                    var: ca.var,
                    path: ca.path.clone(),
                    reason: e.to_string(),
                }
            })?;
        client = client.tls_certs_merge(certs);
    }
    if let Some(ClientIdentity { mut cert, key }) = client_identity(config)? {
        cert.push(b'\n');
        cert.extend_from_slice(&key);
        let identity = reqwest::Identity::from_pem(&cert).map_err(|e| {
            let file = config
                .otlp_env
                .client_key
                .as_ref()
                .expect("an identity needs a key");
            TelemetryError::File {
                var: file.var,
                path: file.path.clone(),
                reason: e.to_string(),
            }
        })?;
        client = client.identity(identity);
    }
    let client = client.build().map_err(|e| exporter_error(config, e))?;
    // The exporter percent-decodes header values once more: keep a decoded `%` as it is.
    let headers: HashMap<String, String> = config
        .otlp_env
        .headers
        .iter()
        .map(|(name, value)| (name.clone(), value.replace('%', "%25")))
        .collect();
    let mut builder = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(http_endpoint(config))
        .with_timeout(timeout)
        .with_headers(headers)
        .with_retry_policy(retry_policy());
    builder = match signing {
        None => builder.with_http_client(client),
        Some((signing, diagnosis)) => signing_client(config, builder, client, signing, diagnosis)?,
    };
    if config.otlp_env.gzip {
        builder = builder.with_compression(Compression::Gzip);
    }
    builder.build().map_err(|e| exporter_error(config, e))
}

/// The span exporter builder once `.with_http()` was called.
type HttpBuilder =
    opentelemetry_otlp::SpanExporterBuilder<opentelemetry_otlp::HttpExporterBuilderSet>;

/// Gives the exporter the SigV4 signing client; credentials load on the export runtime.
#[cfg(feature = "xray-otlp")]
fn signing_client(
    config: &TelemetryConfig,
    builder: HttpBuilder,
    client: reqwest::Client,
    signing: Signing,
    diagnosis: Arc<ExportDiagnosis>,
) -> Result<HttpBuilder, TelemetryError> {
    let credentials = super::sigv4::spawn_refresh(signing.region.clone());
    Ok(builder.with_http_client(super::sigv4::SigningClient::new(
        client,
        signing.region,
        credentials,
        export_timeout(config),
        diagnosis,
    )))
}

#[cfg(not(feature = "xray-otlp"))]
fn signing_client(
    config: &TelemetryConfig,
    _builder: HttpBuilder,
    _client: reqwest::Client,
    _signing: Signing,
    _diagnosis: Arc<ExportDiagnosis>,
) -> Result<HttpBuilder, TelemetryError> {
    Err(exporter_error(
        config,
        "exports to X-Ray's OTLP endpoint are signed with SigV4, which needs the `xray-otlp` \
         feature of apprunner-kit (or set APPRUNNER_OTLP_SIGV4=false to send them unsigned)",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> TelemetryConfig {
        TelemetryConfig::from_lookup(|key| {
            vars.iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| (*v).to_owned())
        })
        .expect("valid configuration")
    }

    #[test]
    fn http_urls_follow_the_variable_they_came_from() {
        let http = |vars: &[(&str, &str)]| http_endpoint(&config(vars));
        assert_eq!(http(&[]), "http://localhost:4318/v1/traces");
        assert_eq!(
            http(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")]),
            "http://c:4318/v1/traces"
        );
        assert_eq!(
            http(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c/prefix/")]),
            "https://c/prefix/v1/traces"
        );
        assert_eq!(
            http(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://c/custom")]),
            "https://c/custom"
        );
        assert_eq!(
            http(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://c:4318")]),
            "https://c:4318",
            "the signal-specific URL is used as it is"
        );
        let code = |endpoint: &str| http_endpoint(&config(&[]).otlp_endpoint(endpoint));
        assert_eq!(code("http://h:4318"), "http://h:4318/v1/traces");
        assert_eq!(code("http://h:4318/"), "http://h:4318/v1/traces");
        assert_eq!(code("http://h:4318/custom"), "http://h:4318/custom");
    }

    #[test]
    fn grpc_endpoints_without_scheme_follow_insecure() {
        let grpc = |vars: &[(&str, &str)]| grpc_endpoint(&config(vars));
        assert_eq!(grpc(&[]), "http://localhost:4317");
        assert_eq!(
            grpc(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317")]),
            "https://collector:4317"
        );
        assert_eq!(
            grpc(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317"),
                ("OTEL_EXPORTER_OTLP_INSECURE", "true"),
            ]),
            "http://collector:4317"
        );
        assert_eq!(
            grpc(&[
                ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "collector:4317"),
                ("OTEL_EXPORTER_OTLP_TRACES_INSECURE", "TRUE"),
                ("OTEL_EXPORTER_OTLP_INSECURE", "false"),
            ]),
            "http://collector:4317",
            "the signal-specific variable wins"
        );
        assert_eq!(
            grpc(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4317"),
                ("OTEL_EXPORTER_OTLP_INSECURE", "true"),
            ]),
            "https://collector:4317",
            "an explicit scheme wins over INSECURE"
        );
    }

    #[test]
    fn a_certificate_that_cannot_be_used_names_its_variable() {
        let dir = std::env::temp_dir().join(format!("apprunner-otlp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let not_pem = dir.join("not.pem");
        std::fs::write(&not_pem, "hello").unwrap();
        for (var, path) in [
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", dir.join("missing.pem")),
            ("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", not_pem.clone()),
        ] {
            let path = path.to_string_lossy().into_owned();
            let c = config(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4318"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
                (var, &path),
            ]);
            let err = build(&c, Arc::default()).expect_err("unusable certificate");
            assert!(
                err.to_string().contains(var) && err.to_string().contains(&path),
                "{err}"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn timeouts_come_from_code_then_the_environment() {
        assert_eq!(export_timeout(&config(&[])), DEFAULT_TIMEOUT);
        let env = config(&[("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "1500")]);
        assert_eq!(export_timeout(&env), Duration::from_millis(1500));
        let code = env.export_timeout(Duration::from_secs(3));
        assert_eq!(export_timeout(&code), Duration::from_secs(3));
    }
}
