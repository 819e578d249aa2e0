//! Checks that a message really comes from Amazon SNS: the signing certificate is fetched only
//! from SNS itself, the signature matches, and the message is recent.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::signature::{
    RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey,
    VerificationAlgorithm,
};
use base64::Engine as _;
use tokio::sync::OnceCell;
use url::Url;

use super::message::SnsMessage;

const DEFAULT_MAX_MESSAGE_AGE: Duration = Duration::from_secs(60 * 60);
const DEFAULT_MAX_CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);
const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_CACHE_CAPACITY: usize = 32;
/// SNS certificates are about 2 KiB; anything much larger is not one.
const MAX_CERTIFICATE_BYTES: usize = 64 * 1024;

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
        /// The configured [`max_message_age`](VerifierBuilder::max_message_age).
        max_age: Duration,
        /// The configured [`max_clock_skew`](VerifierBuilder::max_clock_skew).
        max_skew: Duration,
    },
    /// The message's `TopicArn` is not among the [allowed](VerifierBuilder::allow_topic_arn)
    /// topics.
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

/// Why a [`Verifier`] could not be built.
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
    /// A certificate given to [`VerifierBuilder::add_root_certificate`] is not PEM.
    #[error("the root certificate given to add_root_certificate is not a PEM certificate: {0}")]
    InvalidRootCertificate(String),
    /// The HTTPS client fetching certificates could not be built.
    #[error("could not build the HTTPS client fetching SNS signing certificates: {0}")]
    HttpClient(String),
}

/// Settings of a [`Verifier`]; start from [`Verifier::builder`].
///
/// ```
/// use std::time::Duration;
///
/// let verifier = apprunner::jobs::Verifier::builder()
///     .max_message_age(Duration::from_secs(30 * 60))
///     .allow_topic_arn("arn:aws:sns:us-east-1:123456789012:jobs")
///     .build()?;
/// # let _ = verifier;
/// # Ok::<(), apprunner::jobs::VerifierBuildError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct VerifierBuilder {
    max_message_age: Duration,
    max_clock_skew: Duration,
    fetch_timeout: Duration,
    cache_capacity: usize,
    allowed_topics: Vec<String>,
    extra_trusted_authority: Option<String>,
    root_certificates: Vec<Vec<u8>>,
}

impl Default for VerifierBuilder {
    fn default() -> Self {
        Self {
            max_message_age: DEFAULT_MAX_MESSAGE_AGE,
            max_clock_skew: DEFAULT_MAX_CLOCK_SKEW,
            fetch_timeout: DEFAULT_FETCH_TIMEOUT,
            cache_capacity: DEFAULT_CACHE_CAPACITY,
            allowed_topics: Vec::new(),
            extra_trusted_authority: None,
            root_certificates: Vec::new(),
        }
    }
}

impl VerifierBuilder {
    /// How old a message may be (default 1 hour), on top of [`max_clock_skew`](Self::max_clock_skew).
    ///
    /// SNS keeps a message's original `Timestamp` on every retry, so this window must cover
    /// the subscription's delivery policy: its total retry time (at most 3,600 s for HTTP(S),
    /// SNS's hard limit, hence the default). A shorter window rejects late retries of
    /// genuine messages; a longer one only widens the replay window of a captured message.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let builder = apprunner::jobs::Verifier::builder().max_message_age(Duration::from_secs(900));
    /// # let _ = builder;
    /// ```
    pub fn max_message_age(mut self, age: Duration) -> Self {
        self.max_message_age = age;
        self
    }

    /// How far the sender's and our clocks may disagree (default 5 minutes): a message may
    /// claim to come this much from the future, and be this much older than
    /// [`max_message_age`](Self::max_message_age).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let builder = apprunner::jobs::Verifier::builder().max_clock_skew(Duration::from_secs(60));
    /// # let _ = builder;
    /// ```
    pub fn max_clock_skew(mut self, skew: Duration) -> Self {
        self.max_clock_skew = skew;
        self
    }

