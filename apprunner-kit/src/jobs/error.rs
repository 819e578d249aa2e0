//! The errors of `apprunner::jobs`: why a message is rejected (and with which HTTP status), why a
//! verifier cannot be built, and what went wrong setting up or publishing jobs.

use std::time::Duration;

/// Why an SNS message was rejected. None of them carries the message's `Message` (a job's
/// payload).
///
/// [`status`](Self::status) is the HTTP status the endpoint answers with. SNS retries a
/// delivery only on a server error (5xx) or no answer, so every rejection of the message
/// itself is a 4xx (retrying cannot fix it), and only a failure on our side to fetch the
/// signing certificate is a 5xx (503), so that SNS delivers the message again later.
///
/// | variant | status |
/// |---|---|
/// | [`Malformed`](Self::Malformed), [`UnsupportedSignatureVersion`](Self::UnsupportedSignatureVersion), [`BadSignature`](Self::BadSignature), [`Stale`](Self::Stale), [`CertificateInvalid`](Self::CertificateInvalid) | 400 |
/// | [`UntrustedCertificateUrl`](Self::UntrustedCertificateUrl), [`UnexpectedTopic`](Self::UnexpectedTopic) | 403 |
/// | [`CertificateFetch`](Self::CertificateFetch) | 503 |
///
/// ```
/// use apprunner::jobs::{SnsMessage, VerifyError};
///
/// let err = SnsMessage::from_json(b"{}").unwrap_err();
/// assert!(matches!(err, VerifyError::Malformed { field: "Type", .. }));
/// assert_eq!(err.status(), 400);
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The body is not an SNS message: a field is missing, not a string, or unparsable.
    #[error(
        "SNS message rejected: its {field} {reason}; the endpoint only takes the JSON documents \
         Amazon SNS POSTs to HTTP(S) subscriptions"
    )]
    Malformed {
        /// The JSON field at fault (`body` for the whole document).
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `SignatureVersion` is neither `1` nor `2`.
    #[error(
        "SNS message rejected: SignatureVersion {version:?} is not supported; SNS signs with 1 \
         (SHA1withRSA) or 2 (SHA256withRSA), prefer 2 (the topic's SignatureVersion attribute)"
    )]
    UnsupportedSignatureVersion {
        /// The version the message claims (at most 16 characters of it).
        version: String,
    },
    /// `SigningCertURL` is not an `https://sns.<region>.amazonaws.com[.cn]/….pem` URL: the
    /// message was not signed by SNS. Nothing was fetched.
    #[error(
        "SNS message rejected: its SigningCertURL (host {host:?}) {reason}; only \
         https://sns.<region>.amazonaws.com/….pem (or .amazonaws.com.cn) is trusted, so the \
         message does not come from Amazon SNS"
    )]
    UntrustedCertificateUrl {
        /// The URL's host (with its port, if any); empty when the URL has none.
        host: String,
        /// Which rule the URL breaks.
        reason: &'static str,
    },
    /// The signing certificate could not be fetched (network, timeout, HTTP status). Not the
    /// message's fault: answered with 503 so SNS retries.
    #[error(
        "could not fetch the SNS signing certificate {url}: {reason}; check that the service can \
         reach sns.<region>.amazonaws.com over HTTPS (SNS retries the delivery)"
    )]
    CertificateFetch {
        /// The certificate URL (a trusted SNS URL).
        url: String,
        /// What failed.
        reason: String,
    },
    /// The fetched certificate is not usable: not a PEM X.509 certificate, not an RSA key, or
    /// outside its validity period.
    #[error(
        "SNS message rejected: the signing certificate {url} {reason}; SNS signs with a \
         currently valid certificate, so check the host's clock if this persists"
    )]
    CertificateInvalid {
        /// The certificate URL.
        url: String,
        /// What is wrong with the certificate.
        reason: String,
    },
    /// The signature does not match the message: altered, or not signed by SNS.
    #[error(
        "SNS message rejected: its Signature {reason}; the message was altered or not signed by \
         Amazon SNS"
    )]
    BadSignature {
        /// Why the signature does not verify.
        reason: &'static str,
    },
    /// `Timestamp` is outside the accepted window.
    #[error(
        "SNS message rejected as stale: its Timestamp is {age_secs}s old (negative: in the \
         future), outside the accepted window of {}s old to {}s ahead; check the host's clock, \
         or raise VerifierBuilder::max_message_age if the topic's delivery policy retries longer",
        .max_age.as_secs() + .max_skew.as_secs(),
        .max_skew.as_secs()
    )]
    Stale {
        /// How old the message is, in seconds (negative when it claims to come from the future).
        age_secs: i64,
        /// The configured [`max_message_age`](super::VerifierBuilder::max_message_age).
        max_age: Duration,
        /// The configured [`max_clock_skew`](super::VerifierBuilder::max_clock_skew).
        max_skew: Duration,
    },
    /// The message's `TopicArn` is not among the
    /// [allowed](super::VerifierBuilder::allow_topic_arn) topics.
    #[error(
        "SNS message rejected: topic {topic_arn} is not one this endpoint accepts; add it with \
         VerifierBuilder::allow_topic_arn or remove the subscription"
    )]
    UnexpectedTopic {
        /// The message's `TopicArn`.
        topic_arn: String,
    },
}

