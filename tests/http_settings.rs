//! The server's `HOST` and access log settings, end to end in process: a real `Server` on a TCP
//! port, and every JSON log line this process writes captured for inspection.
//!
//! The log subscriber is process-global, so this binary sets it up once ([`logs`]); tests run
//! in parallel and tell their lines apart by the routes they call.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::OnceLock;
use std::time::Duration;

use apprunner::http::{AccessLog, AccessLogMode, HttpError, Server};
use apprunner::telemetry::{JsonFormat, TelemetryConfig, TelemetryGuard};
use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// Every log line of this process, as written (JSON).
type Captured = apprunner_kit_tests::LogCapture;

/// Sets up telemetry (spans recorded, not exported) and the JSON log subscriber once.
fn logs() -> &'static Captured {
    static LOGS: OnceLock<(Captured, TelemetryGuard)> = OnceLock::new();
    &LOGS
        .get_or_init(|| {
            let guard = TelemetryConfig::from_lookup(|key| {
                (key == "OTEL_TRACES_EXPORTER").then(|| "none".to_owned())
            })
            .expect("telemetry configuration")
            .service_name("settings-tests")
            .install_subscriber(false)
            .init()
            .expect("telemetry init");
            let captured = Captured::default();
            let writer = captured.clone();
            tracing_subscriber::registry()
                .with(
                    tracing_subscriber::fmt::layer()
                        .event_format(JsonFormat::default().service_name("settings-tests"))
                        .with_writer(move || writer.clone())
                        .with_filter(tracing_subscriber::filter::LevelFilter::INFO),
                )
                .init();
            (captured, guard)
        })
        .0
}

/// The access log lines written so far for routes starting with `prefix`.
fn access_lines(prefix: &str) -> Vec<Value> {
    let text = logs().text();
    text.lines()
        .map(|line| serde_json::from_str::<Value>(line).expect("a JSON log line"))
        .filter(|line| line["target"] == "apprunner::http::access")
        .filter(|line| {
            let at = line["http.route"].as_str().or(line["url.path"].as_str());
            at.is_some_and(|at| at.starts_with(prefix))
        })
        .collect()
}

/// Serves `router` with `server` on `listener` until the returned sender is dropped.
fn spawn(server: Server, listener: TcpListener, router: Router) -> oneshot::Sender<()> {
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(
        server
            .listener(listener)
            .serve_with_shutdown(router, async {
                let _ = stopped.await;
            }),
    );
    stop
}