    /// The time limit of one certificate fetch, connection included (default 5 s). Keep it
    /// well under SNS's delivery timeout (15 s by default).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let builder = apprunner::jobs::Verifier::builder().fetch_timeout(Duration::from_secs(2));
    /// # let _ = builder;
    /// ```
    pub fn fetch_timeout(mut self, timeout: Duration) -> Self {
        self.fetch_timeout = timeout;
        self
    }

    /// How many signing certificates are kept (default 32, at least 1; the oldest is dropped
    /// first). SNS signs with one certificate per region at a time.
    ///
    /// ```
    /// let builder = apprunner::jobs::Verifier::builder().cache_capacity(4);
    /// # let _ = builder;
    /// ```
    pub fn cache_capacity(mut self, capacity: usize) -> Self {
        self.cache_capacity = capacity.max(1);
        self
    }

    /// Accepts only messages of this topic (call once per topic). With none, any topic is
    /// accepted: the signature proves SNS sent the message, not that *your* topic did, so
    /// AWS recommends checking the `TopicArn`.
    ///
    /// ```
    /// let builder = apprunner::jobs::Verifier::builder()
    ///     .allow_topic_arn("arn:aws:sns:eu-west-1:123456789012:jobs");
    /// # let _ = builder;
    /// ```
    pub fn allow_topic_arn(mut self, topic_arn: impl Into<String>) -> Self {
        self.allowed_topics.push(topic_arn.into());
        self
    }

    /// **For tests only.** Also trusts signing certificates served from this exact
    /// `host:port` (for example `127.0.0.1:8443`), still over HTTPS with a `.pem` path.
    ///
    /// Whoever controls that host can sign messages this verifier accepts. Nothing sets it
    /// implicitly (no environment variable does); production code must never call it.
    ///
    /// ```
    /// let builder = apprunner::jobs::Verifier::builder()
    ///     .dangerously_trust_signing_cert_host("127.0.0.1:8443");
    /// # let _ = builder;
    /// ```
    pub fn dangerously_trust_signing_cert_host(mut self, authority: impl Into<String>) -> Self {
        self.extra_trusted_authority = Some(authority.into().to_ascii_lowercase());
        self
    }

    /// **For tests only.** Adds a root CA (PEM) for the HTTPS connection fetching the signing
    /// certificate, on top of the system's roots: the test server's CA, with
    /// [`dangerously_trust_signing_cert_host`](Self::dangerously_trust_signing_cert_host).
    /// A root added here can impersonate `sns.<region>.amazonaws.com` too.
    ///
    /// ```
    /// # let test_ca_pem = "";
    /// let builder = apprunner::jobs::Verifier::builder().add_root_certificate(test_ca_pem);
    /// # let _ = builder;
    /// ```
    pub fn add_root_certificate(mut self, pem: impl AsRef<[u8]>) -> Self {
        self.root_certificates.push(pem.as_ref().to_vec());
        self
    }

