//! `apprunner::http` end to end, in process: a real `Server` on a TCP port, a real HTTP client
//! (hyper), raw sockets for malformed requests, and a real OTLP/gRPC receiver.
//!
//! Telemetry is process-global, so it is set up once for this binary ([`receiver`]); tests run
//! in parallel and find their spans by the trace id each request carries in `X-Amzn-Trace-Id`.
//! The batch exporter's timer is set to two minutes: every span that arrives within [`WAIT`]
//! was sent because the layer asked for an export when its response ended.
//! The SIGTERM tests need a child process and live in `http_shutdown.rs`.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use apprunner::http::{HealthRoute, HttpError, Server, TraceLayer};
use apprunner::telemetry::{TelemetryConfig, TelemetryGuard};
use apprunner_kit_tests::{OtlpReceiver, SpanKind, SpanRecord, StatusCode};
use axum::Router;
use axum::body::Bytes;
use axum::extract::Path;
use axum::routing::{get, post};
use http::{HeaderMap, Request};
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry_sdk::trace::{IdGenerator as _, RandomIdGenerator};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const WAIT: Duration = Duration::from_secs(10);

/// The receiver every span of this process goes to (telemetry initialised on first use).
fn receiver() -> &'static OtlpReceiver {
    static TELEMETRY: OnceLock<(OtlpReceiver, TelemetryGuard)> = OnceLock::new();
    &TELEMETRY
        .get_or_init(|| {
            let receiver = OtlpReceiver::start_blocking();
            let guard = TelemetryConfig::from_lookup(|key| match key {
                "RUST_LOG" => Some("warn".to_owned()),
                // Far beyond `WAIT`: spans arrive in time only thanks to the layer's
                // `export_soon` after each response (App Runner throttles the CPU when idle,
                // so the kit must not count on the batch timer).
                "OTEL_BSP_SCHEDULE_DELAY" => Some("120000".to_owned()),
                _ => None,
            })
            .expect("telemetry configuration")
            .service_name("http-tests")
            .otlp_endpoint(receiver.grpc_endpoint())
            .init()
            .expect("telemetry init");
            (receiver, guard)
        })
        .0
}

/// A server running on 127.0.0.1:<free port> until dropped.
struct TestServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), HttpError>>>,
}

impl TestServer {
    async fn start(server: Server, router: Router) -> Self {
        receiver();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(
            server
                .listener(listener)
                .serve_with_shutdown(router, async {
                    let _ = stopped.await;
                }),
        );
        Self {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Stops the server and checks it returned `Ok`.
    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        let result = self.task.take().unwrap().await.unwrap();
        assert!(result.is_ok(), "serve returned {result:?}");
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn server() -> Server {
    Server::from_lookup(|_| None).unwrap()
}

/// An App Runner style `X-Amzn-Trace-Id` with a fresh trace id (X-Ray form: epoch seconds first).
struct TraceHeader {
    trace_id: String,
    parent: String,
    value: String,
}

fn trace_header() -> TraceHeader {
    let ids = RandomIdGenerator::default();
    let random = ids.new_trace_id().to_string();
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let trace_id = format!("{secs:08x}{}", &random[8..]);
    let parent = ids.new_span_id().to_string();
    let value = format!(
        "Root=1-{}-{};Parent={parent};Sampled=1",
        &trace_id[..8],
        &trace_id[8..]
    );
    TraceHeader {
        trace_id,
        parent,
        value,
    }
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

fn http1() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }
}

async fn send(client: &HttpClient, request: Request<Full<Bytes>>) -> Answer {
    let response = client.request(request).await.expect("HTTP request");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body,
    }
}

fn get_traced(url: &str, trace: &TraceHeader) -> Request<Full<Bytes>> {
    Request::get(url)
        .header("x-amzn-trace-id", &trace.value)
        .body(Full::default())
        .unwrap()
}

/// The SERVER span of `trace_id`, once it arrived.
async fn server_span(trace_id: &str) -> SpanRecord {
    let spans = receiver()
        .wait_until(
            |spans| {
                spans
                    .iter()
                    .any(|s| s.trace_id == trace_id && s.kind == SpanKind::Server)
            },
            WAIT,
        )
        .await;
    spans
        .into_iter()
        .find(|s| s.trace_id == trace_id && s.kind == SpanKind::Server)
        .unwrap()
}

/// Sends raw bytes on a fresh connection and returns the response head (up to the blank line).
async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    read_head(&mut stream).await
}

async fn read_head(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut buf = [0_u8; 4096];
    let read = async {
        while !received.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            received.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(WAIT, read)
        .await
        .expect("a response head within the wait time");
    String::from_utf8_lossy(&received).into_owned()
}

async fn panicking() -> &'static str {
    panic!("boom in handler")
}