impl VerifyError {
    pub(crate) fn malformed(field: &'static str, reason: &'static str) -> Self {
        Self::Malformed { field, reason }
    }

    /// The HTTP status the endpoint answers with (see the table on [`VerifyError`]).
    ///
    /// ```
    /// let err = apprunner::jobs::VerifyError::BadSignature { reason: "does not match" };
    /// assert_eq!(err.status(), 400);
    /// ```
    pub fn status(&self) -> u16 {
        match self {
            Self::Malformed { .. }
            | Self::UnsupportedSignatureVersion { .. }
            | Self::CertificateInvalid { .. }
            | Self::BadSignature { .. }
            | Self::Stale { .. } => 400,
            Self::UntrustedCertificateUrl { .. } | Self::UnexpectedTopic { .. } => 403,
            Self::CertificateFetch { .. } => 503,
        }
    }
}

/// Why a [`Verifier`](super::Verifier) could not be built.
///
/// ```
/// let err = apprunner::jobs::Verifier::builder()
///     .add_root_certificate("not a certificate")
///     .build()
///     .unwrap_err();
/// assert!(err.to_string().contains("root certificate"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifierBuildError {
    /// A certificate given to
    /// [`add_root_certificate`](super::VerifierBuilder::add_root_certificate) is not PEM.
    #[error("the root certificate given to add_root_certificate is not a PEM certificate: {0}")]
    InvalidRootCertificate(String),
    /// The HTTPS client fetching certificates could not be built.
    #[error("could not build the HTTPS client fetching SNS signing certificates: {0}")]
    HttpClient(String),
}

/// An error and its sources, on one line.
pub(super) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        out.push_str(": ");
        out.push_str(&e.to_string());
        source = e.source();
    }
    out
}

/// At most `max_chars` characters of `value` (a sender-chosen string put in an error).
pub(super) fn truncate(value: &str, max_chars: usize) -> String {
    value.chars().take(max_chars).collect()
}

/// What went wrong setting up or publishing jobs. Each names the setting, job or topic at
/// fault and what to do.
///
/// ```
/// let err = apprunner::jobs::JobsError::Config {
///     var: "APPRUNNER_JOBS_TOPIC_ARN",
///     reason: "unset".into(),
/// };
/// assert!(err.to_string().contains("APPRUNNER_JOBS_TOPIC_ARN"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JobsError {
    /// A setting is missing or invalid.
    #[error("{var}: {reason}")]
    Config {
        /// The variable at fault.
        var: &'static str,
        /// Why, and what to do.
        reason: String,
    },
    /// A job's payload does not serialise to JSON.
    #[error("the payload of job `{job}` does not serialise to JSON: {source}")]
    Payload {
        /// The job.
        job: String,
        /// serde's error.
        #[source]
        source: serde_json::Error,
    },
    /// SNS refused the message or could not be reached (after the SDK's retries).
    #[error(
        "could not publish to {topic_arn}: {cause} (the service's role needs sns:Publish on the \
         topic, and kms:GenerateDataKey/kms:Decrypt on its key when it is encrypted)"
    )]
    Publish {
        /// The topic.
        topic_arn: String,
        /// The SDK's error, with its context.
        cause: String,
    },
    /// [`Jobs::router`](super::Jobs::router) was called with no handler registered.
    #[error(
        "no job handler is registered: register each job with Jobs::handle before Jobs::router"
    )]
    NoHandlers,
    /// The default SNS message verifier could not be built.
    #[error("the SNS message verifier could not be built: {0}")]
    Verifier(#[from] VerifierBuildError),
    /// The kit's deduplication table could not be created.
    #[error(
        "could not create the jobs table `{table}` in the service's database: {source} (the \
         database user needs CREATE on the schema)"
    )]
    Table {
        /// The table.
        table: &'static str,
        /// The database error.
        #[source]
        source: sqlx::Error,
    },
}