    /// Builds the verifier (and its HTTPS client).
    ///
    /// # Errors
    ///
    /// [`VerifierBuildError`] when a root certificate is not PEM or the client cannot be
    /// built.
    ///
    /// ```
    /// let verifier = apprunner::jobs::Verifier::builder().build()?;
    /// # let _ = verifier;
    /// # Ok::<(), apprunner::jobs::VerifierBuildError>(())
    /// ```
    pub fn build(self) -> Result<Verifier, VerifierBuildError> {
        let mut client = reqwest::Client::builder()
            .timeout(self.fetch_timeout)
            .connect_timeout(self.fetch_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .https_only(true)
            .user_agent(concat!("apprunner-kit/", env!("CARGO_PKG_VERSION")));
        if !self.root_certificates.is_empty() {
            let mut roots = Vec::new();
            for pem in &self.root_certificates {
                let certs = reqwest::Certificate::from_pem_bundle(pem)
                    .map_err(|e| VerifierBuildError::InvalidRootCertificate(e.to_string()))?;
                if certs.is_empty() {
                    return Err(VerifierBuildError::InvalidRootCertificate(
                        "no BEGIN CERTIFICATE block".to_owned(),
                    ));
                }
                roots.extend(certs);
            }
            client = client.tls_certs_merge(roots);
        }
        let client = client
            .build()
            .map_err(|e| VerifierBuildError::HttpClient(error_chain(&e)))?;
        Ok(Verifier {
            inner: Arc::new(Inner {
                cache: Mutex::new(CertCache::new(self.cache_capacity)),
                settings: self,
                client,
            }),
        })
    }
}

/// Verifies the messages SNS POSTs to an HTTP(S) subscription, the way AWS documents it:
///
/// 1. `SignatureVersion` is `1` (SHA1withRSA) or `2` (SHA256withRSA);
/// 2. `SigningCertURL` is `https://sns.<region>.amazonaws.com/….pem` (or `.amazonaws.com.cn`),
///    without user info or a port: otherwise the message is rejected before anything is
///    fetched;
/// 3. the `TopicArn` is [allowed](VerifierBuilder::allow_topic_arn), when topics are listed;
/// 4. `Timestamp` is at most [`max_message_age`](VerifierBuilder::max_message_age) (1 hour)
///    old and at most [`max_clock_skew`](VerifierBuilder::max_clock_skew) (5 minutes) ahead;
/// 5. the certificate, fetched over HTTPS (no redirects, with a timeout) and kept in a
///    bounded cache by URL (concurrent first uses fetch it once), is within its validity
///    period and holds an RSA key;
/// 6. the signature verifies over [`SnsMessage::string_to_sign`].
///
/// Cloning is cheap and shares the cache.
///
/// ```no_run
/// # async fn handle(body: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
/// use apprunner::jobs::{MessageType, Verifier};
///
/// let verifier = Verifier::builder().build()?;
/// match verifier.verify(body).await {
///     Ok(msg) if msg.kind == MessageType::Notification => { /* run the job */ }
///     Ok(_) => { /* confirmation: GET msg.subscribe_url */ }
///     Err(e) => { /* answer e.status(), log e (it never holds the payload) */ }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    settings: VerifierBuilder,
    client: reqwest::Client,
    cache: Mutex<CertCache>,
}

impl Verifier {
    /// The settings, with the defaults described on each [`VerifierBuilder`] method.
    ///
    /// ```
    /// let verifier = apprunner::jobs::Verifier::builder().build()?;
    /// # let _ = verifier;
    /// # Ok::<(), apprunner::jobs::VerifierBuildError>(())
    /// ```
    pub fn builder() -> VerifierBuilder {
        VerifierBuilder::default()
    }

    /// Parses a request body and verifies it; returns the message only when it is genuine.
    ///
    /// # Errors
    ///
    /// [`VerifyError`]; answer with its [`status`](VerifyError::status).
    ///
    /// ```no_run
    /// # async fn f(verifier: apprunner::jobs::Verifier, body: Vec<u8>) {
    /// let message = verifier.verify(&body).await;
    /// # }
    /// ```
    pub async fn verify(&self, body: &[u8]) -> Result<SnsMessage, VerifyError> {
        let message = SnsMessage::from_json(body)?;
        self.verify_message(&message).await?;
        Ok(message)
    }

    /// Verifies an already parsed message.
    ///
    /// # Errors
    ///
    /// [`VerifyError`]; answer with its [`status`](VerifyError::status).
    ///
    /// ```no_run
    /// # async fn f(verifier: apprunner::jobs::Verifier, body: &[u8]) -> Result<(), apprunner::jobs::VerifyError> {
    /// let message = apprunner::jobs::SnsMessage::from_json(body)?;
    /// verifier.verify_message(&message).await?;
    /// # Ok(()) }
    /// ```
    pub async fn verify_message(&self, message: &SnsMessage) -> Result<(), VerifyError> {
        self.verify_at(message, SystemTime::now()).await
    }