fn routes() -> Router {
    Router::new()
        .route(
            "/users/{id}",
            get(|Path(id): Path<u32>| async move {
                tracing::info_span!("load user", user.id = id).in_scope(|| format!("user {id}"))
            }),
        )
        .route(
            "/fail",
            get(|| async { (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "failed") }),
        )
        .route("/panic", get(panicking))
        .route(
            "/sleep",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "woke up"
            }),
        )
        .route(
            "/echo",
            post(|body: Bytes| async move { format!("{} bytes", body.len()) }),
        )
}

#[tokio::test]
async fn xray_header_is_continued_and_returned() {
    let server = TestServer::start(server(), routes()).await;
    let trace = trace_header();
    let request = Request::get(server.url("/users/42?token=secret"))
        .header("x-amzn-trace-id", &trace.value)
        .header("x-forwarded-for", "203.0.113.9, 10.0.0.2")
        .header("x-forwarded-proto", "https")
        .header("user-agent", "curl/8.5.0")
        .body(Full::default())
        .unwrap();
    let answer = send(&http1(), request).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, "user 42");

    let span = server_span(&trace.trace_id).await;
    assert_eq!(span.parent_span_id.as_deref(), Some(trace.parent.as_str()));
    assert_eq!(span.name, "GET /users/{id}");
    assert_eq!(span.status.code, StatusCode::Unset);
    assert_eq!(span.attr_str("http.request.method"), Some("GET"));
    assert_eq!(span.attr_str("http.route"), Some("/users/{id}"));
    assert_eq!(span.attr_str("url.path"), Some("/users/42"));
    assert_eq!(span.attr_str("url.scheme"), Some("https"));
    assert_eq!(span.attr_str("url.query"), None, "the query is opt-in");
    assert_eq!(span.attr_i64("http.response.status_code"), Some(200));
    assert_eq!(span.attr_str("client.address"), Some("203.0.113.9"));
    assert_eq!(span.attr_str("server.address"), Some("127.0.0.1"));
    assert_eq!(
        span.attr_i64("server.port"),
        Some(i64::from(server.addr.port()))
    );
    assert_eq!(span.attr_str("user_agent.original"), Some("curl/8.5.0"));
    assert_eq!(span.attr_str("network.protocol.version"), Some("1.1"));
    assert_eq!(span.attr_str("error.type"), None);

    // The response names the SERVER span, in X-Ray form.
    let expected = format!(
        "Root={};Parent={};Sampled=1",
        span.xray_trace_id(),
        span.span_id
    );
    assert_eq!(answer.headers["x-amzn-trace-id"], expected.as_str());

    // Work inside the handler is a child of the SERVER span.
    let spans = receiver()
        .wait_until(
            |spans| {
                spans
                    .iter()
                    .any(|s| s.name == "load user" && s.trace_id == trace.trace_id)
            },
            WAIT,
        )
        .await;
    let child = spans
        .iter()
        .find(|s| s.name == "load user" && s.trace_id == trace.trace_id)
        .unwrap();
    assert_eq!(child.parent_span_id.as_deref(), Some(span.span_id.as_str()));
    server.stop().await;
}

