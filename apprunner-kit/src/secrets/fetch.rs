//! The one `GetSecretValue` call, traced by the AWS SDK interceptor like any other AWS call,
//! and the mapping of its errors.

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;

use super::error::SecretsError;
use super::secret::Secret;
use crate::client::AwsTracing;

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

/// A Secrets Manager client bound to a region, its calls traced by [`AwsTracing`]: each is a
/// CLIENT span `SecretsManager.GetSecretValue` (or, before telemetry exists, a record of one).
#[derive(Clone, Debug)]
pub(crate) struct Fetcher {
    config: SdkConfig,
    client: Client,
    region: String,
}

impl Fetcher {
    /// Loads the standard AWS configuration chain (env, profile, container/instance role), which
    /// also honours `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_SECRETS_MANAGER`.
    pub(crate) async fn from_env(tracing: AwsTracing) -> Result<Self, SecretsError> {
        let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
        Self::from_sdk_config(&config, tracing)
    }

    pub(crate) fn from_sdk_config(
        config: &SdkConfig,
        tracing: AwsTracing,
    ) -> Result<Self, SecretsError> {
        let region = config.region().ok_or(SecretsError::NoRegion)?.to_string();
        Ok(Self {
            config: config.clone(),
            client: client(config, tracing),
            region,
        })
    }

    /// The same client, its calls outside any span reported under `service`.
    pub(crate) fn with_local_service(mut self, service: &str) -> Self {
        self.client = client(&self.config, AwsTracing::new().local_service(service));
        self
    }

    pub(crate) fn region(&self) -> &str {
        &self.region
    }

    /// `GetSecretValue` for one version stage. The value never reaches the span.
    pub(crate) async fn get(
        &self,
        secret_id: &str,
        stage: &str,
    ) -> Result<Secret<String>, SecretsError> {
        let result = self
            .client
            .get_secret_value()
            .secret_id(secret_id)
            .version_stage(stage)
            .send()
            .await;
        let described = describe(secret_id);
        match result {
            Ok(mut output) => match output.secret_string.take() {
                Some(text) => Ok(Secret::new(text)),
                None => Err(SecretsError::Binary { secret: described }),
            },
            Err(err) => Err(self.map_error(described, stage, &err)),
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

/// A Secrets Manager client with `tracing` attached.
fn client(config: &SdkConfig, tracing: AwsTracing) -> Client {
    Client::from_conf(
        aws_sdk_secretsmanager::config::Builder::from(config)
            .interceptor(tracing)
            .build(),
    )
}

/// How errors name a Secrets Manager secret.
pub(crate) fn describe(secret_id: &str) -> String {
    format!("secret `{secret_id}`")
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
    }

    #[test]
    fn a_config_without_region_is_a_clear_error() {
        let config = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .build();
        let err = Fetcher::from_sdk_config(&config, AwsTracing::new()).unwrap_err();
        assert!(matches!(err, SecretsError::NoRegion));
        assert!(err.to_string().contains("AWS_REGION"), "{err}");
    }
}