    async fn verify_at(&self, message: &SnsMessage, now: SystemTime) -> Result<(), VerifyError> {
        let settings = &self.inner.settings;
        let algorithm = signature_algorithm(&message.signature_version)?;
        let cert_url = trusted_cert_url(
            &message.signing_cert_url,
            settings.extra_trusted_authority.as_deref(),
        )?;
        if !settings.allowed_topics.is_empty()
            && !settings.allowed_topics.contains(&message.topic_arn)
        {
            return Err(VerifyError::UnexpectedTopic {
                topic_arn: truncate(&message.topic_arn, 256),
            });
        }
        check_fresh(
            message.sent_at()?,
            now,
            settings.max_message_age,
            settings.max_clock_skew,
        )?;
        let signed = message.string_to_sign()?;
        let signature = base64::engine::general_purpose::STANDARD
            .decode(message.signature.trim())
            .map_err(|_| VerifyError::BadSignature {
                reason: "is not base64",
            })?;

        let cert = self.certificate(&cert_url, now).await?;
        UnparsedPublicKey::new(algorithm, &cert.public_key)
            .verify(signed.as_bytes(), &signature)
            .map_err(|_| VerifyError::BadSignature {
                reason: "does not match the message's content",
            })
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, CertCache> {
        self.inner
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The certificate at `url`, valid at `now`: from the cache, or fetched once for all the
    /// callers that want it at the same time (they share the outcome, a failure too). A failed
    /// fetch or an expired certificate leaves the cache, so the next message fetches again.
    async fn certificate(
        &self,
        url: &Url,
        now: SystemTime,
    ) -> Result<Arc<SigningCert>, VerifyError> {
        let cell = self.lock_cache().cell(url.as_str());
        let outcome = cell.get_or_init(|| self.fetch(url)).await.clone();
        let outcome = outcome.and_then(|cert| match cert.check_valid_at(now) {
            Ok(()) => Ok(cert),
            Err(reason) => Err(VerifyError::CertificateInvalid {
                url: url.to_string(),
                reason,
            }),
        });
        if outcome.is_err() {
            self.lock_cache().forget(url.as_str(), &cell);
        }
        outcome
    }

    async fn fetch(&self, url: &Url) -> Result<Arc<SigningCert>, VerifyError> {
        tracing::debug!(url = %url, "fetching the SNS signing certificate");
        let failed = |reason: String| VerifyError::CertificateFetch {
            url: url.to_string(),
            reason,
        };
        let mut response = self
            .inner
            .client
            .get(url.clone())
            .send()
            .await
            .map_err(|e| failed(error_chain(&e)))?;
        if !response.status().is_success() {
            return Err(failed(format!("HTTP status {}", response.status())));
        }
        let mut pem = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| failed(error_chain(&e)))?
        {
            if pem.len() + chunk.len() > MAX_CERTIFICATE_BYTES {
                return Err(VerifyError::CertificateInvalid {
                    url: url.to_string(),
                    reason: format!("is larger than {MAX_CERTIFICATE_BYTES} bytes"),
                });
            }
            pem.extend_from_slice(&chunk);
        }
        SigningCert::from_pem(&pem).map(Arc::new).map_err(|reason| {
            VerifyError::CertificateInvalid {
                url: url.to_string(),
                reason: reason.to_owned(),
            }
        })
    }
}

/// The algorithm of a `SignatureVersion`.
fn signature_algorithm(version: &str) -> Result<&'static dyn VerificationAlgorithm, VerifyError> {
    match version {
        "1" => Ok(&RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY),
        "2" => Ok(&RSA_PKCS1_2048_8192_SHA256),
        other => Err(VerifyError::UnsupportedSignatureVersion {
            version: truncate(other, 16),
        }),
    }
}

