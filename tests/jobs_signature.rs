//! SNS HTTP(S) message verification end to end: the test plays Amazon SNS. It makes an RSA
//! signing key and certificate, serves the certificate from a local HTTPS server (counting the
//! requests it receives), signs messages itself (SignatureVersion 1: SHA1withRSA, encoded by
//! hand; 2: SHA256withRSA, by aws-lc-rs) over a string to sign built here independently of the
//! kit, and checks what `apprunner::jobs::Verifier` accepts and rejects.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use apprunner::jobs::{MessageType, SnsMessage, Verifier, VerifyError};
use apprunner_kit_tests::TestCa;
use base64::Engine as _;
use http_body_util::Full;
use hyper::body::Bytes;
use num_bigint::BigUint;
use serde_json::{Value, json};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:jobs";
/// A job payload: JSON inside the JSON, a newline, non-ASCII (the string to sign takes the
/// unescaped value).
const PAYLOAD: &str = "{\"job\":\"resize-image\",\"id\":42}\nsecond line: ünïcode \"quoted\"";

// ---- SNS's signing key and certificate ------------------------------------------------------

/// The signing key (RSA 2048) and its self-signed certificate, PEM.
struct Signer {
    key: aws_lc_rs::signature::RsaKeyPair,
    modulus: BigUint,
    private_exponent: BigUint,
    cert_pem: String,
}

impl Signer {
    fn new() -> Self {
        Self::with_validity(None)
    }

    fn expired() -> Self {
        Self::with_validity(Some((
            rcgen::date_time_ymd(2000, 1, 1),
            rcgen::date_time_ymd(2001, 1, 1),
        )))
    }

    fn with_validity(validity: Option<(time::OffsetDateTime, time::OffsetDateTime)>) -> Self {
        let key =
            rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
                .expect("generate the RSA signing key");
        let mut params = rcgen::CertificateParams::new(vec!["sns.amazonaws.com".to_owned()])
            .expect("certificate parameters");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "sns.amazonaws.com");
        if let Some((not_before, not_after)) = validity {
            params.not_before = not_before;
            params.not_after = not_after;
        }
        let cert = params
            .self_signed(&key)
            .expect("self-sign the signing certificate");
        let pkcs8 = key.serialize_der();
        let (modulus, private_exponent) = rsa_n_and_d(&pkcs8);
        Self {
            key: aws_lc_rs::signature::RsaKeyPair::from_pkcs8(&pkcs8).expect("load the RSA key"),
            modulus,
            private_exponent,
            cert_pem: cert.pem(),
        }
    }

    /// Base64 of the RSA PKCS#1 v1.5 signature of `data`: SHA1 for version 1, SHA256 for 2.
    fn sign(&self, version: &str, data: &str) -> String {
        let signature = match version {
            "1" => self.sign_sha1(data.as_bytes()),
            _ => {
                let mut signature = vec![0; self.key.public_modulus_len()];
                self.key
                    .sign(
                        &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                        &aws_lc_rs::rand::SystemRandom::new(),
                        data.as_bytes(),
                        &mut signature,
                    )
                    .expect("sign with SHA256withRSA");
                signature
            }
        };
        base64::engine::general_purpose::STANDARD.encode(signature)
    }

    /// SHA1withRSA by hand (RFC 8017 EMSA-PKCS1-v1_5, then s = m^d mod n): aws-lc-rs verifies
    /// SHA1 signatures but does not make them.
    fn sign_sha1(&self, data: &[u8]) -> Vec<u8> {
        const SHA1_DIGEST_INFO: [u8; 15] = [
            0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04,
            0x14,
        ];
        let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, data);
        let len = self.key.public_modulus_len();
        let mut encoded = vec![0x00, 0x01];
        encoded.resize(len - SHA1_DIGEST_INFO.len() - hash.as_ref().len() - 1, 0xff);
        encoded.push(0x00);
        encoded.extend_from_slice(&SHA1_DIGEST_INFO);
        encoded.extend_from_slice(hash.as_ref());
        let signature = BigUint::from_bytes_be(&encoded)
            .modpow(&self.private_exponent, &self.modulus)
            .to_bytes_be();
        let mut out = vec![0; len - signature.len()];
        out.extend_from_slice(&signature);
        out
    }
}

