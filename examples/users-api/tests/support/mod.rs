//! What the users API's end-to-end tests share: the compiled binary as a child process, an
//! HTTP client that sends App Runner-style `X-Amzn-Trace-Id` headers, and checks on bodies.
#![allow(dead_code)] // each test binary uses a different part

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// How long the service may take to start (PostgreSQL connect, migrations, secrets).
pub(crate) const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The users API binary, running as a child process with an environment of our choosing only.
pub(crate) struct Service {
    child: Child,
    port: u16,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Service {
    /// Starts the binary in `dir` with exactly `env` (plus `PORT`, and `HOST=127.0.0.1`) and
    /// waits for `/healthz`.
    pub(crate) fn start(dir: &Path, env: &[(String, String)]) -> Self {
        let port = apprunner_kit_tests::free_port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_users-api"));
        command
            .env_clear()
            .current_dir(dir)
            .env("PORT", port.to_string())
            // Tests listen on loopback only.
            .env("HOST", "127.0.0.1")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("start the users-api binary");
        let stdout = collect(child.stdout.take().unwrap());
        let stderr = collect(child.stderr.take().unwrap());
        let mut service = Self {
            child,
            port,
            stdout,
            stderr,
        };
        service.wait_healthy();
        service
    }

    fn wait_healthy(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "users-api exited during start-up ({status}):\n{}",
                    self.output()
                );
            }
            if healthz_ok(self.port) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "users-api not healthy after {START_TIMEOUT:?}:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The port.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// Standard output so far, one string per line.
    pub(crate) fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    /// The JSON log lines so far (standard output is not a terminal, so every line is JSON).
    pub(crate) fn logs(&self) -> Vec<Value> {
        self.stdout_lines()
            .iter()
            .map(|line| {
                serde_json::from_str(line).unwrap_or_else(|e| panic!("log line {line:?}: {e}"))
            })
            .collect()
    }

    /// Everything the process printed, for panic messages.
    pub(crate) fn output(&self) -> String {
        format!(
            "--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout.lock().unwrap().join("\n"),
            self.stderr.lock().unwrap().join("\n")
        )
    }

    /// Sends SIGTERM.
    pub(crate) fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    /// Waits for the process to exit (panics after 30 s), then for its output to be read.
    pub(crate) fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "users-api did not exit:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        // The reader threads finish at EOF, shortly after exit.
        std::thread::sleep(Duration::from_millis(200));
        status
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn collect(stream: impl Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&lines);
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            sink.lock().unwrap().push(line);
        }
    });
    lines
}

/// A blocking `GET /healthz` over a plain socket (no runtime needed).
pub(crate) fn healthz_ok(port: u16) -> bool {
    use std::io::Write as _;
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200")
}

/// An `X-Amzn-Trace-Id` as App Runner's front end sends it: a fresh X-Ray trace id (epoch
/// seconds first) and a parent segment id.
#[derive(Clone, Debug)]
pub(crate) struct TraceHeader {
    /// The trace id, 32 lowercase hex digits (OpenTelemetry form).
    pub(crate) trace_id: String,
    /// The parent span id, 16 lowercase hex digits.
    pub(crate) parent: String,
}

impl TraceHeader {
    /// A new random one.
    pub(crate) fn new() -> Self {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let mut random = [0u8; 20];
        getrandom(&mut random);
        let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
        Self {
            trace_id: format!("{secs:08x}{}", hex(&random[..12])),
            parent: hex(&random[12..]),
        }
    }

    /// The trace id in X-Ray form, as log lines carry it.
    pub(crate) fn xray_id(&self) -> String {
        format!("1-{}-{}", &self.trace_id[..8], &self.trace_id[8..])
    }

    /// The header value.
    pub(crate) fn value(&self) -> String {
        format!("Root={};Parent={};Sampled=1", self.xray_id(), self.parent)
    }
}

impl Default for TraceHeader {
    fn default() -> Self {
        Self::new()
    }
}

fn getrandom(buf: &mut [u8]) {
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .expect("read /dev/urandom");
}

/// An answer.
#[derive(Debug)]
pub(crate) struct Reply {
    /// The status code.
    pub(crate) status: u16,
    /// Response headers (lower-case names; repeated headers joined with `\n`).
    pub(crate) headers: HashMap<String, String>,
    /// The body.
    pub(crate) body: Bytes,
}

impl Reply {
    /// The body as JSON (panics if it is not).
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body of a {} is not JSON ({e}): {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// A header.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// The `name=value` of the session cookie set by this answer.
    pub(crate) fn session_cookie(&self) -> String {
        let set = self.header("set-cookie").expect("a Set-Cookie header");
        set.split(';').next().unwrap().trim().to_owned()
    }
}

/// One request to send.
#[derive(Clone, Debug)]
pub(crate) struct Call {
    /// Method.
    pub(crate) method: &'static str,
    /// Path and query.
    pub(crate) path: String,
    /// `Cookie` header.
    pub(crate) cookie: Option<String>,
    /// Body and its content type.
    pub(crate) body: Option<(String, Vec<u8>)>,
}

impl Call {
    /// A request without a body.
    pub(crate) fn new(method: &'static str, path: impl Into<String>) -> Self {
        Self {
            method,
            path: path.into(),
            cookie: None,
            body: None,
        }
    }

    /// With a JSON body.
    pub(crate) fn json(mut self, body: &Value) -> Self {
        self.body = Some(("application/json".into(), serde_json::to_vec(body).unwrap()));
        self
    }

