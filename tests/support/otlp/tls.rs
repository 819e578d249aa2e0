//! TLS for the test receivers: a certificate authority made at run time (rcgen), its server and
//! client certificates written as PEM files, and the server configurations of both transports
//! (tonic for gRPC, rustls through tokio-rustls for HTTP), on aws-lc-rs.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A certificate authority made for one test, with a server certificate (for `localhost` and
/// `127.0.0.1`) and a client certificate it signed, all written as PEM files into a temporary
/// directory removed on drop.
///
/// The file paths are what the OTLP exporter variables take: [`ca_cert_path`](Self::ca_cert_path)
/// for `OTEL_EXPORTER_OTLP_CERTIFICATE`, [`client_cert_path`](Self::client_cert_path) and
/// [`client_key_path`](Self::client_key_path) for `OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE` and
/// `OTEL_EXPORTER_OTLP_CLIENT_KEY`.
///
/// ```
/// let ca = apprunner_kit_tests::TestCa::generate();
/// assert!(std::fs::read_to_string(ca.ca_cert_path()).unwrap().contains("BEGIN CERTIFICATE"));
/// assert!(ca.client_key_pem().contains("PRIVATE KEY"));
/// ```
pub struct TestCa {
    dir: tempfile::TempDir,
    ca_cert_pem: String,
    ca_cert_der: CertificateDer<'static>,
    server_cert_pem: String,
    server_cert_der: CertificateDer<'static>,
    server_key_pem: String,
    server_key_der: Vec<u8>,
    client_cert_pem: String,
    client_key_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl fmt::Debug for TestCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestCa")
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

const CA_FILE: &str = "ca.pem";
const CLIENT_CERT_FILE: &str = "client.pem";
const CLIENT_KEY_FILE: &str = "client.key";

impl TestCa {
    /// Makes a new CA (ECDSA P-256) with its server and client certificates, and writes
    /// `ca.pem`, `client.pem`, `client.key` (and `server.pem`, `server.key`) into a new
    /// temporary directory.
    pub fn generate() -> Self {
        let ca_key = KeyPair::generate().expect("generate the test CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "apprunner-kit test CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params
            .self_signed(&ca_key)
            .expect("self-sign the test CA");
        let issuer = Issuer::new(ca_params, ca_key);

        let leaf = |names: Vec<String>, usage: ExtendedKeyUsagePurpose, cn: &str| {
            let key = KeyPair::generate().expect("generate a test certificate key");
            let mut params = CertificateParams::new(names).expect("certificate parameters");
            params.distinguished_name.push(DnType::CommonName, cn);
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            params.extended_key_usages = vec![usage];
            let cert = params
                .signed_by(&key, &issuer)
                .expect("sign a test certificate");
            (cert, key)
        };
        let (server_cert, server_key) = leaf(
            vec!["localhost".to_owned(), "127.0.0.1".to_owned()],
            ExtendedKeyUsagePurpose::ServerAuth,
            "localhost",
        );
        let (client_cert, client_key) = leaf(
            vec!["apprunner-kit-test-client".to_owned()],
            ExtendedKeyUsagePurpose::ClientAuth,
            "apprunner-kit-test-client",
        );

        let dir = tempfile::Builder::new()
            .prefix("apprunner-test-ca-")
            .tempdir()
            .expect("create the test CA directory");
        let ca = Self {
            ca_cert_pem: ca_cert.pem(),
            ca_cert_der: ca_cert.der().clone(),
            server_cert_pem: server_cert.pem(),
            server_cert_der: server_cert.der().clone(),
            server_key_pem: server_key.serialize_pem(),
            server_key_der: server_key.serialize_der(),
            client_cert_pem: client_cert.pem(),
            client_key_pem: client_key.serialize_pem(),
            dir,
            issuer,
        };
        for (file, pem) in [
            (CA_FILE, &ca.ca_cert_pem),
            (CLIENT_CERT_FILE, &ca.client_cert_pem),
            (CLIENT_KEY_FILE, &ca.client_key_pem),
            ("server.pem", &ca.server_cert_pem),
            ("server.key", &ca.server_key_pem),
        ] {
            std::fs::write(ca.dir.path().join(file), pem)
                .unwrap_or_else(|e| panic!("write the test CA's {file}: {e}"));
        }
        ca
    }

    /// The CA certificate's PEM file (for `OTEL_EXPORTER_OTLP_CERTIFICATE`).
    pub fn ca_cert_path(&self) -> PathBuf {
        self.dir.path().join(CA_FILE)
    }

    /// The client certificate's PEM file (for `OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE`).
    pub fn client_cert_path(&self) -> PathBuf {
        self.dir.path().join(CLIENT_CERT_FILE)
    }

    /// The client key's PEM file, PKCS#8 (for `OTEL_EXPORTER_OTLP_CLIENT_KEY`).
    pub fn client_key_path(&self) -> PathBuf {
        self.dir.path().join(CLIENT_KEY_FILE)
    }

    /// The directory holding the PEM files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The CA certificate, PEM.
    pub fn ca_cert_pem(&self) -> &str {
        &self.ca_cert_pem
    }

    /// The client certificate, PEM.
    pub fn client_cert_pem(&self) -> &str {
        &self.client_cert_pem
    }

    /// The client key, PEM (PKCS#8).
    pub fn client_key_pem(&self) -> &str {
        &self.client_key_pem
    }

    /// The server certificate (for `localhost` and `127.0.0.1`), PEM.
    pub fn server_cert_pem(&self) -> &str {
        &self.server_cert_pem
    }

    /// The server certificate's key, PEM (PKCS#8).
    pub fn server_key_pem(&self) -> &str {
        &self.server_key_pem
    }

    /// Issues another server certificate for exactly `names` (DNS names or IP addresses),
    /// signed by this CA: `(certificate PEM, key PEM)`.
    ///
    /// ```
    /// let ca = apprunner_kit_tests::TestCa::generate();
    /// let (cert, key) = ca.issue_server_cert(&["db.internal"]);
    /// assert!(cert.contains("BEGIN CERTIFICATE") && key.contains("PRIVATE KEY"));
    /// ```
    pub fn issue_server_cert(&self, names: &[&str]) -> (String, String) {
        let key = KeyPair::generate().expect("generate a test certificate key");
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names.clone()).expect("certificate parameters");
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().map_or("server", String::as_str),
        );
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("sign a test certificate");
        (cert.pem(), key.serialize_pem())
    }

