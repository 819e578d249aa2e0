//! Secrets Manager rotation, as the RDS rotation functions (single user) do it, against the
//! emulator; and [`CountingProxy`], an HTTP proxy between a service and the emulator that
//! records every AWS call, to count how often a service reads a secret.
//!
//! The rotation function's steps:
//! 1. [`create_secret`] (`createSecret`): the new value stored as `AWSPENDING`.
//! 2. `setSecret`: the database gets the new password (the test runs `ALTER ROLE` / `ALTER USER`).
//! 3. `testSecret`: a login with it (left to the test).
//! 4. [`finish_secret`] (`finishSecret`): `AWSCURRENT` moves to the new version (the old one
//!    keeps `AWSPREVIOUS`).

use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use aws_sdk_secretsmanager::Client;
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

/// `createSecret`: stores `value` as a new version of `secret_id` labelled `AWSPENDING` only,
/// with `token` (32–64 characters) as its version id, the way the rotation function gets its
/// `ClientRequestToken`. Returns the version id.
pub async fn create_secret(client: &Client, secret_id: &str, token: &str, value: &str) -> String {
    let out = client
        .put_secret_value()
        .secret_id(secret_id)
        .client_request_token(token)
        .secret_string(value)
        .version_stages("AWSPENDING")
        .send()
        .await
        .unwrap_or_else(|e| panic!("createSecret: PutSecretValue AWSPENDING {secret_id}: {e:?}"));
    out.version_id().expect("a version id").to_owned()
}

/// `finishSecret`: moves `AWSCURRENT` to version `token` (the version holding it before gets
/// `AWSPREVIOUS`, which Secrets Manager does by itself).
pub async fn finish_secret(client: &Client, secret_id: &str, token: &str) {
    let current = current_version(client, secret_id).await;
    if current.as_deref() == Some(token) {
        return;
    }
    let mut update = client
        .update_secret_version_stage()
        .secret_id(secret_id)
        .version_stage("AWSCURRENT")
        .move_to_version_id(token);
    if let Some(current) = &current {
        update = update.remove_from_version_id(current);
    }
    update
        .send()
        .await
        .unwrap_or_else(|e| panic!("finishSecret: UpdateSecretVersionStage {secret_id}: {e:?}"));
    // The rotation function also removes AWSPENDING from the new version.
    let _ = client
        .update_secret_version_stage()
        .secret_id(secret_id)
        .version_stage("AWSPENDING")
        .remove_from_version_id(token)
        .send()
        .await;
}

/// The version id labelled `AWSCURRENT`.
pub async fn current_version(client: &Client, secret_id: &str) -> Option<String> {
    let described = client
        .describe_secret()
        .secret_id(secret_id)
        .send()
        .await
        .unwrap_or_else(|e| panic!("DescribeSecret {secret_id}: {e:?}"));
    described
        .version_ids_to_stages()?
        .iter()
        .find(|(_, stages)| stages.iter().any(|s| s == "AWSCURRENT"))
        .map(|(id, _)| id.clone())
}

/// A fresh `ClientRequestToken` (a UUID-shaped string, 36 characters).
pub fn new_token() -> String {
    let mut bytes = [0u8; 16];
    use std::io::Read as _;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("read /dev/urandom");
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// One AWS call that went through the proxy.
#[derive(Clone, Debug)]
pub struct Call {
    /// `X-Amz-Target`, e.g. `secretsmanager.GetSecretValue` (empty if absent).
    pub target: String,
    /// The JSON body (`{"SecretId": …, "VersionStage": …}`), `Null` if not JSON.
    pub body: serde_json::Value,
}

impl Call {
    /// The `SecretId` of the call.
    pub fn secret_id(&self) -> Option<&str> {
        self.body["SecretId"].as_str()
    }

    /// The `VersionStage` asked for (`None`: the default, `AWSCURRENT`).
    pub fn version_stage(&self) -> Option<&str> {
        self.body["VersionStage"].as_str()
    }
}

/// An HTTP proxy forwarding every request to an upstream endpoint (the emulator) and recording
/// each call's `X-Amz-Target` and body. Point a service at it with `AWS_ENDPOINT_URL` (or
/// `AWS_ENDPOINT_URL_SECRETS_MANAGER`) = [`endpoint`](Self::endpoint). Stops when dropped.
pub struct CountingProxy {
    addr: SocketAddr,
    calls: Arc<Mutex<Vec<Call>>>,
    /// How many of the next requests are answered `503 Service Unavailable` instead of being
    /// forwarded (an AWS service that is briefly unavailable: the SDK retries).
    failures: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl fmt::Debug for CountingProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CountingProxy")
            .field("addr", &self.addr)
            .field("calls", &self.calls().len())
            .finish_non_exhaustive()
    }
}