/// `n` and `d` of a PKCS#8 RSA key: PrivateKeyInfo { version, algorithm, OCTET STRING
/// RSAPrivateKey { version, n, e, d, … } }.
fn rsa_n_and_d(pkcs8: &[u8]) -> (BigUint, BigUint) {
    /// One DER element: (tag, contents, what follows).
    fn element(input: &[u8]) -> (u8, &[u8], &[u8]) {
        let (len, header) = if input[1] < 0x80 {
            (usize::from(input[1]), 2)
        } else {
            let n = usize::from(input[1] & 0x7f);
            let len = input[2..2 + n]
                .iter()
                .fold(0, |len, byte| (len << 8) | usize::from(*byte));
            (len, 2 + n)
        };
        (
            input[0],
            &input[header..header + len],
            &input[header + len..],
        )
    }
    let (_, info, _) = element(pkcs8);
    let (_, _version, rest) = element(info);
    let (_, _algorithm, rest) = element(rest);
    let (tag, rsa_key, _) = element(rest);
    assert_eq!(tag, 0x04, "PKCS#8 holds the key in an OCTET STRING");
    let (_, fields, _) = element(rsa_key);
    let (_, _version, rest) = element(fields);
    let (_, n, rest) = element(rest);
    let (_, _e, rest) = element(rest);
    let (_, d, _) = element(rest);
    (BigUint::from_bytes_be(n), BigUint::from_bytes_be(d))
}

// ---- the certificate server -----------------------------------------------------------------

