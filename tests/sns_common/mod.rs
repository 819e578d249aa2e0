//! Plays Amazon SNS for the `jobs_*` test binaries: an RSA signing key with its certificate
//! ([`Signer`], SignatureVersion 1 SHA1withRSA encoded by hand, 2 SHA256withRSA by aws-lc-rs)
//! and a local HTTPS server serving certificates and counting what it receives
//! ([`CertServer`]).

#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use apprunner::jobs::Verifier;
use apprunner_kit_tests::TestCa;
use base64::Engine as _;
use http_body_util::Full;
use hyper::body::Bytes;
use num_bigint::BigUint;
use serde_json::{Value, json};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

// ---- SNS's signing key and certificate ------------------------------------------------------

/// The signing key (RSA 2048) and its self-signed certificate, PEM.
pub struct Signer {
    key: aws_lc_rs::signature::RsaKeyPair,
    modulus: BigUint,
    private_exponent: BigUint,
    pub cert_pem: String,
}

impl Signer {
    pub fn new() -> Self {
        Self::with_validity(None)
    }

    pub fn expired() -> Self {
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
    pub fn sign(&self, version: &str, data: &str) -> String {
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
pub struct CertServer {
    pub port: u16,
    pub ca: TestCa,
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
    pub async fn start(files: Vec<(&'static str, String)>) -> Self {
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

    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    /// A verifier trusting this server (and its CA) for signing certificates.
    pub fn verifier(&self) -> Verifier {
        Verifier::builder()
            .dangerously_trust_signing_cert_host(format!("127.0.0.1:{}", self.port))
            .add_root_certificate(self.ca.ca_cert_pem())
            .build()
            .expect("build the verifier")
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

// ---- messages -------------------------------------------------------------------------------

/// Now plus `offset`, as SNS writes its `Timestamp`.
pub fn timestamp(offset: time::Duration) -> String {
    (time::OffsetDateTime::now_utc() + offset)
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format the timestamp")
}

/// The string SNS signs, written here from AWS's documentation (independent of the kit):
/// `name\nvalue\n` for each present field of the type's list, in that order.
/// The string SNS signs for `message`, built here from AWS's documentation (independently of
/// the kit's own).
pub fn string_to_sign(message: &Value) -> String {
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

/// Signs `message` again with `signer`, for its `SignatureVersion`.
pub fn resign(signer: &Signer, message: &mut Value) {
    let version = message["SignatureVersion"]
        .as_str()
        .unwrap_or("2")
        .to_owned();
    message["Signature"] = json!(signer.sign(&version, &string_to_sign(message)));
}
