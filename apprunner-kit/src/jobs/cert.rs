//! The signing certificate: where it may come from, fetching and reading it, and the cache.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::OnceCell;
use url::Url;

use super::error::{VerifyError, error_chain, truncate};

/// SNS certificates are about 2 KiB; anything much larger is not one.
const MAX_CERTIFICATE_BYTES: usize = 64 * 1024;

/// Parses `SigningCertURL` and checks it is an SNS certificate URL (or on the one extra
/// `host:port` a test trusts).
pub(super) fn trusted_cert_url(
    raw: &str,
    extra_authority: Option<&str>,
) -> Result<Url, VerifyError> {
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

/// Fetches and parses the signing certificate at `url` (already checked by
/// [`trusted_cert_url`]).
pub(super) async fn fetch(
    client: &reqwest::Client,
    url: &Url,
) -> Result<Arc<SigningCert>, VerifyError> {
    tracing::debug!(url = %url, "fetching the SNS signing certificate");
    let failed = |reason: String| VerifyError::CertificateFetch {
        url: url.to_string(),
        reason,
    };
    let mut response = client
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
    SigningCert::from_pem(&pem)
        .map(Arc::new)
        .map_err(|reason| VerifyError::CertificateInvalid {
            url: url.to_string(),
            reason: reason.to_owned(),
        })
}

/// The public key and validity of a signing certificate.
#[derive(Debug)]
pub(super) struct SigningCert {
    /// The `SubjectPublicKeyInfo`, DER (aws-lc-rs takes it as is).
    pub(super) public_key: Vec<u8>,
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

    pub(super) fn check_valid_at(&self, now: SystemTime) -> Result<(), String> {
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

pub(super) type CertCell = Arc<OnceCell<Result<Arc<SigningCert>, VerifyError>>>;

/// Fetch outcomes by URL, at most `capacity`, the oldest dropped first.
#[derive(Debug)]
pub(super) struct CertCache {
    capacity: usize,
    cells: HashMap<String, CertCell>,
    order: VecDeque<String>,
}

impl CertCache {
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            cells: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    pub(super) fn cell(&mut self, url: &str) -> CertCell {
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
    pub(super) fn forget(&mut self, url: &str, cell: &CertCell) {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

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
}
