//! The OTLP/gRPC span exporter: `TraceService/Export` calls over a tonic channel, with the
//! request bytes put together by [`encode`](super::encode) from spans encoded when they ended
//! (see [`batch`](super::batch)).
//!
//! Configuration comes from [`TelemetryConfig`]: endpoint (code, then
//! `OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT`, then `http://localhost:4317`, where App Runner's
//! collector listens), headers and timeout. A failed call fails the batch (the export
//! pipeline counts and logs it); there is no retry, so a collector that is down costs one
//! connection attempt per batch, never a growing backlog.

use std::time::Duration;

use bytes::{BufMut as _, Bytes};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use prost::Message as _;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tonic::transport::{Channel, Endpoint};

use super::TelemetryError;
use super::config::TelemetryConfig;
use super::encode;

const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
const DEFAULT_ENDPOINT: &str = "http://localhost:4317";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The endpoint the gRPC exporter sends to.
pub(crate) fn endpoint(config: &TelemetryConfig) -> String {
    config
        .endpoint
        .clone()
        .or_else(|| config.otlp_env.endpoint.clone())
        .unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned())
}

/// Exports span batches to an OTLP/gRPC collector.
#[derive(Debug)]
pub(crate) struct GrpcExporter {
    channel: Channel,
    metadata: MetadataMap,
}

impl GrpcExporter {
    /// Builds the exporter; the connection is opened on the first export. Must run inside a
    /// Tokio runtime, which then drives the connection.
    pub(crate) fn new(config: &TelemetryConfig) -> Result<Self, TelemetryError> {
        let url = endpoint(config);
        let invalid = |reason: String| TelemetryError::Exporter {
            endpoint: url.clone(),
            reason,
        };
        let target = Endpoint::from_shared(url.clone()).map_err(|e| {
            invalid(format!(
                "not a valid URL ({e}); set OTEL_EXPORTER_OTLP_ENDPOINT to e.g. {DEFAULT_ENDPOINT}"
            ))
        })?;
        if target.uri().scheme_str() != Some("http") {
            return Err(invalid(
                "only http:// endpoints are supported: App Runner's collector listens in plain \
                 text on localhost:4317"
                    .to_owned(),
            ));
        }
        let timeout = config
            .export_timeout
            .or(config.otlp_env.timeout)
            .unwrap_or(DEFAULT_TIMEOUT);
        let mut metadata = MetadataMap::new();
        for (name, value) in &config.otlp_env.headers {
            let key = MetadataKey::from_bytes(name.as_bytes()).map_err(|_| {
                invalid(format!(
                    "header name {name:?} in OTEL_EXPORTER_OTLP_HEADERS is not a valid gRPC \
                     metadata key"
                ))
            })?;
            // The value is never shown: it is often a credential.
            let value = MetadataValue::try_from(value.as_str()).map_err(|_| {
                invalid(format!(
                    "the value of header {name:?} in OTEL_EXPORTER_OTLP_HEADERS is not valid \
                     header text"
                ))
            })?;
            metadata.append(key, value);
        }
        let channel = target
            .connect_timeout(timeout)
            .timeout(timeout)
            .connect_lazy();
        Ok(Self { channel, metadata })
    }
}

impl GrpcExporter {
    /// Sends the spans of `scopes` (appended by [`encode::append_span`]) in one
    /// `TraceService/Export` call, under `resource`.
    pub(crate) async fn send(
        &self,
        scopes: &[(&opentelemetry::InstrumentationScope, &[u8])],
        resource: &Resource,
    ) -> OTelSdkResult {
        let body = Bytes::from(encode::export_request(scopes, resource));
        let failed = |what: String| OTelSdkError::InternalFailure(what);
        let mut client = tonic::client::Grpc::new(self.channel.clone());
        client
            .ready()
            .await
            .map_err(|e| failed(format!("the collector is unreachable: {e}")))?;
        let mut request = tonic::Request::new(body);
        *request.metadata_mut() = self.metadata.clone();
        let response = client
            .unary(request, PathAndQuery::from_static(EXPORT_PATH), RawCodec)
            .await
            .map_err(|status| {
                failed(format!(
                    "the collector answered {:?}: {}",
                    status.code(),
                    status.message()
                ))
            })?;
        if let Some(partial) = response.into_inner().partial_success
            && partial.rejected_spans > 0
        {
            tracing::warn!(
                target: "apprunner::telemetry",
                rejected_spans = partial.rejected_spans,
                reason = %partial.error_message,
                "the collector rejected part of a span batch"
            );
        }
        Ok(())
    }
}

/// Sends already-encoded request bytes and decodes the collector's answer.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = ExportTraceServiceResponse;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = ExportTraceServiceResponse;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Self::Error> {
        ExportTraceServiceResponse::decode(src)
            .map(Some)
            .map_err(|e| {
                tonic::Status::internal(format!("invalid ExportTraceServiceResponse: {e}"))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exporter_for(vars: &[(&str, &str)]) -> Result<GrpcExporter, TelemetryError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let config = TelemetryConfig::from_lookup(|key| {
            vars.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
        })
        .unwrap();
        GrpcExporter::new(&config)
    }

    #[test]
    fn endpoints_and_headers_it_cannot_use_are_clear_errors() {
        let err = exporter_for(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4317")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("https://collector:4317") && err.contains("http://"),
            "{err}"
        );
        let err = exporter_for(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "not a url")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("OTEL_EXPORTER_OTLP_ENDPOINT"), "{err}");
        let err = exporter_for(&[("OTEL_EXPORTER_OTLP_HEADERS", "bad key=s3cr3t")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("bad key") && !err.contains("s3cr3t"), "{err}");
        let err = exporter_for(&[("OTEL_EXPORTER_OTLP_HEADERS", "x-key=line%0Abreak")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("x-key") && !err.contains("break"), "{err}");
    }

    #[tokio::test]
    async fn the_default_endpoint_is_the_app_runner_collector() {
        let config = TelemetryConfig::from_lookup(|_| None).unwrap();
        assert_eq!(endpoint(&config), "http://localhost:4317");
        assert!(GrpcExporter::new(&config).is_ok());
    }
}
