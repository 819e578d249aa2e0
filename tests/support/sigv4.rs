//! [`XrayOtlpPeer`]: the AWS side of the X-Ray OTLP tests, a Python process (`sigv4/peer.py`,
//! run with the test virtualenv's Python) serving on 127.0.0.1:
//!
//! - an HTTPS OTLP/HTTP receiver (certificate from a [`TestCa`]) that verifies every request's
//!   SigV4 signature with botocore's signer, decodes the protobuf body (`opentelemetry-proto`)
//!   and records the spans; refusals answer like X-Ray's endpoint (status and message);
//! - an ECS container credentials endpoint handing out new short-lived credentials per call;
//! - an ECS task metadata endpoint v4 serving recorded documents (`sigv4/ecs_*.json`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{TestCa, peer_control};

/// The region the peer verifies signatures for.
pub const PEER_REGION: &str = "eu-west-1";

/// A running `peer.py`; stopped on drop.
#[derive(Debug)]
pub struct XrayOtlpPeer {
    child: Child,
    dir: tempfile::TempDir,
    otlp_port: u16,
    control_port: u16,
    ca: TestCa,
}

/// The Python of the test virtualenv (next to `APPRUNNER_TEST_MOTO_SERVER`), else `python3`.
pub(crate) fn python() -> PathBuf {
    if let Some(moto) = std::env::var_os("APPRUNNER_TEST_MOTO_SERVER").filter(|p| !p.is_empty())
        && let Some(dir) = Path::new(&moto).parent()
        && dir.join("python").exists()
    {
        return dir.join("python");
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.test-env/venv/bin/python");
    if venv.exists() {
        return venv;
    }
    PathBuf::from("python3")
}

fn support_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("support/sigv4")
        .join(name)
}

impl XrayOtlpPeer {
    /// Starts the peer; credentials it hands out live `credential_lifetime`.
    ///
    /// # Panics
    ///
    /// When Python or its packages (botocore, opentelemetry-proto) are missing: run
    /// `./scripts/test`, which installs them.
    pub fn start(credential_lifetime: Duration) -> Self {
        let ca = TestCa::generate();
        let dir = tempfile::Builder::new()
            .prefix("apprunner-xray-peer-")
            .tempdir()
            .expect("temporary directory");
        let log = std::fs::File::create(dir.path().join("peer.log")).expect("peer log");
        let child = Command::new(python())
            .arg(support_file("peer.py"))
            .arg("--dir")
            .arg(dir.path())
            .arg("--cert")
            .arg(ca.dir().join("server.pem"))
            .arg("--key")
            .arg(ca.dir().join("server.key"))
            .args(["--region", PEER_REGION])
            .arg("--lifetime")
            .arg(credential_lifetime.as_secs_f64().to_string())
            .arg("--task")
            .arg(support_file("ecs_task.json"))
            .arg("--container")
            .arg(support_file("ecs_container.json"))
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log"))
            .stderr(log)
            .spawn()
            .expect("start the X-Ray OTLP peer (python); run ./scripts/test");
        let mut peer = Self {
            child,
            dir,
            otlp_port: 0,
            control_port: 0,
            ca,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let ports = loop {
            if let Ok(text) = std::fs::read_to_string(peer.dir.path().join("ports.json")) {
                break serde_json::from_str::<Value>(&text).expect("ports.json");
            }
            if let Ok(Some(status)) = peer.child.try_wait() {
                panic!(
                    "the X-Ray OTLP peer exited with {status} (run ./scripts/test to install \
                     its Python packages):\n{}",
                    peer.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "the X-Ray OTLP peer did not start:\n{}",
                peer.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        peer.otlp_port = ports["otlp"].as_u64().expect("otlp port") as u16;
        peer.control_port = ports["control"].as_u64().expect("control port") as u16;
        peer
    }

    /// The peer's own output.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("peer.log")).unwrap_or_default()
    }

    /// `https://127.0.0.1:<port>/v1/traces`.
    pub fn traces_url(&self) -> String {
        format!("https://127.0.0.1:{}/v1/traces", self.otlp_port)
    }

    /// The environment of a service on ECS exporting to the peer: the traces endpoint with
    /// the explicit switch (the host is not `xray.<region>.amazonaws.com`), the test CA, the
    /// container credentials and task metadata endpoints; profile files and IMDS kept out.
    pub fn ecs_env(&self) -> Vec<(&'static str, String)> {
        let control = format!("http://127.0.0.1:{}", self.control_port);
        vec![
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", self.traces_url()),
            ("APPRUNNER_OTLP_SIGV4", PEER_REGION.to_owned()),
            (
                "OTEL_EXPORTER_OTLP_CERTIFICATE",
                self.ca.ca_cert_path().to_string_lossy().into_owned(),
            ),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip".to_owned()),
            (
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                format!("{control}/creds"),
            ),
            (
                "ECS_CONTAINER_METADATA_URI_V4",
                format!("{control}/v4/cd189a933e5849daa93386466019ab50-2495160603"),
            ),
            ("AWS_REGION", PEER_REGION.to_owned()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
            ("AWS_CONFIG_FILE", "/nonexistent/aws-config".to_owned()),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                "/nonexistent/aws-credentials".to_owned(),
            ),
        ]
    }

    /// Sets how the peer behaves: `{"mode": "tamper"}`, `{"creds_delay": 3}`, ...
    pub fn set(&self, settings: Value) {
        peer_control::set(self.control_port, "/mode", &settings);
    }

    /// Every OTLP request seen (`status`, `message`, `access_key`, `region`, `service`,
    /// `signed_headers`, `received_at`, `key_expiration`, `spans`) and every credentials call
    /// (`creds_calls`: `at`, `key`).
    pub fn records(&self) -> Value {
        peer_control::get_json(self.control_port, "/records")
    }

    /// The OTLP requests of [`records`](Self::records).
    pub fn requests(&self) -> Vec<Value> {
        self.records()["requests"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

impl Drop for XrayOtlpPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
