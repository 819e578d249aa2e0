//! The one error type of `apprunner::secrets`.

use std::time::Duration;

/// Why secrets could not be read or put into the environment.
///
/// Every message names the secret (its name or ARN, or the variable an injected secret was
/// expected in) and says what to do. No message ever contains a secret value: JSON parse
/// errors report a line and column only, never the text around them.
///
/// # Examples
///
/// ```
/// use apprunner::secrets::{Plan, SecretsError};
///
/// let err = Plan::new().mappings("JWT_SECRET").unwrap_err();
/// assert!(matches!(err, SecretsError::InvalidConfig { .. }));
/// assert!(err.to_string().contains("VAR=secret"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretsError {
    /// No AWS region is configured, so Secrets Manager cannot be called.
    #[error(
        "no AWS region configured for Secrets Manager: set AWS_REGION (or AWS_DEFAULT_REGION, \
         or `region` in the AWS config profile)"
    )]
    NoRegion,

    /// The secret (or the requested version stage of it) does not exist.
    #[error(
        "{secret} was not found in Secrets Manager (stage {stage}, region {region}): check the \
         name or ARN and the region"
    )]
    NotFound {
        /// The secret, as named in the declaration.
        secret: String,
        /// The version stage that was asked for, e.g. `AWSCURRENT`.
        stage: String,
        /// The region that was asked.
        region: String,
    },

    /// The caller's credentials may not read the secret.
    #[error(
        "access denied reading {secret} (region {region}): the role needs IAM permission \
         secretsmanager:GetSecretValue on this secret (and kms:Decrypt on its key if it uses a \
         customer-managed KMS key)"
    )]
    AccessDenied {
        /// The secret, as named in the declaration.
        secret: String,
        /// The region that was asked.
        region: String,
    },

    /// Secrets Manager kept throttling the request after the SDK's retries.
    #[error(
        "Secrets Manager throttled GetSecretValue for {secret} after retries ({code}): fetch \
         fewer secrets at once, or cache them (apprunner::secrets::SecretCache)"
    )]
    Throttled {
        /// The secret, as named in the declaration.
        secret: String,
        /// The AWS error code, e.g. `ThrottlingException`.
        code: String,
    },

    /// Secrets Manager answered with another error.
    #[error("Secrets Manager refused GetSecretValue for {secret}: {code}: {message}")]
    Service {
        /// The secret, as named in the declaration.
        secret: String,
        /// The AWS error code, e.g. `DecryptionFailure`.
        code: String,
        /// The message AWS sent with the error (it never contains the secret value).
        message: String,
    },

    /// The request could not be made or its answer not read (network, credentials, endpoint).
    #[error(
        "could not call Secrets Manager GetSecretValue for {secret}: {cause} (check network \
         access to Secrets Manager — behind a VPC connector it needs a NAT gateway or a VPC \
         endpoint — and the AWS credentials)"
    )]
    Request {
        /// The secret, as named in the declaration.
        secret: String,
        /// What went wrong, as reported by the AWS SDK.
        cause: String,
    },

    /// Fetching took longer than the configured timeout.
    #[error(
        "timed out after {after:?} fetching {secret} from Secrets Manager: check network access \
         (behind a VPC connector it needs a NAT gateway or a VPC endpoint) or raise the timeout"
    )]
    Timeout {
        /// The secret, as named in the declaration.
        secret: String,
        /// The timeout that expired.
        after: Duration,
    },

    /// The secret holds binary data (`SecretBinary`), not text.
    #[error("{secret} holds binary data; only text secrets (SecretString) are supported")]
    Binary {
        /// The secret, as named in the declaration.
        secret: String,
    },

    /// The secret text is not a JSON object, but a key of it (or an RDS expansion) was asked for.
    #[error(
        "{secret} is not a JSON object ({what}); store key/value JSON in it, or map the whole \
         secret without `#key`"
    )]
    NotJson {
        /// The secret, as named in the declaration.
        secret: String,
        /// Where parsing failed (line and column), or what JSON value was found instead.
        what: String,
    },

    /// The secret's JSON object has no such key.
    #[error("{secret} has no key `{key}`: add it to the secret or fix the declaration")]
    MissingKey {
        /// The secret, as named in the declaration.
        secret: String,
        /// The key that was asked for.
        key: String,
    },

    /// A key of the secret's JSON has a value of the wrong kind (e.g. a port that is not a number).
    #[error("{secret}: key `{key}` {expected}")]
    InvalidValue {
        /// The secret, as named in the declaration.
        secret: String,
        /// The offending key.
        key: String,
        /// What the value should have been.
        expected: &'static str,
    },

    /// The RDS secret's `engine` is not one a `DATABASE_URL` can be built for.
    #[error(
        "{secret}: engine `{engine}` is not supported for DATABASE_URL; use postgres, \
         aurora-postgresql, mysql, mariadb or aurora-mysql"
    )]
    UnsupportedEngine {
        /// The secret, as named in the declaration.
        secret: String,
        /// The engine found in the secret.
        engine: String,
    },

    /// A variable declared as holding an injected secret is not set.
    #[error(
        "variable `{var}` should hold an injected secret but is not set: add the secret to the \
         service's runtime environment (App Runner/ECS `secrets`), or declare the secret by \
         name instead"
    )]
    InjectedMissing {
        /// The variable.
        var: String,
    },

    /// A secret value contains a NUL byte, which no environment variable can hold.
    #[error("the value for `{var}` contains a NUL byte and cannot be put into the environment")]
    NulInValue {
        /// The variable the value was meant for.
        var: String,
    },

    /// The secrets declaration (from code or from the environment) is malformed.
    #[error("invalid secrets declaration ({origin}): {reason}")]
    InvalidConfig {
        /// Where the declaration came from, e.g. `APPRUNNER_SECRETS`.
        origin: String,
        /// What is wrong and how to write it.
        reason: String,
    },

    /// Other threads exist, so the environment cannot be modified soundly.
    #[error(
        "secrets must be put into the environment before any other thread exists, but this \
         process has {threads} threads: call apprunner::secrets::bootstrap first in `main`, \
         before building the tokio runtime (or use #[apprunner::main], which does)"
    )]
    ThreadsRunning {
        /// How many threads the process has.
        threads: usize,
    },

    /// The runtime used to fetch secrets left threads behind (e.g. a hung DNS lookup).
    #[error(
        "the runtime used to fetch secrets still had {threads} threads after shutting down \
         (a DNS lookup may hang), so the environment was not modified: check DNS and network \
         access to Secrets Manager"
    )]
    LingeringThreads {
        /// How many threads the process has.
        threads: usize,
    },

    /// The temporary runtime used to fetch secrets could not be built.
    #[error("could not build the runtime used to fetch secrets (see the source error)")]
    Runtime(#[source] std::io::Error),
}

impl SecretsError {
    pub(crate) fn invalid_config(origin: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidConfig {
            origin: origin.into(),
            reason: reason.into(),
        }
    }
}
