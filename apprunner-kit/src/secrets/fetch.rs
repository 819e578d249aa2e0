//! The one traced `GetSecretValue` call, and the mapping of its errors.

use std::time::SystemTime;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::operation::RequestId;
use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
use opentelemetry::trace::TraceContextExt as _;
use tracing::Instrument;
use tracing::field::Empty;

use super::error::SecretsError;
use super::secret::Secret;

/// The span name, following the `Service.Operation` form AWS SDK instrumentations use.
pub(crate) const SPAN_NAME: &str = "SecretsManager.GetSecretValue";

/// The X-Ray exporter's marker of a service's first span in a trace (`aws.span.kind`).
pub(crate) const AWS_SPAN_KIND: &str = "aws.span.kind";
/// The value of [`AWS_SPAN_KIND`] that makes the exporter name a segment after the service.
pub(crate) const LOCAL_ROOT: &str = "LOCAL_ROOT";
/// The service's own name, which the X-Ray exporter uses as a local root's segment name.
pub(crate) const AWS_LOCAL_SERVICE: &str = "aws.local.service";

/// Error codes the AWS SDKs treat as throttling.
const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
];

/// A Secrets Manager client bound to a region.
#[derive(Clone, Debug)]
pub(crate) struct Fetcher {
    client: Client,
    region: String,
}

/// One `GetSecretValue` call as it happened, without the value: enough to replay it as a span.
#[derive(Clone, Debug)]
pub(crate) struct FetchRecord {
    pub(crate) secret_id: String,
    pub(crate) stage: String,
    pub(crate) region: String,
    pub(crate) request_id: Option<String>,
    pub(crate) start: SystemTime,
    pub(crate) end: SystemTime,
}

/// A fetched secret text and the record of its fetch.
pub(crate) struct Fetched {
    pub(crate) value: Secret<String>,
    pub(crate) record: FetchRecord,
}

impl Fetcher {
    /// Loads the standard AWS configuration chain (env, profile, container/instance role), which
    /// also honours `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_SECRETS_MANAGER`.
    pub(crate) async fn from_env() -> Result<Self, SecretsError> {
        let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
        Self::from_sdk_config(&config)
    }

    pub(crate) fn from_sdk_config(config: &SdkConfig) -> Result<Self, SecretsError> {
        let region = config.region().ok_or(SecretsError::NoRegion)?.to_string();
        Ok(Self {
            client: Client::new(config),
            region,
        })
    }

    pub(crate) fn region(&self) -> &str {
        &self.region
    }

    /// `GetSecretValue` for one version stage, in a CLIENT span. The value never reaches the span.
    ///
    /// A call outside any span, with `local_service` known, is marked an X-Ray local root
    /// named after that service: the exporter then makes a service segment and a
    /// `SecretsManager` subsegment, not a `SecretsManager` segment.
    pub(crate) async fn get(
        &self,
        secret_id: &str,
        stage: &str,
        local_service: Option<&str>,
    ) -> Result<Fetched, SecretsError> {
        let parentless = tracing::Span::current().is_none()
            && !opentelemetry::Context::current().has_active_span();
        let span = tracing::info_span!(
            SPAN_NAME,
            otel.name = SPAN_NAME,
            otel.kind = "client",
            otel.status_code = Empty,
            otel.status_message = Empty,
            rpc.system = "aws-api",
            rpc.service = "SecretsManager",
            rpc.method = "GetSecretValue",
            aws.region = %self.region,
            cloud.region = %self.region,
            aws.request_id = Empty,
            aws.secretsmanager.secret_id = %secret_id,
            aws.secretsmanager.version_stage = %stage,
            error.type = Empty,
            aws.span.kind = Empty,
            aws.local.service = Empty,
        );
        if parentless && let Some(service) = local_service {
            span.record(AWS_SPAN_KIND, LOCAL_ROOT);
            span.record(AWS_LOCAL_SERVICE, service);
        }
        let start = SystemTime::now();
        let result = self
            .client
            .get_secret_value()
            .secret_id(secret_id)
            .version_stage(stage)
            .send()
            .instrument(span.clone())
            .await;
        let end = SystemTime::now();
        let request_id = result.request_id().map(str::to_owned);
        if let Some(id) = &request_id {
            span.record("aws.request_id", id.as_str());
        }
        let record = FetchRecord {
            secret_id: secret_id.to_owned(),
            stage: stage.to_owned(),
            region: self.region.clone(),
            request_id,
            start,
            end,
        };
        let described = describe(secret_id);
        match result {
            Ok(output) => {
                span.record("otel.status_code", "ok");
                let mut output = output;
                match output.secret_string.take() {
                    Some(text) => Ok(Fetched {
                        value: Secret::new(text),
                        record,
                    }),
                    None => {
                        mark_error(&span, "BinarySecret");
                        Err(SecretsError::Binary { secret: described })
                    }
                }
            }
            Err(err) => {
                let err = self.map_error(described, stage, &err);
                mark_error(&span, error_type(&err));
                Err(err)
            }
        }
    }