impl CountingProxy {
    /// Listens on 127.0.0.1 (a free port) and forwards to `upstream` (`http://host:port`).
    pub async fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the counting proxy");
        let addr = listener.local_addr().expect("proxy address");
        let calls = Arc::new(Mutex::new(Vec::new()));
        let client: HttpClient<HttpConnector, Full<Bytes>> =
            HttpClient::builder(TokioExecutor::new()).build_http();
        let upstream: Arc<str> = upstream.trim_end_matches('/').into();
        let failures = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn({
            let calls = Arc::clone(&calls);
            let failures = Arc::clone(&failures);
            async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let calls = Arc::clone(&calls);
                    let client = client.clone();
                    let upstream = Arc::clone(&upstream);
                    let failures = Arc::clone(&failures);
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |request| {
                            let fail = failures
                                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                                    n.checked_sub(1)
                                })
                                .is_ok();
                            forward(
                                request,
                                client.clone(),
                                Arc::clone(&upstream),
                                Arc::clone(&calls),
                                fail,
                            )
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            }
        });
        Self {
            addr,
            calls,
            failures,
            task,
        }
    }

    /// Answers the next `count` requests `503 Service Unavailable` (recorded, not forwarded).
    pub fn fail_next(&self, count: usize) {
        self.failures.store(count, Ordering::Release);
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every call so far, oldest first.
    pub fn calls(&self) -> Vec<Call> {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// How many `GetSecretValue` calls for `secret_id` (any stage) went through.
    pub fn get_secret_value_calls(&self, secret_id: &str) -> usize {
        self.calls()
            .iter()
            .filter(|c| c.target == "secretsmanager.GetSecretValue")
            .filter(|c| c.secret_id() == Some(secret_id))
            .count()
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(
    request: Request<Incoming>,
    client: HttpClient<HttpConnector, Full<Bytes>>,
    upstream: Arc<str>,
    calls: Arc<Mutex<Vec<Call>>>,
    fail: bool,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    calls
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(Call {
            target,
            body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
        });
    if fail {
        return Ok(Response::builder()
            .status(503)
            .header("content-type", "application/x-amz-json-1.1")
            .body(Full::new(Bytes::from_static(
                br#"{"__type":"ServiceUnavailable","message":"counting proxy: failing on purpose"}"#,
            )))
            .expect("a valid response"));
    }
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let mut upstream_request = Request::builder()
        .method(parts.method)
        .uri(format!("{upstream}{path}"));
    for (name, value) in &parts.headers {
        // The Host header stays the one the client signed.
        upstream_request = upstream_request.header(name, value);
    }
    let upstream_request = upstream_request
        .body(Full::new(body))
        .expect("a valid request");
    let response = match client.request(upstream_request).await {
        Ok(response) => response,
        Err(e) => {
            return Ok(Response::builder()
                .status(502)
                .body(Full::new(Bytes::from(format!("counting proxy: {e}"))))
                .expect("a valid response"));
        }
    };
    let (mut parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    // The body is whole now: hyper sets its length.
    parts.headers.remove("transfer-encoding");
    parts.headers.remove("content-length");
    Ok(Response::from_parts(parts, Full::new(body)))
}
