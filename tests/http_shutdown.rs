//! Graceful shutdown of `apprunner::serve`, with a real SIGTERM, and the log lines of its
//! request limits: the `http-test-server` binary runs as a child process configured like a real
//! service (`PORT`, `OTEL_EXPORTER_OTLP_ENDPOINT`), logs JSON to its stdout and exports to a
//! real OTLP receiver.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use apprunner_kit_tests::{OtlpReceiver, SpanKind, free_port};
use http_body_util::{BodyExt as _, Empty, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

const WAIT: Duration = Duration::from_secs(15);

/// The child server, with its stdout (JSON log lines) read on a thread.
struct ChildServer {
    child: Child,
    port: u16,
    lines: mpsc::Receiver<String>,
}

impl ChildServer {
    fn start(receiver: &OtlpReceiver, extra_env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_http-test-server"));
        command
            .env("PORT", port.to_string())
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.grpc_endpoint())
            .env("OTEL_SERVICE_NAME", "http-shutdown-test")
            .env("RUST_LOG", "info")
            .env_remove("OTEL_EXPORTER_OTLP_PROTOCOL")
            .env_remove("OTEL_TRACES_EXPORTER")
            .env_remove("OTEL_SDK_DISABLED")
            .stdout(Stdio::piped());
        for (key, value) in extra_env {
            command.env(key, value);
        }
        let spawned = Instant::now();
        let mut child = command.spawn().expect("start http-test-server");
        let lines = read_lines(child.stdout.take().unwrap());
        let mut server = Self { child, port, lines };
        let listening = server.wait_for_log_blocking("listening");
        // The start-up time, counted from the process start (in 10 ms clock ticks).
        let startup_ms = listening["startup_ms"]
            .as_u64()
            .unwrap_or_else(|| panic!("no startup_ms: {listening}"));
        let waited_ms = u64::try_from(spawned.elapsed().as_millis()).unwrap();
        assert!(
            startup_ms <= waited_ms + 20,
            "startup_ms {startup_ms} but the line came {waited_ms} ms after the spawn"
        );
        server
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The next JSON log line whose message is `message` (panics after [`WAIT`]). Blocks the
    /// calling worker thread only: the client requests keep running on the other.
    fn wait_for_log(&mut self, message: &str) -> serde_json::Value {
        tokio::task::block_in_place(|| self.wait_for_log_blocking(message))
    }

    fn wait_for_log_blocking(&mut self, message: &str) -> serde_json::Value {
        let deadline = Instant::now() + WAIT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Ok(value) = serde_json::from_str::<serde_json::Value>(&line)
                        && value["message"] == message
                    {
                        return value;
                    }
                    seen.push(line);
                }
                Err(_) => panic!(
                    "no log line {message:?}; stdout so far:\n{}",
                    seen.join("\n")
                ),
            }
        }
    }

    fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the server did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_lines(stdout: ChildStdout) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

async fn post(url: String, body: String) -> (u16, Bytes) {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let request = http::Request::post(url)
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let response = client.request(request).await.expect("a response");
    let status = response.status().as_u16();
    (
        status,
        response.into_body().collect().await.unwrap().to_bytes(),
    )
}

