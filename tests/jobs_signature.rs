//! SNS HTTP(S) message verification end to end: the test plays Amazon SNS (`sns_common`). It
//! makes an RSA signing key and certificate, serves the certificate from a local HTTPS server
//! (counting the requests it receives), signs messages itself (SignatureVersion 1: SHA1withRSA,
//! encoded by hand; 2: SHA256withRSA, by aws-lc-rs) over a string to sign built here
//! independently of the kit, and checks what `apprunner::jobs::Verifier` accepts and rejects.

#[path = "sns_common/mod.rs"]
mod sns_common;

use std::time::Duration;

use apprunner::jobs::{MessageType, SnsMessage, Verifier, VerifyError};
use base64::Engine as _;
use serde_json::{Value, json};
use sns_common::{CertServer, Signer, resign, timestamp};

const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:jobs";
/// A job payload: JSON inside the JSON, a newline, non-ASCII (the string to sign takes the
/// unescaped value).
const PAYLOAD: &str = "{\"job\":\"resize-image\",\"id\":42}\nsecond line: ünïcode \"quoted\"";

// ---- messages -------------------------------------------------------------------------------

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