#[tokio::test]
async fn request_without_trace_header_starts_a_trace_named_in_the_response() {
    let server = TestServer::start(server(), routes()).await;
    let answer = send(
        &http1(),
        Request::get(server.url("/users/7"))
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(answer.status, 200);
    let header = answer.headers["x-amzn-trace-id"]
        .to_str()
        .unwrap()
        .to_owned();
    // Root=1-xxxxxxxx-yyyyyyyyyyyyyyyyyyyyyyyy;Parent=<16 hex>;Sampled=1
    let root = header
        .strip_prefix("Root=1-")
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_else(|| panic!("unexpected header {header}"));
    let trace_id = root.replace('-', "");
    assert_eq!(trace_id.len(), 32, "{header}");

    let span = server_span(&trace_id).await;
    assert!(span.is_root(), "{}", span.summary());
    assert_eq!(span.name, "GET /users/{id}");
    // Without X-Forwarded-For the client is the TCP peer.
    assert_eq!(span.attr_str("client.address"), Some("127.0.0.1"));
    assert!(
        header.ends_with(&format!(";Parent={};Sampled=1", span.span_id)),
        "{header}"
    );
    // X-Ray trace ids start with the epoch seconds.
    let secs = u64::from_str_radix(&trace_id[..8], 16).unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(now.abs_diff(secs) < 600, "{trace_id}");
    server.stop().await;
}

#[tokio::test]
async fn query_is_recorded_when_opted_in() {
    let server = TestServer::start(
        server().trace_layer(TraceLayer::new().record_query(true)),
        routes(),
    )
    .await;
    let trace = trace_header();
    let answer = send(&http1(), get_traced(&server.url("/users/1?page=2"), &trace)).await;
    assert_eq!(answer.status, 200);
    let span = server_span(&trace.trace_id).await;
    assert_eq!(span.attr_str("url.query"), Some("page=2"));
    server.stop().await;
}

#[tokio::test]
async fn server_error_marks_the_span_as_error() {
    let server = TestServer::start(server(), routes()).await;
    let trace = trace_header();
    let answer = send(&http1(), get_traced(&server.url("/fail"), &trace)).await;
    assert_eq!(answer.status, 500);
    let span = server_span(&trace.trace_id).await;
    assert_eq!(span.name, "GET /fail");
    assert_eq!(span.status.code, StatusCode::Error);
    assert_eq!(span.attr_str("error.type"), Some("500"));
    assert_eq!(span.attr_i64("http.response.status_code"), Some(500));
    server.stop().await;
}

#[tokio::test]
async fn panicking_handler_answers_500_and_marks_the_span() {
    let server = TestServer::start(server(), routes()).await;
    let client = http1();
    let trace = trace_header();
    let answer = send(&client, get_traced(&server.url("/panic"), &trace)).await;
    assert_eq!(answer.status, 500);
    assert_eq!(answer.json()["message"], "internal server error");
    assert!(!String::from_utf8_lossy(&answer.body).contains("boom"));
    assert!(answer.headers.contains_key("x-amzn-trace-id"));

    let span = server_span(&trace.trace_id).await;
    assert_eq!(span.name, "GET /panic");
    assert_eq!(span.status.code, StatusCode::Error);
    assert_eq!(span.status.message, "request handler panicked");
    assert_eq!(span.attr_str("error.type"), Some("500"));
    let exception = span.event("exception").expect("an exception event");
    assert_eq!(
        exception.attr_str("exception.message"),
        Some("boom in handler")
    );

    // The server (and the connection pool) still serve.
    let again = send(
        &client,
        Request::get(server.url("/users/1"))
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(again.status, 200);
    server.stop().await;
}

#[tokio::test]
async fn unknown_path_and_wrong_method_are_not_errors() {
    let server = TestServer::start(server(), routes()).await;
    let client = http1();

    let trace = trace_header();
    let answer = send(
        &client,
        get_traced(&server.url("/no/such/path/123"), &trace),
    )
    .await;
    assert_eq!(answer.status, 404);
    let span = server_span(&trace.trace_id).await;
    assert_eq!(span.name, "GET", "a 404 is named without the raw path");
    assert_eq!(span.attr_str("http.route"), None);
    assert_eq!(span.attr_str("url.path"), Some("/no/such/path/123"));
    assert_eq!(span.attr_i64("http.response.status_code"), Some(404));
    assert_eq!(span.status.code, StatusCode::Unset);
    assert_eq!(span.attr_str("error.type"), None);

    let trace = trace_header();
    let request = Request::delete(server.url("/users/5"))
        .header("x-amzn-trace-id", &trace.value)
        .body(Full::default())
        .unwrap();
    assert_eq!(send(&client, request).await.status, 405);
    let span = server_span(&trace.trace_id).await;
    assert_eq!(span.name, "DELETE /users/{id}");
    assert_eq!(span.status.code, StatusCode::Unset);

    let trace = trace_header();
    let request = Request::builder()
        .method("PURGE")
        .uri(server.url("/users/5"))
        .header("x-amzn-trace-id", &trace.value)
        .body(Full::default())
        .unwrap();
    assert_eq!(send(&client, request).await.status, 405);
    let span = server_span(&trace.trace_id).await;
    assert_eq!(span.name, "HTTP /users/{id}");
    assert_eq!(span.attr_str("http.request.method"), Some("_OTHER"));
    assert_eq!(span.attr_str("http.request.method_original"), Some("PURGE"));
    server.stop().await;
}

#[tokio::test]
async fn slow_handler_answers_504_json_and_marks_the_span() {
    let server = TestServer::start(
        server().request_timeout(Duration::from_millis(300)),
        routes(),
    )
    .await;
    let trace = trace_header();
    let answer = send(&http1(), get_traced(&server.url("/sleep"), &trace)).await;
    assert_eq!(answer.status, 504);
    assert_eq!(answer.headers["content-type"], "application/json");
    assert_eq!(answer.json()["message"], "request timed out after 300 ms");
    let span = server_span(&trace.trace_id).await;
    assert_eq!(span.name, "GET /sleep");
    assert_eq!(span.status.code, StatusCode::Error);
    assert_eq!(span.status.message, "request timed out");
    assert_eq!(span.attr_str("error.type"), Some("504"));
    server.stop().await;
}

#[tokio::test]
async fn slow_request_body_answers_504() {
    let server = TestServer::start(
        server().request_timeout(Duration::from_millis(300)),
        routes(),
    )
    .await;
    // Declares 100 bytes, sends 10, then waits.
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n0123456789")
        .await
        .unwrap();
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 504"), "{head}");
    server.stop().await;
}

#[tokio::test]
async fn oversized_bodies_answer_413() {
    let server = TestServer::start(server().body_limit(1024), routes()).await;
    let client = http1();

    // Declared too large: refused before the handler runs.
    let trace = trace_header();
    let request = Request::post(server.url("/echo"))
        .header("x-amzn-trace-id", &trace.value)
        .body(Full::new(Bytes::from(vec![b'x'; 4096])))
        .unwrap();
    let answer = send(&client, request).await;
    assert_eq!(answer.status, 413);
    assert_eq!(
        answer.json()["message"],
        "request body is larger than the limit of 1024 bytes"
    );
    let span = server_span(&trace.trace_id).await;
    assert_eq!(span.attr_i64("http.response.status_code"), Some(413));
    assert_eq!(
        span.status.code,
        StatusCode::Unset,
        "a 413 is the client's fault"
    );

    // Streamed without a length: cut off at the limit.
    let chunks = (0..8)
        .map(|_| Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(vec![b'y'; 512]))));
    let streamed = StreamBody::new(futures_util::stream::iter(chunks));
    let streaming_client: Client<HttpConnector, _> =
        Client::builder(TokioExecutor::new()).build_http();
    let response = streaming_client
        .request(Request::post(server.url("/echo")).body(streamed).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), 413);

    // Within the limit: served.
    let request = Request::post(server.url("/echo"))
        .body(Full::new(Bytes::from(vec![b'z'; 1000])))
        .unwrap();
    let answer = send(&client, request).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, "1000 bytes");
    server.stop().await;
}