async fn get(url: String) -> Result<(u16, Bytes), hyper_util::client::legacy::Error> {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let response = client.get(url.parse().unwrap()).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Ok((status, body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_request_in_flight_finish_and_its_span_arrive() {
    let receiver = OtlpReceiver::start().await;
    let mut server = ChildServer::start(&receiver, &[]);

    let in_flight = tokio::spawn(get(server.url("/slow?ms=1500")));
    let started = server.wait_for_log("slow request started");
    server.sigterm();
    server.wait_for_log("shutting down: no new connections, draining in-flight requests");

    // No new connections once draining...
    let refused = tokio::net::TcpStream::connect(("127.0.0.1", server.port)).await;
    assert!(refused.is_err(), "a connection was accepted while draining");

    // ...but the request in flight completes.
    let (status, body) = in_flight
        .await
        .unwrap()
        .expect("the in-flight request completes");
    assert_eq!(status, 200);
    assert_eq!(body, "slept 1500 ms");

    let exit = tokio::task::spawn_blocking(move || {
        let status = server.wait_exit();
        (status, server)
    })
    .await
    .unwrap()
    .0;
    assert_eq!(exit.code(), Some(0), "exit status {exit:?}");

    // Its span was exported before the process exited, in the trace its log lines name.
    let spans = receiver.spans();
    let span = spans
        .iter()
        .find(|s| s.name == "GET /slow" && s.kind == SpanKind::Server)
        .unwrap_or_else(|| panic!("no GET /slow span in {spans:#?}"));
    assert_eq!(span.attr_i64("http.response.status_code"), Some(200));
    assert_eq!(started["trace_id"], span.xray_trace_id().as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_timeout_bounds_the_shutdown() {
    let receiver = OtlpReceiver::start().await;
    let mut server = ChildServer::start(&receiver, &[("DRAIN_TIMEOUT_MS", "300")]);

    let in_flight = tokio::spawn(get(server.url("/slow?ms=60000")));
    server.wait_for_log("slow request started");
    server.sigterm();
    server.wait_for_log("drain timeout elapsed: closing the connections still open");

    let exit = tokio::task::spawn_blocking(move || {
        let status = server.wait_exit();
        (status, server)
    })
    .await
    .unwrap()
    .0;
    assert_eq!(exit.code(), Some(0), "exit status {exit:?}");
    assert!(
        in_flight.await.unwrap().is_err(),
        "the request past the drain timeout is cut off"
    );
    // The cut-off request's span still left the process.
    let spans = receiver.spans();
    assert!(
        spans
            .iter()
            .any(|s| s.name == "GET /slow" && s.kind == SpanKind::Server),
        "no GET /slow span in {spans:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_and_oversized_bodies_are_logged_in_their_request_trace() {
    let receiver = OtlpReceiver::start().await;
    let mut server = ChildServer::start(
        &receiver,
        &[("REQUEST_TIMEOUT_MS", "200"), ("BODY_LIMIT_BYTES", "16")],
    );

    let (status, _) = get(server.url("/slow?ms=5000")).await.unwrap();
    assert_eq!(status, 504);
    let timed_out = server.wait_for_log("request timed out: answering 504");
    assert_eq!(timed_out["timeout_ms"], 200, "{timed_out}");
    assert_eq!(timed_out["level"], "WARN", "{timed_out}");

    let (status, body) = post(server.url("/echo"), "x".repeat(17)).await;
    assert_eq!(status, 413, "{body:?}");
    let too_large = server.wait_for_log("request body larger than the limit: answering 413");
    assert_eq!(too_large["content_length"], 17, "{too_large}");
    assert_eq!(too_large["limit_bytes"], 16, "{too_large}");
    let (status, body) = post(server.url("/echo"), "x".repeat(16)).await;
    assert_eq!((status, body.as_ref()), (200, "x".repeat(16).as_bytes()));

    server.sigterm();
    let exit = tokio::task::spawn_blocking(move || server.wait_exit())
        .await
        .unwrap();
    assert_eq!(exit.code(), Some(0), "exit status {exit:?}");

    // Each log line carries the trace id of its request's SERVER span.
    let spans = receiver.spans();
    let span = |name: &str, status: i64| {
        spans
            .iter()
            .find(|s| {
                s.name == name
                    && s.kind == SpanKind::Server
                    && s.attr_i64("http.response.status_code") == Some(status)
            })
            .unwrap_or_else(|| panic!("no {name} span with status {status} in {spans:#?}"))
    };
    assert_eq!(
        timed_out["trace_id"],
        span("GET /slow", 504).xray_trace_id().as_str()
    );
    assert_eq!(
        too_large["trace_id"],
        span("POST /echo", 413).xray_trace_id().as_str()
    );
}