    fn map_error(
        &self,
        secret: String,
        stage: &str,
        err: &SdkError<GetSecretValueError, aws_sdk_secretsmanager::config::http::HttpResponse>,
    ) -> SecretsError {
        let status = err.raw_response().map(|r| r.status().as_u16());
        let SdkError::ServiceError(service) = err else {
            // An answer that could not be parsed as a Secrets Manager error, but says 403.
            if status == Some(403) {
                return SecretsError::AccessDenied {
                    secret,
                    region: self.region.clone(),
                };
            }
            return SecretsError::Request {
                secret,
                cause: DisplayErrorContext(err).to_string(),
            };
        };
        let service = service.err();
        let code = match service.code() {
            Some(code) => code,
            // No error code: a 403 is a denial (some proxies and emulators answer so).
            None if status == Some(403) => "AccessDeniedException",
            None => "Unknown",
        };
        classify(
            secret,
            stage,
            &self.region,
            service.is_resource_not_found_exception(),
            code,
            service.message().unwrap_or("no message"),
        )
    }
}

/// How errors name a Secrets Manager secret.
pub(crate) fn describe(secret_id: &str) -> String {
    format!("secret `{secret_id}`")
}

fn mark_error(span: &tracing::Span, error_type: &str) {
    span.record("otel.status_code", "error");
    span.record("otel.status_message", error_type);
    span.record("error.type", error_type);
}

/// A short, value-free name for an error, for spans.
pub(crate) fn error_type(err: &SecretsError) -> &str {
    match err {
        SecretsError::NotFound { .. } => "ResourceNotFoundException",
        SecretsError::AccessDenied { .. } => "AccessDeniedException",
        SecretsError::Throttled { code, .. } | SecretsError::Service { code, .. } => code,
        SecretsError::Binary { .. } => "BinarySecret",
        SecretsError::Timeout { .. } => "Timeout",
        _ => "RequestFailed",
    }
}

fn classify(
    secret: String,
    stage: &str,
    region: &str,
    not_found: bool,
    code: &str,
    message: &str,
) -> SecretsError {
    if not_found || code == "ResourceNotFoundException" {
        SecretsError::NotFound {
            secret,
            stage: stage.to_owned(),
            region: region.to_owned(),
        }
    } else if code == "AccessDeniedException" || code == "AccessDenied" {
        SecretsError::AccessDenied {
            secret,
            region: region.to_owned(),
        }
    } else if THROTTLING_CODES.contains(&code) {
        SecretsError::Throttled {
            secret,
            code: code.to_owned(),
        }
    } else {
        SecretsError::Service {
            secret,
            code: code.to_owned(),
            message: message.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_names_the_cause() {
        let not_found = classify(
            describe("db"),
            "AWSPENDING",
            "eu-west-1",
            false,
            "ResourceNotFoundException",
            "m",
        );
        assert_eq!(
            not_found.to_string(),
            "secret `db` was not found in Secrets Manager (stage AWSPENDING, region eu-west-1): \
             check the name or ARN and the region"
        );
        let denied = classify(
            describe("db"),
            "AWSCURRENT",
            "eu-west-1",
            false,
            "AccessDeniedException",
            "m",
        );
        assert!(
            denied.to_string().contains("secretsmanager:GetSecretValue"),
            "{denied}"
        );
        let throttled = classify(
            describe("db"),
            "AWSCURRENT",
            "r",
            false,
            "ThrottlingException",
            "Rate exceeded",
        );
        assert!(matches!(throttled, SecretsError::Throttled { .. }));
        assert!(
            throttled
                .to_string()
                .contains("throttled GetSecretValue for secret `db` after retries")
        );
        let other = classify(
            describe("db"),
            "AWSCURRENT",
            "r",
            false,
            "DecryptionFailure",
            "KMS said no",
        );
        assert_eq!(
            other.to_string(),
            "Secrets Manager refused GetSecretValue for secret `db`: DecryptionFailure: KMS said no"
        );
        assert_eq!(error_type(&other), "DecryptionFailure");
    }

    #[test]
    fn a_config_without_region_is_a_clear_error() {
        let config = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .build();
        let err = Fetcher::from_sdk_config(&config).unwrap_err();
        assert!(matches!(err, SecretsError::NoRegion));
        assert!(err.to_string().contains("AWS_REGION"), "{err}");
    }
}