    /// The client certificate followed by its key, PEM: what `reqwest::Identity::from_pem`
    /// takes.
    pub fn client_identity_pem(&self) -> String {
        format!("{}{}", self.client_cert_pem, self.client_key_pem)
    }
}

/// How a receiver serves TLS: the CA whose server certificate it presents, and whether it
/// requires a client certificate signed by that CA.
pub(super) struct ServerTls {
    pub(super) ca: Arc<TestCa>,
    pub(super) mutual: bool,
}

impl ServerTls {
    /// tonic's server TLS (aws-lc-rs): the server identity, and the CA as client root when
    /// mutual (tonic then requires a client certificate).
    pub(super) fn tonic_config(&self) -> tonic::transport::ServerTlsConfig {
        let config = tonic::transport::ServerTlsConfig::new().identity(
            tonic::transport::Identity::from_pem(&self.ca.server_cert_pem, &self.ca.server_key_pem),
        );
        if self.mutual {
            config.client_ca_root(tonic::transport::Certificate::from_pem(
                &self.ca.ca_cert_pem,
            ))
        } else {
            config
        }
    }

    /// rustls's server configuration for OTLP/HTTP: aws-lc-rs, ALPN `h2` and `http/1.1`, and a
    /// client certificate verifier on the CA when mutual.
    pub(super) fn rustls_config(&self) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .expect("TLS versions of the aws-lc-rs provider");
        let builder = if self.mutual {
            let mut roots = rustls::RootCertStore::empty();
            roots
                .add(self.ca.ca_cert_der.clone())
                .expect("add the test CA to the client roots");
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .expect("build the client certificate verifier");
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.ca.server_key_der.clone()));
        let mut config = builder
            .with_single_cert(vec![self.ca.server_cert_der.clone()], key)
            .expect("the test server certificate and key");
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Arc::new(config)
    }
}
