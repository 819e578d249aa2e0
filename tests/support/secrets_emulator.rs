//! A real Secrets Manager for tests: moto's server on a free loopback port.
//!
//! moto is found at `$APPRUNNER_TEST_MOTO_SERVER` (set by `./scripts/test`), else
//! `.test-env/venv/bin/moto_server`, else `moto_server` on `PATH`. Each emulator is its own
//! process with its own state, records every request it receives (moto's recorder), and is
//! killed — with any process it started — when dropped.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::{Credentials, Region, SharedCredentialsProvider};
use aws_sdk_secretsmanager::primitives::Blob;

/// The region every emulator answers for.
pub const REGION: &str = "us-east-1";
/// The dummy access key id the emulator accepts (when IAM is not enforced).
pub const ACCESS_KEY_ID: &str = "testing";
/// The dummy secret access key the emulator accepts (when IAM is not enforced).
pub const SECRET_ACCESS_KEY: &str = "testing";

const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A running moto server. See the [module docs](self).
///
/// ```no_run
/// # async fn demo() {
/// let moto = apprunner_kit_tests::SecretsEmulator::start();
/// moto.create_secret("prod/db", r#"{"username":"u"}"#).await;
/// // child processes get AWS_ENDPOINT_URL, AWS_REGION and dummy credentials:
/// let env = moto.env();
/// # let _ = env;
/// # }
/// ```
#[derive(Debug)]
pub struct SecretsEmulator {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

/// One request the emulator received, as recorded by moto.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// The `X-Amz-Target` header, e.g. `secretsmanager.GetSecretValue` (empty if absent).
    pub target: String,
    /// The JSON body (e.g. `{"SecretId": "prod/db", "VersionStage": "AWSCURRENT"}`).
    pub body: serde_json::Value,
    /// The request's headers, names in lower case.
    pub headers: std::collections::BTreeMap<String, String>,
    /// The request's method and URL as the emulator saw them (`PUT`, `http://…/bucket/key`).
    pub method: String,
    /// See [`method`](Self::method).
    pub url: String,
    /// The body as text (a query-protocol form such as `Action=Publish&…`, or JSON).
    pub raw_body: String,
}

/// An IAM user created in an emulator that enforces IAM.
#[derive(Clone, Debug)]
pub struct IamUser {
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
}

impl SecretsEmulator {
    /// Starts moto and waits until it answers. Panics with what to install if moto is missing.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts moto enforcing IAM after the first `free_actions` requests (moto's
    /// `INITIAL_NO_AUTH_ACTION_COUNT`): later requests need an [`IamUser`]'s credentials and
    /// are allowed only what its policies allow.
    pub fn start_enforcing_iam(free_actions: u32) -> Self {
        Self::start_with(&[("INITIAL_NO_AUTH_ACTION_COUNT", &free_actions.to_string())])
    }