/// Sends a bodiless or JSON request over HTTP/1.1 and returns the status.
async fn call(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> u16 {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let body = body.unwrap_or("");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {answer:?}"))
}

fn routes(prefix: &str) -> Router {
    Router::new()
        .route(&format!("{prefix}/ok"), get(|| async { "ok" }))
        .route(
            &format!("{prefix}/fail"),
            get(|| async { StatusCode::INTERNAL_SERVER_ERROR }),
        )
        .route(
            &format!("{prefix}/slow"),
            get(|| async {
                tokio::time::sleep(Duration::from_millis(120)).await;
                "late"
            }),
        )
        .route(
            &format!("{prefix}/json"),
            post(|axum::Json(_): axum::Json<Value>| async { "parsed" }),
        )
}

async fn local_server(access_log: AccessLog, prefix: &str) -> (SocketAddr, oneshot::Sender<()>) {
    logs();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Server::from_lookup(|_| None)
        .unwrap()
        .access_log(access_log);
    (addr, spawn(server, listener, routes(prefix)))
}

fn messages(lines: &[Value]) -> Vec<(String, String, u64)> {
    let mut found: Vec<_> = lines
        .iter()
        .map(|l| {
            (
                l["level"].as_str().unwrap().to_owned(),
                l["message"].as_str().unwrap().to_owned(),
                l["http.response.status_code"].as_u64().unwrap(),
            )
        })
        .collect();
    found.sort();
    found
}

#[tokio::test]
async fn by_default_only_failures_slow_requests_and_rejected_input_are_logged() {
    let access_log = AccessLog::new().slow_threshold(Duration::from_millis(100));
    let (addr, _stop) = local_server(access_log, "/problems").await;
    assert_eq!(call(addr, "GET", "/problems/ok", None).await, 200);
    assert_eq!(call(addr, "GET", "/problems/missing", None).await, 404);
    assert_eq!(call(addr, "GET", "/problems/fail", None).await, 500);
    assert_eq!(call(addr, "GET", "/problems/slow", None).await, 200);
    assert_eq!(
        call(addr, "POST", "/problems/json", Some("{oops")).await,
        400
    );
    assert_eq!(call(addr, "POST", "/problems/json", Some("{}")).await, 200);

    let lines = access_lines("/problems");
    assert_eq!(
        messages(&lines),
        [
            ("ERROR".to_owned(), "request failed".to_owned(), 500),
            ("INFO".to_owned(), "request rejected".to_owned(), 400),
            ("WARN".to_owned(), "slow request".to_owned(), 200),
        ],
        "{lines:#?}"
    );
    for line in &lines {
        assert_eq!(line["service.name"], "settings-tests", "{line}");
        let trace_id = line["trace_id"].as_str().unwrap_or_default();
        assert!(trace_id.starts_with("1-"), "no X-Ray trace id: {line}");
        assert!(line["duration_ms"].is_u64(), "{line}");
        assert!(line["http.route"].is_string(), "{line}");
    }
    let slow = lines
        .iter()
        .find(|l| l["message"] == "slow request")
        .unwrap();
    assert!(slow["duration_ms"].as_u64().unwrap() >= 100, "{slow}");
}

#[tokio::test]
async fn access_log_all_logs_every_request() {
    let (addr, _stop) = local_server(AccessLog::new().mode(AccessLogMode::All), "/every").await;
    assert_eq!(call(addr, "GET", "/every/ok", None).await, 200);
    assert_eq!(call(addr, "GET", "/every/unknown", None).await, 404);
    let lines = access_lines("/every");
    assert_eq!(
        messages(&lines),
        [
            ("INFO".to_owned(), "request served".to_owned(), 200),
            ("INFO".to_owned(), "request served".to_owned(), 404),
        ],
        "{lines:#?}"
    );
    let unrouted = lines.iter().find(|l| l["url.path"].is_string()).unwrap();
    assert_eq!(unrouted["url.path"], "/every/unknown");
}

#[tokio::test]
async fn access_log_off_logs_nothing() {
    let off = AccessLog::from_lookup(|key| (key == "APPRUNNER_ACCESS_LOG").then(|| "off".into()))
        .unwrap();
    let (addr, _stop) = local_server(off, "/silent").await;
    assert_eq!(call(addr, "GET", "/silent/fail", None).await, 500);
    assert_eq!(call(addr, "GET", "/silent/ok", None).await, 200);
    assert!(access_lines("/silent").is_empty());
}

/// Listens as `HOST` says: `127.0.0.1` is reachable on 127.0.0.1 only, while the default
/// (`0.0.0.0`) is reachable on every address of the machine. 127.0.0.2 is another address of
/// Linux's loopback interface, so this needs no second network interface.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn host_decides_which_addresses_are_served() {
    logs();
    let other_address = Ipv4Addr::new(127, 0, 0, 2);
    for (host, reachable_elsewhere) in [(Some("127.0.0.1"), false), (None, true)] {
        let port = apprunner_kit_tests::free_port();
        let server = Server::from_lookup(|key| match key {
            "HOST" => host.map(str::to_owned),
            "PORT" => Some(port.to_string()),
            _ => None,
        })
        .unwrap();
        let expected_ip = host.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |h| h.parse().unwrap());
        assert_eq!(server.local_addr(), SocketAddr::new(expected_ip, port));
        // The server binds the address itself.
        let (_stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(server.serve_with_shutdown(routes("/bind"), async {
            let _ = stopped.await;
        }));
        let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(loopback).await.is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "HOST={host:?}: never listened"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(call(loopback, "GET", "/bind/ok", None).await, 200);
        let elsewhere = TcpStream::connect((other_address, port)).await;
        assert_eq!(
            elsewhere.is_ok(),
            reachable_elsewhere,
            "HOST={host:?}: connecting to {other_address}:{port} gave {elsewhere:?}"
        );
    }
}

#[test]
fn invalid_host_is_an_error_naming_the_variable() {
    let err =
        Server::from_lookup(|key| (key == "HOST").then(|| "0.0.0.0:8080".to_owned())).unwrap_err();
    assert!(matches!(err, HttpError::InvalidHost { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("HOST") && text.contains("0.0.0.0:8080"),
        "{text}"
    );
}
