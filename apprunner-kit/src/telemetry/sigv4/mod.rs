//! SigV4 signing of OTLP/HTTP exports for X-Ray's OTLP endpoint.
//!
//! `opentelemetry-otlp`'s HTTP exporter keeps its encoding, gzip and retry; it is given
//! [`SigningClient`] as its HTTP client, which signs each request as it is sent (the final,
//! possibly gzipped body, for service `xray`) with cached credentials, sends it with the
//! kit's reqwest client, and turns a refusal into one actionable line for the export report.

mod credentials;
mod diagnose;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};

pub(crate) use credentials::{CredentialsCache, spawn_refresh};

use super::diagnosis::ExportDiagnosis;

/// The signing name of X-Ray.
pub(crate) const SERVICE: &str = "xray";

/// The exporter's HTTP client when exports are signed.
#[derive(Debug)]
pub(crate) struct SigningClient {
    inner: reqwest::Client,
    region: String,
    credentials: CredentialsCache,
    /// How long the first export waits for the first credentials.
    first_load: Duration,
    diagnosis: Arc<ExportDiagnosis>,
}

impl SigningClient {
    pub(crate) fn new(
        inner: reqwest::Client,
        region: String,
        credentials: CredentialsCache,
        first_load: Duration,
        diagnosis: Arc<ExportDiagnosis>,
    ) -> Self {
        Self {
            inner,
            region,
            credentials,
            first_load,
            diagnosis,
        }
    }
}

/// Adds `Authorization`, `X-Amz-Date` and (with a session token) `X-Amz-Security-Token` to
/// `request`, signing its method, URL, headers and body as they are.
pub(crate) fn sign_request(
    request: &mut Request<Bytes>,
    credentials: &Credentials,
    region: &str,
    time: SystemTime,
) -> Result<(), HttpError> {
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(SERVICE)
        .time(time)
        .settings(SigningSettings::default())
        .build()?
        .into();
    let uri = request.uri().to_string();
    let headers: Vec<(&str, &str)> = request
        .headers()
        .iter()
        .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)))
        .collect();
    let signable = SignableRequest::new(
        request.method().as_str(),
        &uri,
        headers.into_iter(),
        SignableBody::Bytes(request.body()),
    )?;
    let (instructions, _signature) = sign(signable, &params)?.into_parts();
    instructions.apply_to_request_http1x(request);
    Ok(())
}

#[async_trait]
impl HttpClient for SigningClient {
    async fn send_bytes(&self, mut request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let Some(credentials) = self.credentials.current(self.first_load).await else {
            self.diagnosis.set(
                "no AWS credentials to sign span exports with yet (see the credentials warning \
                 above)"
                    .to_owned(),
            );
            return Err("no AWS credentials loaded to sign the export".into());
        };
        sign_request(&mut request, &credentials, &self.region, SystemTime::now())?;
        let response = self.inner.send_bytes(request).await?;
        if let Some(line) =
            diagnose::diagnose(response.status().as_u16(), response.body(), &self.region)
        {
            self.diagnosis.set(line);
        }
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_signed_for_xray_in_the_region_with_the_session_token() {
        let credentials = Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            Some("token".into()),
            None,
            "test",
        );
        let mut request = Request::post("https://xray.eu-west-1.amazonaws.com/v1/traces")
            .header("content-type", "application/x-protobuf")
            .header("content-encoding", "gzip")
            .body(Bytes::from_static(b"\x1f\x8bbody"))
            .unwrap();
        let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        sign_request(&mut request, &credentials, "eu-west-1", time).unwrap();
        let header = |name: &str| request.headers()[name].to_str().unwrap().to_owned();
        let auth = header("authorization");
        assert!(
            auth.starts_with(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20231114/eu-west-1/xray/aws4_request"
            ),
            "{auth}"
        );
        assert!(
            auth.contains("content-encoding;content-type;host;x-amz-date"),
            "{auth}"
        );
        assert_eq!(header("x-amz-date"), "20231114T221320Z");
        assert_eq!(header("x-amz-security-token"), "token");
    }
}