    fn start_with(extra_env: &[(&str, &str)]) -> Self {
        let program = moto_program();
        let mut dir = tempfile::Builder::new()
            .prefix("apprunner-moto-")
            .tempdir()
            .expect("create a temporary directory for moto");
        let mut last_log = String::new();
        for _attempt in 0..3 {
            let port = crate::free_port();
            let log = std::fs::File::create(dir.path().join("moto.log")).expect("moto log file");
            let mut command = Command::new(&program);
            command
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .env("MOTO_ENABLE_RECORDING", "True")
                .env("MOTO_RECORDER_FILEPATH", dir.path().join("recording.jsonl"))
                .env("PYTHONUNBUFFERED", "1")
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("clone log handle"))
                .stderr(log);
            for (k, v) in extra_env {
                command.env(k, v);
            }
            let child = command.spawn().unwrap_or_else(|err| {
                panic!(
                    "could not start moto_server ({}): {err}. Run ./scripts/test, or `pip install \
                     \"moto[server]==5.2.1\"`, or set APPRUNNER_TEST_MOTO_SERVER to its path",
                    program.display()
                )
            });
            let mut emulator = Self {
                child: Some(child),
                port,
                dir,
            };
            match emulator.wait_ready() {
                Ok(()) => return emulator,
                Err(log) => {
                    // Most likely the port was taken meanwhile: try another one.
                    last_log = log;
                    emulator.stop();
                    dir = std::mem::replace(
                        &mut emulator.dir,
                        tempfile::tempdir().expect("temporary directory"),
                    );
                }
            }
        }
        panic!(
            "moto_server ({}) did not start:\n{last_log}",
            program.display()
        );
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!("exited with {status}:\n{}", self.log()));
            }
            if http_get(addr, "/moto-api/").is_some_and(|r| r.starts_with("HTTP/1.")) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "not ready after {READY_TIMEOUT:?}:\n{}",
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port moto listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// What a child process needs to reach the emulator through the standard AWS chain:
    /// `AWS_ENDPOINT_URL`, `AWS_REGION`, dummy `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`,
    /// and `AWS_EC2_METADATA_DISABLED=true` so nothing waits for an instance metadata service.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_REGION", REGION.to_owned()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY.to_owned()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// An AWS SDK configuration pointing at the emulator, with the dummy credentials.
    pub fn sdk_config(&self) -> SdkConfig {
        self.sdk_config_as(ACCESS_KEY_ID, SECRET_ACCESS_KEY)
    }

    /// An AWS SDK configuration pointing at the emulator, with the given credentials.
    pub fn sdk_config_as(&self, access_key_id: &str, secret_access_key: &str) -> SdkConfig {
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(self.endpoint())
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                access_key_id,
                secret_access_key,
                None,
                None,
                "apprunner-kit-tests",
            )))
            .build()
    }

    /// A Secrets Manager client for the emulator.
    pub fn client(&self) -> Client {
        Client::new(&self.sdk_config())
    }

    /// Creates a secret holding `text`; returns its ARN.
    pub async fn create_secret(&self, name: &str, text: &str) -> String {
        let out = self
            .client()
            .create_secret()
            .name(name)
            .secret_string(text)
            .send()
            .await
            .unwrap_or_else(|e| panic!("CreateSecret {name}: {e:?}"));
        out.arn().expect("CreateSecret returns an ARN").to_owned()
    }

    /// Creates a secret holding binary data; returns its ARN.
    pub async fn create_binary_secret(&self, name: &str, bytes: &[u8]) -> String {
        let out = self
            .client()
            .create_secret()
            .name(name)
            .secret_binary(Blob::new(bytes))
            .send()
            .await
            .unwrap_or_else(|e| panic!("CreateSecret {name}: {e:?}"));
        out.arn().expect("CreateSecret returns an ARN").to_owned()
    }

    /// Stores a new version as `AWSCURRENT` (what a finished rotation does); returns its id.
    pub async fn update_secret(&self, name: &str, text: &str) -> String {
        let out = self
            .client()
            .put_secret_value()
            .secret_id(name)
            .secret_string(text)
            .send()
            .await
            .unwrap_or_else(|e| panic!("PutSecretValue {name}: {e:?}"));
        out.version_id().expect("a version id").to_owned()
    }

    /// Stores a new version labelled `AWSPENDING` only (a rotation in progress); returns its id.
    pub async fn put_pending(&self, name: &str, text: &str) -> String {
        let out = self
            .client()
            .put_secret_value()
            .secret_id(name)
            .secret_string(text)
            .version_stages("AWSPENDING")
            .send()
            .await
            .unwrap_or_else(|e| panic!("PutSecretValue (AWSPENDING) {name}: {e:?}"));
        out.version_id().expect("a version id").to_owned()
    }

    /// Creates an IAM user with an access key and no permissions at all (moto's IAM query API,
    /// two requests). Meant for [`start_enforcing_iam`](Self::start_enforcing_iam).
    pub fn create_iam_user_without_permissions(&self, name: &str) -> IamUser {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let iam = |action: &str| {
            let body = format!("Action={action}&UserName={name}&Version=2010-05-08");
            let response = http_post_form(addr, &body)
                .unwrap_or_else(|| panic!("IAM {action}: no answer from moto"));
            assert!(
                response.starts_with("HTTP/1.1 200") || response.starts_with("HTTP/1.0 200"),
                "IAM {action} failed: {response}"
            );
            response
        };
        iam("CreateUser");
        let response = iam("CreateAccessKey");
        let between = |open: &str, close: &str| {
            let start = response.find(open).expect(open) + open.len();
            let end = start + response[start..].find(close).expect(close);
            response[start..end].to_owned()
        };
        IamUser {
            access_key_id: between("<AccessKeyId>", "</AccessKeyId>"),
            secret_access_key: between("<SecretAccessKey>", "</SecretAccessKey>"),
        }
    }

    /// Every AWS API request received so far, oldest first (not moto's own `/moto-api/`).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        let path = self.dir.path().join("recording.jsonl");
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Vec::new();
        };
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|line| -> serde_json::Value {
                serde_json::from_str(line).expect("moto recording line is JSON")
            })
            // The harness's own readiness probes.
            .filter(|entry| {
                !entry["url"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("/moto-api/")
            })
            .map(|entry| {
                let target = entry["headers"]
                    .as_object()
                    .and_then(|h| {
                        h.iter()
                            .find(|(k, _)| k.eq_ignore_ascii_case("x-amz-target"))
                            .and_then(|(_, v)| v.as_str())
                    })
                    .unwrap_or_default()
                    .to_owned();
                let raw = entry["body"].as_str().unwrap_or_default();
                let bytes = if entry["body_encoded"] == true {
                    aws_smithy_types::base64::decode(raw).unwrap_or_default()
                } else {
                    raw.as_bytes().to_vec()
                };
                let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
                let raw_body = String::from_utf8_lossy(&bytes).into_owned();
                let headers = entry["headers"]
                    .as_object()
                    .map(|h| {
                        h.iter()
                            .filter_map(|(k, v)| {
                                Some((k.to_ascii_lowercase(), v.as_str()?.to_owned()))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                RecordedRequest {
                    target,
                    body,
                    headers,
                    method: entry["method"].as_str().unwrap_or_default().to_owned(),
                    url: entry["url"].as_str().unwrap_or_default().to_owned(),
                    raw_body,
                }
            })
            .collect()
    }

    /// How many `GetSecretValue` requests for `secret_id` (any stage) reached the emulator.
    pub fn get_secret_value_calls(&self, secret_id: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.target == "secretsmanager.GetSecretValue")
            .filter(|r| r.body["SecretId"].as_str() == Some(secret_id))
            .count()
    }

    /// moto's own output so far (request lines, errors).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("moto.log")).unwrap_or_default()
    }

    /// Stops moto now (and whatever it started). Requests then fail to connect.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // A `moto_server` found on PATH may be a wrapper (e.g. a pyenv shim) that runs Python
        // as a grandchild: kill the whole tree we started, children first.
        let descendants = descendants(child.id());
        if !descendants.is_empty() {
            let _ = Command::new("kill")
                .arg("-KILL")
                .args(descendants.iter().map(u32::to_string))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for SecretsEmulator {
    fn drop(&mut self) {
        self.stop();
    }
}

fn moto_program() -> PathBuf {
    if let Some(path) = std::env::var_os("APPRUNNER_TEST_MOTO_SERVER").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.test-env/venv/bin/moto_server");
    if venv.exists() {
        return venv;
    }
    PathBuf::from("moto_server")
}

/// All processes descending from `pid` (Linux `/proc`; empty elsewhere).
fn descendants(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let parents: Vec<(u32, u32)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|p| {
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
            // `pid (comm) state ppid …`; comm may contain spaces and parentheses.
            let after = &stat[stat.rfind(')')? + 1..];
            let ppid = after.split_whitespace().nth(1)?.parse().ok()?;
            Some((p, ppid))
        })
        .collect();
    let mut found = Vec::new();
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        for &(child, ppid) in &parents {
            if ppid == parent && !found.contains(&child) {
                found.push(child);
                frontier.push(child);
            }
        }
    }
    found.reverse();
    found
}

fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    http(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    )
}

fn http_post_form(addr: SocketAddr, body: &str) -> Option<String> {
    // moto routes query-protocol requests by the service in the SigV4 credential scope.
    http(
        addr,
        &format!(
            "POST / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
             Content-Type: application/x-www-form-urlencoded\r\n\
             Authorization: AWS4-HMAC-SHA256 Credential={ACCESS_KEY_ID}/20240101/{REGION}/iam/aws4_request, SignedHeaders=host, Signature=0\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
}

fn http(addr: SocketAddr, request: &str) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}