    /// With a raw body of some content type.
    pub(crate) fn raw(mut self, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some((content_type.into(), body.into()));
        self
    }

    /// With the session cookie.
    pub(crate) fn cookie(mut self, cookie: &str) -> Self {
        self.cookie = Some(cookie.to_owned());
        self
    }
}

/// Sends requests with a trace header each.
pub(crate) struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Http {
    /// A client.
    pub(crate) fn new() -> Self {
        Self {
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// Sends `call` to `base` with `trace` (if any) as `X-Amzn-Trace-Id`.
    pub(crate) async fn send(&self, base: &str, call: &Call, trace: Option<&TraceHeader>) -> Reply {
        let mut request = hyper::Request::builder()
            .method(call.method)
            .uri(format!("{base}{}", call.path));
        if let Some(trace) = trace {
            request = request.header("x-amzn-trace-id", trace.value());
        }
        if let Some(cookie) = &call.cookie {
            request = request.header("cookie", cookie);
        }
        let body = match &call.body {
            Some((content_type, bytes)) => {
                request = request.header("content-type", content_type);
                Full::new(Bytes::from(bytes.clone()))
            }
            None => Full::new(Bytes::new()),
        };
        let response = self
            .client
            .request(request.body(body).unwrap())
            .await
            .unwrap_or_else(|e| panic!("{} {}: {e}", call.method, call.path));
        let status = response.status().as_u16();
        let mut headers = HashMap::<String, String>::new();
        for (name, value) in response.headers() {
            let value = value.to_str().unwrap_or_default().to_owned();
            headers
                .entry(name.as_str().to_owned())
                .and_modify(|v| {
                    v.push('\n');
                    v.push_str(&value);
                })
                .or_insert(value);
        }
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            body,
        }
    }
}

impl Default for Http {
    fn default() -> Self {
        Self::new()
    }
}

/// Panics if `value` has a `password`/`password_hash` key anywhere or an argon2 hash string.
pub(crate) fn assert_no_password(value: &Value) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                assert!(
                    !key.contains("password"),
                    "a response carries {key:?}: {value}"
                );
                assert_no_password(inner);
            }
        }
        Value::Array(items) => items.iter().for_each(assert_no_password),
        Value::String(s) => assert!(!s.contains("$argon2"), "a response carries a hash: {s}"),
        _ => {}
    }
}

/// Panics unless `reply` is `status` with a body of exactly `{"message": <string>}` that says
/// nothing about the internals.
pub(crate) fn assert_error(reply: &Reply, status: u16) -> String {
    assert_eq!(
        reply.status,
        status,
        "expected {status}, got {}: {}",
        reply.status,
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(
        reply.header("content-type"),
        Some("application/json"),
        "error {status} is not JSON"
    );
    let body = reply.json();
    let map = body.as_object().expect("an error body is an object");
    assert_eq!(
        map.keys().collect::<Vec<_>>(),
        vec!["message"],
        "error body {body}"
    );
    let message = map["message"]
        .as_str()
        .expect("message is a string")
        .to_owned();
    let lower = message.to_lowercase();
    for internal in [
        "sqlx",
        "sqlstate",
        "sqlite",
        "postgres",
        "constraint",
        "argon2",
        "panic",
        "jwt",
        "relation",
        "tokio",
        "serde",
    ] {
        assert!(
            !lower.contains(internal),
            "error message {message:?} leaks {internal:?}"
        );
    }
    message
}

/// The App Runner deployment played by real peers: the database and JWT secrets in the Secrets
/// Manager emulator, an OTLP receiver, and the environment the service gets
/// (`DB_SECRET_NAME`, `APPRUNNER_SECRETS`, the emulator's endpoint and credentials, the
/// receiver's endpoint).
pub(crate) struct AppRunnerPeers {
    pub(crate) moto: apprunner_kit_tests::SecretsEmulator,
    pub(crate) receiver: apprunner_kit_tests::OtlpReceiver,
    pub(crate) db_arn: String,
    pub(crate) jwt_arn: String,
    pub(crate) env: Vec<(String, String)>,
}

impl AppRunnerPeers {
    /// Starts the peers for a service on `pg`'s database `db_url`, whose RDS secret holds
    /// `db_password`, signing its sessions with `jwt_key`.
    pub(crate) async fn start(
        pg: &apprunner_kit_tests::Postgres,
        db_url: &url::Url,
        db_password: &str,
        jwt_key: &str,
    ) -> Self {
        let moto = apprunner_kit_tests::SecretsEmulator::start();
        let db_secret = serde_json::json!({
            "username": db_url.username(),
            "password": db_password,
            "host": pg.host(),
            "port": pg.port(),
            "dbname": db_url.path().trim_start_matches('/'),
            "engine": "postgres",
        });
        let db_arn = moto
            .create_secret("users-api/db", &db_secret.to_string())
            .await;
        let jwt_arn = moto.create_secret("users-api/jwt", jwt_key).await;
        let receiver = apprunner_kit_tests::OtlpReceiver::start().await;
        let mut env: Vec<(String, String)> = moto.env();
        env.push(("DB_SECRET_NAME".into(), db_arn.clone()));
        env.push(("APPRUNNER_SECRETS".into(), format!("JWT_SECRET={jwt_arn}")));
        env.push((
            "OTEL_EXPORTER_OTLP_ENDPOINT".into(),
            receiver.grpc_endpoint(),
        ));
        Self {
            moto,
            receiver,
            db_arn,
            jwt_arn,
            env,
        }
    }
}