#[tokio::test]
async fn malformed_requests_get_4xx_and_the_server_keeps_serving() {
    let server = TestServer::start(server(), routes()).await;

    let head = raw_exchange(server.addr, b"THIS IS NOT HTTP\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");

    let head = raw_exchange(
        server.addr,
        b"GET /users/1 HTTP/1.1\r\nhost: x\r\nbad header\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");

    let mut many_headers = b"GET /users/1 HTTP/1.1\r\nhost: x\r\n".to_vec();
    for i in 0..200 {
        many_headers.extend_from_slice(format!("x-h{i}: v\r\n").as_bytes());
    }
    many_headers.extend_from_slice(b"\r\n");
    let head = raw_exchange(server.addr, &many_headers).await;
    assert!(head.starts_with("HTTP/1.1 431"), "{head}");

    let head = raw_exchange(
        server.addr,
        b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: nope\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");

    let head = raw_exchange(
        server.addr,
        b"GET /users/not-a-number HTTP/1.1\r\nhost: x\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");

    let answer = send(
        &http1(),
        Request::get(server.url("/users/1"))
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(answer.status, 200);
    server.stop().await;
}

#[tokio::test]
async fn h2c_is_served_and_traced() {
    let server = TestServer::start(server(), routes()).await;
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let trace = trace_header();
    let answer = send(&client, get_traced(&server.url("/users/3"), &trace)).await;
    assert_eq!(answer.status, 200);
    let span = server_span(&trace.trace_id).await;
    assert_eq!(span.name, "GET /users/{id}");
    assert_eq!(span.attr_str("network.protocol.version"), Some("2"));
    assert_eq!(span.attr_str("server.address"), Some("127.0.0.1"));
    server.stop().await;
}

#[tokio::test]
async fn health_route_answers_without_a_span() {
    let server = TestServer::start(server().health_route(HealthRoute::new()), routes()).await;
    let client = http1();
    let health = trace_header();
    let answer = send(&client, get_traced(&server.url("/health"), &health)).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json(), serde_json::json!({ "status": "ok" }));
    assert!(!answer.headers.contains_key("x-amzn-trace-id"));

    // A traced request after it: once its span arrived, a health span would have too.
    let traced = trace_header();
    send(&client, get_traced(&server.url("/users/9"), &traced)).await;
    server_span(&traced.trace_id).await;
    assert!(
        receiver()
            .spans()
            .iter()
            .all(|s| s.trace_id != health.trace_id),
        "the health check made a span"
    );
    server.stop().await;
}