/// Parses `SigningCertURL` and checks it is an SNS certificate URL (or on the one extra
/// `host:port` a test trusts).
fn trusted_cert_url(raw: &str, extra_authority: Option<&str>) -> Result<Url, VerifyError> {
    let untrusted = |host: String, reason| VerifyError::UntrustedCertificateUrl {
        host: truncate(&host, 256),
        reason,
    };
    let url = Url::parse(raw).map_err(|_| untrusted(String::new(), "is not a URL"))?;
    let host = url.host_str().unwrap_or_default().to_owned();
    let authority = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.clone(),
    };
    if url.scheme() != "https" {
        return Err(untrusted(authority, "is not https"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(untrusted(authority, "has user info"));
    }
    let extra = extra_authority.is_some_and(|extra| extra == authority);
    if !extra {
        if !is_sns_host(&host) {
            return Err(untrusted(authority, "is not on an SNS host"));
        }
        if url.port().is_some() {
            return Err(untrusted(authority, "has a port"));
        }
    }
    if !url.path().ends_with(".pem") {
        return Err(untrusted(authority, "does not name a .pem file"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(untrusted(authority, "has a query or a fragment"));
    }
    Ok(url)
}

/// `sns.<region>.amazonaws.com` or `sns.<region>.amazonaws.com.cn` (the URL parser has already
/// lower-cased the host).
fn is_sns_host(host: &str) -> bool {
    let Some(rest) = host.strip_prefix("sns.") else {
        return false;
    };
    let region = rest
        .strip_suffix(".amazonaws.com")
        .or_else(|| rest.strip_suffix(".amazonaws.com.cn"));
    region.is_some_and(|region| {
        region.len() >= 3
            && region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    })
}

/// Accepts a message sent at most `max_age + max_skew` ago and at most `max_skew` ahead.
fn check_fresh(
    sent: SystemTime,
    now: SystemTime,
    max_age: Duration,
    max_skew: Duration,
) -> Result<(), VerifyError> {
    let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    let age_secs = match now.duration_since(sent) {
        Ok(age) if age <= max_age.saturating_add(max_skew) => return Ok(()),
        Ok(age) => secs(age),
        Err(ahead) if ahead.duration() <= max_skew => return Ok(()),
        Err(ahead) => -secs(ahead.duration()),
    };
    Err(VerifyError::Stale {
        age_secs,
        max_age,
        max_skew,
    })
}

/// The public key and validity of a signing certificate.
#[derive(Debug)]
struct SigningCert {
    /// The `SubjectPublicKeyInfo`, DER (aws-lc-rs takes it as is).
    public_key: Vec<u8>,
    not_before: i64,
    not_after: i64,
    validity: String,
}

impl SigningCert {
    fn from_pem(pem: &[u8]) -> Result<Self, &'static str> {
        let (_, pem) =
            x509_parser::pem::parse_x509_pem(pem).map_err(|_| "is not a PEM certificate")?;
        let cert = pem
            .parse_x509()
            .map_err(|_| "is not a valid X.509 certificate")?;
        let key = cert.public_key();
        if key.algorithm.algorithm != x509_parser::oid_registry::OID_PKCS1_RSAENCRYPTION {
            return Err("does not hold an RSA key");
        }
        let validity = cert.validity();
        Ok(Self {
            public_key: key.raw.to_vec(),
            not_before: validity.not_before.timestamp(),
            not_after: validity.not_after.timestamp(),
            validity: format!("from {} to {}", validity.not_before, validity.not_after),
        })
    }

    fn check_valid_at(&self, now: SystemTime) -> Result<(), String> {
        let now = match now.duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            Err(_) => 0,
        };
        if now < self.not_before {
            Err(format!("is not valid yet (valid {})", self.validity))
        } else if now > self.not_after {
            Err(format!("has expired (valid {})", self.validity))
        } else {
            Ok(())
        }
    }
}

type CertCell = Arc<OnceCell<Result<Arc<SigningCert>, VerifyError>>>;

/// Fetch outcomes by URL, at most `capacity`, the oldest dropped first.
#[derive(Debug)]
struct CertCache {
    capacity: usize,
    cells: HashMap<String, CertCell>,
    order: VecDeque<String>,
}

impl CertCache {
    fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            cells: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    fn cell(&mut self, url: &str) -> CertCell {
        if let Some(cell) = self.cells.get(url) {
            return Arc::clone(cell);
        }
        while self.cells.len() >= self.capacity {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.cells.remove(&oldest);
        }
        let cell = CertCell::default();
        self.cells.insert(url.to_owned(), Arc::clone(&cell));
        self.order.push_back(url.to_owned());
        cell
    }

    /// Drops `url` if it still maps to `cell` (not to a newer fetch).
    fn forget(&mut self, url: &str, cell: &CertCell) {
        if self
            .cells
            .get(url)
            .is_some_and(|held| Arc::ptr_eq(held, cell))
        {
            self.cells.remove(url);
            self.order.retain(|u| u != url);
        }
    }
}

/// An error and its sources, one line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        out.push_str(": ");
        out.push_str(&e.to_string());
        source = e.source();
    }
    out
}

fn truncate(value: &str, max_chars: usize) -> String {
    value.chars().take(max_chars).collect()
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
