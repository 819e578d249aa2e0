use super::*;

fn host_of(err: VerifyError) -> (String, &'static str) {
    match err {
        VerifyError::UntrustedCertificateUrl { host, reason } => (host, reason),
        other => panic!("expected UntrustedCertificateUrl, got {other:?}"),
    }
}

#[test]
fn sns_certificate_urls_are_trusted() {
    for url in [
        "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
        "https://sns.eu-central-1.amazonaws.com/SimpleNotificationService-01d088a6f77103d0fe307c0069e40ed6.pem",
        "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-abc.pem",
        "https://sns.us-gov-west-1.amazonaws.com/x.pem",
        // the default port is the same URL; the parser lower-cases the host
        "https://sns.us-east-1.amazonaws.com:443/SimpleNotificationService-abc.pem",
        "https://SNS.US-EAST-1.AMAZONAWS.COM/SimpleNotificationService-abc.pem",
    ] {
        assert!(trusted_cert_url(url, None).is_ok(), "{url}");
    }
}

#[test]
fn other_certificate_urls_are_rejected_with_their_host() {
    let cases = [
        (
            "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
            "sns.us-east-1.amazonaws.com",
            "is not https",
        ),
        (
            "https://evil.example.com/SimpleNotificationService-abc.pem",
            "evil.example.com",
            "is not on an SNS host",
        ),
        (
            "https://sns.us-east-1.amazonaws.com.evil.com/SimpleNotificationService-abc.pem",
            "sns.us-east-1.amazonaws.com.evil.com",
            "is not on an SNS host",
        ),
        (
            "https://sns.evil.com.amazonaws.com/x.pem",
            "sns.evil.com.amazonaws.com",
            "is not on an SNS host",
        ),
        (
            "https://s3.us-east-1.amazonaws.com/bucket/x.pem",
            "s3.us-east-1.amazonaws.com",
            "is not on an SNS host",
        ),
        (
            "https://sns.amazonaws.com/x.pem",
            "sns.amazonaws.com",
            "is not on an SNS host",
        ),
        (
            "https://user:pw@sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
            "sns.us-east-1.amazonaws.com",
            "has user info",
        ),
        (
            "https://evil.com@sns.us-east-1.amazonaws.com/x.pem",
            "sns.us-east-1.amazonaws.com",
            "has user info",
        ),
        (
            "https://sns.us-east-1.amazonaws.com:8443/SimpleNotificationService-abc.pem",
            "sns.us-east-1.amazonaws.com:8443",
            "has a port",
        ),
        (
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.txt",
            "sns.us-east-1.amazonaws.com",
            "does not name a .pem file",
        ),
        (
            "https://sns.us-east-1.amazonaws.com/?Action=x&f=.pem",
            "sns.us-east-1.amazonaws.com",
            "does not name a .pem file",
        ),
        (
            "https://sns.us-east-1.amazonaws.com/x.pem?redirect=evil",
            "sns.us-east-1.amazonaws.com",
            "has a query or a fragment",
        ),
        (
            "https://127.0.0.1:8443/x.pem",
            "127.0.0.1:8443",
            "is not on an SNS host",
        ),
        ("not a url", "", "is not a URL"),
    ];
    for (url, host, reason) in cases {
        let err = trusted_cert_url(url, None).unwrap_err();
        assert_eq!(err.status(), 403, "{url}");
        assert_eq!(host_of(err), (host.to_owned(), reason), "{url}");
    }
}

#[test]
fn the_dangerous_test_host_is_trusted_only_exactly() {
    let extra = Some("127.0.0.1:8443");
    assert!(trusted_cert_url("https://127.0.0.1:8443/cert.pem", extra).is_ok());
    // the other rules still hold for it
    for (url, reason) in [
        ("https://127.0.0.1:8444/cert.pem", "is not on an SNS host"),
        ("https://127.0.0.1/cert.pem", "is not on an SNS host"),
        ("http://127.0.0.1:8443/cert.pem", "is not https"),
        (
            "https://127.0.0.1:8443/cert.txt",
            "does not name a .pem file",
        ),
        ("https://u@127.0.0.1:8443/cert.pem", "has user info"),
    ] {
        assert_eq!(
            host_of(trusted_cert_url(url, extra).unwrap_err()).1,
            reason,
            "{url}"
        );
    }
    // and SNS stays trusted
    assert!(trusted_cert_url("https://sns.us-east-1.amazonaws.com/x.pem", extra).is_ok());
}

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

#[test]
fn cache_is_bounded_and_reuses_cells() {
    let mut cache = CertCache::new(2);
    let a = cache.cell("a");
    assert!(Arc::ptr_eq(&a, &cache.cell("a")));
    let _b = cache.cell("b");
    let _c = cache.cell("c");
    assert_eq!(cache.cells.len(), 2);
    assert!(!cache.cells.contains_key("a"), "the oldest goes first");
    assert!(!Arc::ptr_eq(&a, &cache.cell("a")));
    assert_eq!(cache.cells.len(), 2);
}

#[test]
fn forget_drops_only_the_same_cell() {
    let mut cache = CertCache::new(4);
    let old = cache.cell("u");
    cache.forget("u", &old);
    assert!(!cache.cells.contains_key("u"));
    assert!(cache.order.is_empty());
    let new = cache.cell("u");
    cache.forget("u", &old);
    assert!(Arc::ptr_eq(&new, &cache.cell("u")), "a newer fetch is kept");
}

#[test]
fn certificate_validity_period() {
    let cert = SigningCert {
        public_key: Vec::new(),
        not_before: 100,
        not_after: 200,
        validity: "from A to B".to_owned(),
    };
    let at = |secs| UNIX_EPOCH + Duration::from_secs(secs);
    assert!(cert.check_valid_at(at(150)).is_ok());
    assert!(
        cert.check_valid_at(at(99))
            .unwrap_err()
            .contains("not valid yet")
    );
    assert!(
        cert.check_valid_at(at(201))
            .unwrap_err()
            .contains("expired")
    );
}

#[test]
fn non_certificates_are_rejected() {
    assert_eq!(
        SigningCert::from_pem(b"hello").unwrap_err(),
        "is not a PEM certificate"
    );
    let not_x509 = b"-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n";
    assert_eq!(
        SigningCert::from_pem(not_x509).unwrap_err(),
        "is not a valid X.509 certificate"
    );
}