/// An HTTPS server on 127.0.0.1 serving PEM files by path (404 otherwise), counting the
/// connections and requests it receives.
struct CertServer {
    port: u16,
    ca: TestCa,
    connections: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for CertServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl CertServer {
    async fn start(files: Vec<(&'static str, String)>) -> Self {
        let ca = TestCa::generate();
        let cert = CertificateDer::from_pem_slice(ca.server_cert_pem().as_bytes())
            .expect("the test server certificate");
        let key = PrivateKeyDer::from_pem_slice(ca.server_key_pem().as_bytes())
            .expect("the test server key");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .expect("the server certificate and key");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the certificate server");
        let port = listener.local_addr().expect("its address").port();
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let files = Arc::new(files);
        let task = tokio::spawn({
            let (connections, requests) = (Arc::clone(&connections), Arc::clone(&requests));
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    connections.fetch_add(1, Ordering::SeqCst);
                    let (acceptor, files, requests) =
                        (acceptor.clone(), Arc::clone(&files), Arc::clone(&requests));
                    tokio::spawn(async move {
                        let Ok(tls) = acceptor.accept(stream).await else {
                            return;
                        };
                        let service = hyper::service::service_fn(move |req| {
                            requests.fetch_add(1, Ordering::SeqCst);
                            let body = files
                                .iter()
                                .find(|(path, _)| req.uri().path() == *path)
                                .map(|(_, pem)| pem.clone());
                            async move {
                                let mut response = hyper::Response::new(Full::new(Bytes::from(
                                    body.clone().unwrap_or_default(),
                                )));
                                if body.is_none() {
                                    *response.status_mut() = hyper::StatusCode::NOT_FOUND;
                                }
                                Ok::<_, Infallible>(response)
                            }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                            .await;
                    });
                }
            }
        });
        Self {
            port,
            ca,
            connections,
            requests,
            task,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    /// A verifier trusting this server (and its CA) for signing certificates.
    fn verifier(&self) -> Verifier {
        Verifier::builder()
            .dangerously_trust_signing_cert_host(format!("127.0.0.1:{}", self.port))
            .add_root_certificate(self.ca.ca_cert_pem())
            .build()
            .expect("build the verifier")
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

// ---- messages -------------------------------------------------------------------------------

fn timestamp(offset: time::Duration) -> String {
    (time::OffsetDateTime::now_utc() + offset)
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format the timestamp")
}

/// The string SNS signs, written here from AWS's documentation (independent of the kit):
/// `name\nvalue\n` for each present field of the type's list, in that order.
fn string_to_sign(message: &Value) -> String {
    let fields: &[&str] = if message["Type"] == "Notification" {
        &[
            "Message",
            "MessageId",
            "Subject",
            "Timestamp",
            "TopicArn",
            "Type",
        ]
    } else {
        &[
            "Message",
            "MessageId",
            "SubscribeURL",
            "Timestamp",
            "Token",
            "TopicArn",
            "Type",
        ]
    };
    let mut out = String::new();
    for field in fields {
        if let Some(value) = message[*field].as_str() {
            out.push_str(&format!("{field}\n{value}\n"));
        }
    }
    out
}

/// A signed message of `kind` (a notification with a subject when `subject` is set).
fn signed(
    signer: &Signer,
    version: &str,
    kind: &str,
    cert_url: &str,
    subject: Option<&str>,
) -> Value {
    let mut message = json!({
        "Type": kind,
        "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
        "TopicArn": TOPIC,
        "Message": PAYLOAD,
        "Timestamp": timestamp(time::Duration::ZERO),
        "SignatureVersion": version,
        "SigningCertURL": cert_url,
    });
    if kind == "Notification" {
        message["UnsubscribeURL"] =
            json!("https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=x");
        message["MessageAttributes"] = json!({"job": {"Type": "String", "Value": "resize-image"}});
        if let Some(subject) = subject {
            message["Subject"] = json!(subject);
        }
    } else {
        message["Token"] = json!("2336412f37fb687f5d51e6e241d09c805a5a57b30d712f794cc5f6a988666d9");
        message["SubscribeURL"] = json!(format!(
            "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn={TOPIC}&Token=2336412f"
        ));
    }
    resign(signer, &mut message);
    message
}

fn resign(signer: &Signer, message: &mut Value) {
    let version = message["SignatureVersion"]
        .as_str()
        .unwrap_or("2")
        .to_owned();
    message["Signature"] = json!(signer.sign(&version, &string_to_sign(message)));
}

async fn verify(verifier: &Verifier, message: &Value) -> Result<SnsMessage, VerifyError> {
    let result = verifier.verify(message.to_string().as_bytes()).await;
    if let Err(e) = &result {
        assert!(
            !e.to_string().contains("resize-image"),
            "the payload leaked: {e}"
        );
        assert!(
            !format!("{e:?}").contains("resize-image"),
            "the payload leaked: {e:?}"
        );
    }
    result
}

// ---- tests ----------------------------------------------------------------------------------

#[tokio::test]
async fn genuine_v1_and_v2_messages_of_every_type_are_accepted_and_the_certificate_fetched_once() {
    let signer = Signer::new();
    let server = CertServer::start(vec![(
        "/SimpleNotificationService-test.pem",
        signer.cert_pem.clone(),
    )])
    .await;
    let verifier = server.verifier();
    let cert_url = server.url("/SimpleNotificationService-test.pem");

    for version in ["1", "2"] {
        for (kind, subject) in [
            ("Notification", Some("resize")),
            ("Notification", None),
            ("SubscriptionConfirmation", None),
            ("UnsubscribeConfirmation", None),
        ] {
            let message = signed(&signer, version, kind, &cert_url, subject);
            let verified = verify(&verifier, &message)
                .await
                .unwrap_or_else(|e| panic!("v{version} {kind} {subject:?} rejected: {e}"));
            assert_eq!(verified.kind.as_str(), kind);
            assert_eq!(verified.message, PAYLOAD);
            assert_eq!(verified.subject.as_deref(), subject);
            if verified.kind == MessageType::Notification {
                assert_eq!(
                    verified.message_attributes.unwrap()["job"].value,
                    "resize-image"
                );
            } else {
                assert!(
                    verified
                        .subscribe_url
                        .unwrap()
                        .contains("ConfirmSubscription")
                );
            }
        }
    }
    assert_eq!(server.requests(), 1, "one fetch for eight messages");
}

#[tokio::test]
async fn concurrent_first_messages_fetch_the_certificate_once() {
    let signer = Signer::new();
    let server = CertServer::start(vec![("/cert.pem", signer.cert_pem.clone())]).await;
    let verifier = server.verifier();
    let message = signed(&signer, "2", "Notification", &server.url("/cert.pem"), None);
    let results =
        futures_util::future::join_all((0..16).map(|_| verify(&verifier, &message))).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(server.requests(), 1);
    // a clone shares the cache
    verify(&verifier.clone(), &message).await.unwrap();
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn an_altered_message_is_rejected() {
    let signer = Signer::new();
    let server = CertServer::start(vec![("/cert.pem", signer.cert_pem.clone())]).await;
    let verifier = server.verifier();
    for version in ["1", "2"] {
        let genuine = signed(
            &signer,
            version,
            "Notification",
            &server.url("/cert.pem"),
            Some("s"),
        );
        verify(&verifier, &genuine)
            .await
            .expect("the genuine message");
        for (field, altered) in [
            ("Message", PAYLOAD.replacen("42", "43", 1)),
            ("Subject", "t".to_owned()),
            ("TopicArn", format!("{TOPIC}2")),
            (
                "MessageId",
                "165545c9-2a5c-472c-8df2-7ff2be2b3b1c".to_owned(),
            ),
        ] {
            let mut message = genuine.clone();
            message[field] = json!(altered);
            let err = verify(&verifier, &message).await.unwrap_err();
            assert!(
                matches!(err, VerifyError::BadSignature { .. }),
                "{field}: {err:?}"
            );
            assert_eq!(err.status(), 400);
        }
        // a flipped byte in the signature itself
        let mut message = genuine.clone();
        let mut signature = base64::engine::general_purpose::STANDARD
            .decode(message["Signature"].as_str().unwrap())
            .unwrap();
        signature[10] ^= 0x01;
        message["Signature"] = json!(base64::engine::general_purpose::STANDARD.encode(signature));
        assert!(matches!(
            verify(&verifier, &message).await.unwrap_err(),
            VerifyError::BadSignature { .. }
        ));
        // a version 1 signature claimed as version 2, and the reverse
        let mut message = genuine.clone();
        message["SignatureVersion"] = json!(if version == "1" { "2" } else { "1" });
        assert!(matches!(
            verify(&verifier, &message).await.unwrap_err(),
            VerifyError::BadSignature { .. }
        ));
    }
}

#[tokio::test]
async fn a_certificate_url_on_an_untrusted_host_is_rejected_without_any_fetch() {
    let signer = Signer::new();
    let server = CertServer::start(vec![("/cert.pem", signer.cert_pem.clone())]).await;
    let verifier = server.verifier();
    for (url, host) in [
        // the same server under another name: trusting is by exact host:port
        (
            format!("https://localhost:{}/cert.pem", server.port),
            format!("localhost:{}", server.port),
        ),
        (
            format!("http://127.0.0.1:{}/cert.pem", server.port),
            format!("127.0.0.1:{}", server.port),
        ),
        (
            "https://sns.us-east-1.amazonaws.com.evil.com/cert.pem".to_owned(),
            "sns.us-east-1.amazonaws.com.evil.com".to_owned(),
        ),
    ] {
        let message = signed(&signer, "2", "Notification", &url, None);
        match verify(&verifier, &message).await.unwrap_err() {
            err @ VerifyError::UntrustedCertificateUrl { .. } => {
                assert_eq!(err.status(), 403);
                assert!(err.to_string().contains(&host), "{err}");
            }
            other => panic!("{url}: {other:?}"),
        }
    }
    // a default verifier trusts no local host at all
    let default = Verifier::builder().build().unwrap();
    let message = signed(&signer, "2", "Notification", &server.url("/cert.pem"), None);
    assert!(matches!(
        verify(&default, &message).await.unwrap_err(),
        VerifyError::UntrustedCertificateUrl { .. }
    ));
    assert_eq!(
        server.connections(),
        0,
        "nothing may be fetched from an untrusted host"
    );
    assert_eq!(server.requests(), 0);
}

#[tokio::test]
async fn stale_messages_and_unknown_signature_versions_are_rejected_before_any_fetch() {
    let signer = Signer::new();
    let server = CertServer::start(vec![("/cert.pem", signer.cert_pem.clone())]).await;
    let verifier = server.verifier();
    let cert_url = server.url("/cert.pem");

    let mut old = signed(&signer, "2", "Notification", &cert_url, None);
    old["Timestamp"] = json!(timestamp(-time::Duration::hours(2)));
    resign(&signer, &mut old);
    match verify(&verifier, &old).await.unwrap_err() {
        err @ VerifyError::Stale {
            age_secs, max_age, ..
        } => {
            assert!((7199..=7205).contains(&age_secs), "{age_secs}");
            assert_eq!(max_age, Duration::from_secs(3600));
            assert_eq!(err.status(), 400);
        }
        other => panic!("{other:?}"),
    }

    let mut future = signed(&signer, "2", "Notification", &cert_url, None);
    future["Timestamp"] = json!(timestamp(time::Duration::minutes(30)));
    resign(&signer, &mut future);
    assert!(matches!(
        verify(&verifier, &future).await.unwrap_err(),
        VerifyError::Stale { age_secs, .. } if age_secs < 0
    ));

    // 50 minutes old is within the default hour (SNS retries keep the first Timestamp)
    let mut retried = signed(&signer, "2", "Notification", &cert_url, None);
    retried["Timestamp"] = json!(timestamp(-time::Duration::minutes(50)));
    resign(&signer, &mut retried);
    let strict = Verifier::builder()
        .dangerously_trust_signing_cert_host(format!("127.0.0.1:{}", server.port))
        .max_message_age(Duration::from_secs(30 * 60))
        .build()
        .unwrap();
    assert!(matches!(
        verify(&strict, &retried).await.unwrap_err(),
        VerifyError::Stale { .. }
    ));

    for version in ["3", "0", "", "SHA256"] {
        let mut message = signed(&signer, "2", "Notification", &cert_url, None);
        message["SignatureVersion"] = json!(version);
        let err = verify(&verifier, &message).await.unwrap_err();
        assert!(
            matches!(err, VerifyError::UnsupportedSignatureVersion { .. }),
            "{err:?}"
        );
        assert_eq!(err.status(), 400);
    }
    assert_eq!(
        server.requests(),
        0,
        "nothing fetched for messages rejected up front"
    );

    verify(&verifier, &retried)
        .await
        .expect("a 50-minute-old retry is accepted");
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn an_expired_certificate_is_rejected_and_not_kept() {
    let signer = Signer::expired();
    let server = CertServer::start(vec![("/cert.pem", signer.cert_pem.clone())]).await;
    let verifier = server.verifier();
    let message = signed(&signer, "2", "Notification", &server.url("/cert.pem"), None);
    for fetches in 1..=2 {
        let err = verify(&verifier, &message).await.unwrap_err();
        assert!(
            matches!(err, VerifyError::CertificateInvalid { .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("expired"), "{err}");
        assert_eq!(
            server.requests(),
            fetches,
            "an expired certificate is fetched anew"
        );
    }
}

#[tokio::test]
async fn a_failed_fetch_is_a_503_and_is_retried_on_the_next_message() {
    let signer = Signer::new();
    let server = CertServer::start(vec![("/cert.pem", "not a certificate".to_owned())]).await;
    let verifier = server.verifier();

    let missing = signed(
        &signer,
        "2",
        "Notification",
        &server.url("/missing.pem"),
        None,
    );
    for fetches in 1..=2 {
        let err = verify(&verifier, &missing).await.unwrap_err();
        assert!(
            matches!(err, VerifyError::CertificateFetch { .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("404"), "{err}");
        assert_eq!(err.status(), 503, "SNS retries 5xx only");
        assert_eq!(server.requests(), fetches);
    }

    // concurrent messages share one failed fetch (all 503, SNS retries them)
    let results = futures_util::future::join_all((0..8).map(|_| verify(&verifier, &missing))).await;
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Err(VerifyError::CertificateFetch { .. })))
    );
    assert_eq!(server.requests(), 3);

    let garbage = signed(&signer, "2", "Notification", &server.url("/cert.pem"), None);
    let err = verify(&verifier, &garbage).await.unwrap_err();
    assert!(
        matches!(err, VerifyError::CertificateInvalid { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("not a PEM certificate"), "{err}");
}

#[tokio::test]
async fn only_allowed_topics_are_accepted() {
    let signer = Signer::new();
    let server = CertServer::start(vec![("/cert.pem", signer.cert_pem.clone())]).await;
    let verifier = Verifier::builder()
        .dangerously_trust_signing_cert_host(format!("127.0.0.1:{}", server.port))
        .add_root_certificate(server.ca.ca_cert_pem())
        .allow_topic_arn("arn:aws:sns:us-east-1:123456789012:other")
        .build()
        .unwrap();
    let message = signed(&signer, "2", "Notification", &server.url("/cert.pem"), None);
    let err = verify(&verifier, &message).await.unwrap_err();
    assert!(
        matches!(err, VerifyError::UnexpectedTopic { .. }),
        "{err:?}"
    );
    assert_eq!(err.status(), 403);
    assert_eq!(server.requests(), 0);

    let verifier = Verifier::builder()
        .dangerously_trust_signing_cert_host(format!("127.0.0.1:{}", server.port))
        .add_root_certificate(server.ca.ca_cert_pem())
        .allow_topic_arn("arn:aws:sns:us-east-1:123456789012:other")
        .allow_topic_arn(TOPIC)
        .build()
        .unwrap();
    verify(&verifier, &message).await.expect("an allowed topic");
}
