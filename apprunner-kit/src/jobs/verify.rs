//! Checks that a message really comes from Amazon SNS: the signing certificate is fetched only
//! from SNS itself, the signature matches, and the message is recent.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use aws_lc_rs::signature::{
    RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey,
    VerificationAlgorithm,
};
use base64::Engine as _;
use url::Url;

use super::cert::{self, CertCache, SigningCert, trusted_cert_url};
use super::error::{VerifierBuildError, VerifyError, error_chain, truncate};
use super::message::SnsMessage;

const DEFAULT_MAX_MESSAGE_AGE: Duration = Duration::from_secs(60 * 60);
const DEFAULT_MAX_CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);
const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_CACHE_CAPACITY: usize = 32;

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
///    on the default port, without user info, query or fragment: otherwise the message is
///    rejected before anything is fetched;
/// 3. the `TopicArn` is [allowed](VerifierBuilder::allow_topic_arn), when topics are listed;
/// 4. `Timestamp` is at most [`max_message_age`](VerifierBuilder::max_message_age) (1 hour)
///    plus [`max_clock_skew`](VerifierBuilder::max_clock_skew) (5 minutes) old, and at most
///    the skew ahead (SNS keeps the first `Timestamp` on retries: see `max_message_age`);
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
    /// Starts the settings, each at the default its [`VerifierBuilder`] method describes.
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
        let outcome = cell
            .get_or_init(|| cert::fetch(&self.inner.client, url))
            .await
            .clone();
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

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    #[test]
    fn signature_versions() {
        assert!(signature_algorithm("1").is_ok());
        assert!(signature_algorithm("2").is_ok());
        for version in ["", "3", "0", " 2", "2.0", "SHA256"] {
            let err = signature_algorithm(version).unwrap_err();
            assert!(matches!(
                err,
                VerifyError::UnsupportedSignatureVersion { .. }
            ));
            assert_eq!(err.status(), 400);
        }
        let long = "9".repeat(1000);
        match signature_algorithm(&long).unwrap_err() {
            VerifyError::UnsupportedSignatureVersion { version } => assert_eq!(version.len(), 16),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn timestamp_window() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let hour = Duration::from_secs(3600);
        let skew = Duration::from_secs(300);
        let fresh = |sent| check_fresh(sent, now, hour, skew);
        assert!(fresh(now).is_ok());
        assert!(fresh(now - hour).is_ok());
        // the last retry of a one-hour delivery policy, delivered a bit late: within the skew
        assert!(fresh(now - hour - skew).is_ok());
        assert!(fresh(now + skew).is_ok());

        let stale = fresh(now - hour - skew - Duration::from_secs(1)).unwrap_err();
        assert!(matches!(
            stale,
            VerifyError::Stale { age_secs: 3901, max_age, max_skew } if max_age == hour && max_skew == skew
        ));
        assert_eq!(stale.status(), 400);
        assert!(stale.to_string().contains("3901s old"), "{stale}");
        assert!(
            stale.to_string().contains("3900s old to 300s ahead"),
            "{stale}"
        );

        let future = fresh(now + skew + Duration::from_secs(1)).unwrap_err();
        assert!(matches!(future, VerifyError::Stale { age_secs: -301, .. }));
    }

    #[test]
    fn verifier_and_its_futures_can_live_in_an_axum_handler() {
        fn send_sync_clone<T: Send + Sync + Clone + 'static>(_: &T) {}
        fn send<T: Send>(_: T) {}
        let verifier = Verifier::builder().build().unwrap();
        send_sync_clone(&verifier);
        send(verifier.verify(b"{}"));
        send_sync_clone(&VerifyError::BadSignature { reason: "x" });
    }

    #[test]
    fn statuses() {
        let fetch = VerifyError::CertificateFetch {
            url: "https://sns.us-east-1.amazonaws.com/x.pem".to_owned(),
            reason: "timed out".to_owned(),
        };
        assert_eq!(fetch.status(), 503);
        let topic = VerifyError::UnexpectedTopic {
            topic_arn: "arn:aws:sns:us-east-1:1:other".to_owned(),
        };
        assert_eq!(topic.status(), 403);
        let invalid = VerifyError::CertificateInvalid {
            url: String::new(),
            reason: "has expired".to_owned(),
        };
        assert_eq!(invalid.status(), 400);
    }
}
