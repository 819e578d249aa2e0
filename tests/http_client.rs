//! Outgoing HTTP through `apprunner::client`: two services in two processes (the
//! `http-test-server` binary, named `svc-a` and `svc-b`), A calling B with the kit's traced
//! `reqwest` client, both exporting to one real OTLP receiver. What arrives must be one trace:
//! A's SERVER span, A's CLIENT span under it, B's SERVER span under that; and the X-Ray replay
//! must draw the two services.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use apprunner_kit_tests::StatusCode;
use apprunner_kit_tests::{OtlpReceiver, SpanKind, SpanRecord, free_port, xray};

const WAIT: Duration = Duration::from_secs(20);

/// One `http-test-server` process, killed on drop.
struct Service {
    child: Child,
    port: u16,
}

impl Service {
    fn start(name: &str, receiver: &OtlpReceiver) -> Self {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_http-test-server"))
            .env("PORT", port.to_string())
            .env("HOST", "127.0.0.1")
            .env("OTEL_SERVICE_NAME", name)
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.grpc_endpoint())
            .env("OTEL_BSP_SCHEDULE_DELAY", "100")
            .env_remove("OTEL_EXPORTER_OTLP_PROTOCOL")
            .env_remove("OTEL_TRACES_EXPORTER")
            .env_remove("OTEL_SDK_DISABLED")
            .env_remove("OTEL_PROPAGATORS")
            .stdout(Stdio::null())
            .spawn()
            .expect("start http-test-server");
        let deadline = Instant::now() + WAIT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "{name} did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, port }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A's `/call` of `target`: A's answer, `<status> <body>` from B.
async fn call_through_a(a: &Service, target: &str) -> (u16, String) {
    let encoded: String = url::form_urlencoded::byte_serialize(target.as_bytes()).collect();
    let response = reqwest::get(a.url(&format!("/call?url={encoded}")))
        .await
        .expect("A answers");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

fn of_service<'a>(spans: &'a [SpanRecord], service: &str, kind: SpanKind) -> Vec<&'a SpanRecord> {
    spans
        .iter()
        .filter(|s| s.kind == kind && s.resource_str("service.name") == Some(service))
        .collect()
}

/// Waits for A's SERVER and CLIENT spans and, when `b_too`, B's SERVER span.
async fn wait_for_call(receiver: &OtlpReceiver, b_too: bool) -> Vec<SpanRecord> {
    receiver
        .wait_until(
            |spans| {
                !of_service(spans, "svc-a", SpanKind::Server).is_empty()
                    && !of_service(spans, "svc-a", SpanKind::Client).is_empty()
                    && (!b_too || !of_service(spans, "svc-b", SpanKind::Server).is_empty())
            },
            WAIT,
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_from_a_to_b_is_one_trace_with_a_client_span_between() {
    let receiver = OtlpReceiver::start().await;
    let b = Service::start("svc-b", &receiver);
    let a = Service::start("svc-a", &receiver);

    let target = b.url("/trace-headers?token=s3cr3t-value&page=2");
    let (status, body) = call_through_a(&a, &target).await;
    assert_eq!(status, 200, "{body}");
    let (b_status, seen) = body.split_once(' ').expect("<status> <body>");
    assert_eq!(b_status, "200", "{body}");
    let seen: serde_json::Value = serde_json::from_str(seen).unwrap();

    let spans = wait_for_call(&receiver, true).await;
    let a_server = of_service(&spans, "svc-a", SpanKind::Server)[0];
    let client = of_service(&spans, "svc-a", SpanKind::Client)[0];
    let b_server = of_service(&spans, "svc-b", SpanKind::Server)[0];

    // One trace, parent links A SERVER -> A CLIENT -> B SERVER.
    assert_eq!(client.trace_id, a_server.trace_id);
    assert_eq!(b_server.trace_id, a_server.trace_id);
    assert_eq!(
        client.parent_span_id.as_deref(),
        Some(a_server.span_id.as_str())
    );
    assert_eq!(
        b_server.parent_span_id.as_deref(),
        Some(client.span_id.as_str())
    );

    // The CLIENT span, by the stable HTTP client conventions, with no secret in it.
    assert_eq!(client.name, "GET");
    assert_eq!(client.scope_name, "apprunner");
    assert_eq!(client.attr_str("http.request.method"), Some("GET"));
    assert_eq!(client.attr_str("server.address"), Some("127.0.0.1"));
    assert_eq!(client.attr_i64("server.port"), Some(i64::from(b.port)));
    assert_eq!(
        client.attr_str("url.full"),
        Some(
            b.url("/trace-headers?token=REDACTED&page=REDACTED")
                .as_str()
        )
    );
    assert_eq!(client.attr_i64("http.response.status_code"), Some(200));
    assert_eq!(client.attr("error.type"), None);
    assert_eq!(client.status.code, StatusCode::Unset);
    assert_eq!(client.attr_str("peer.service"), Some("127.0.0.1"));
    for span in &spans {
        let text = format!("{:?}", span.attributes);
        assert!(
            !text.contains("s3cr3t"),
            "a secret in {}: {text}",
            span.name
        );
    }

    // B received both headers, naming A's CLIENT span as the parent.
    let trace = &client.trace_id;
    assert_eq!(
        seen["traceparent"],
        format!("00-{trace}-{}-01", client.span_id),
        "{seen}"
    );
    let xray_header = seen["x-amzn-trace-id"]
        .as_str()
        .expect("an X-Amzn-Trace-Id");
    let expected = xray::trace_header_prefix(trace, &client.span_id);
    assert!(xray_header.starts_with(&expected), "{xray_header}");

    // The X-Ray service map: the two services; A's call is a remote subsegment whose
    // downstream segment (B's) exists, so X-Ray joins them instead of inferring a node.
    let map = xray::service_map(&spans);
    assert_eq!(
        map.services.iter().map(String::as_str).collect::<Vec<_>>(),
        ["svc-a", "svc-b"]
    );
    let made = xray::segments(client);
    assert_eq!(made.len(), 1);
    assert!(made[0].is_remote_node(), "{made:?}");
    assert_eq!(made[0].name, "127.0.0.1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_status_and_a_refused_connection_are_errors_on_the_client_span() {
    let receiver = OtlpReceiver::start().await;
    let b = Service::start("svc-b", &receiver);
    let a = Service::start("svc-a", &receiver);

    let (status, body) = call_through_a(&a, &b.url("/missing")).await;
    assert_eq!((status, body.as_str()), (200, "404 "));
    let spans = wait_for_call(&receiver, true).await;
    let client = of_service(&spans, "svc-a", SpanKind::Client)[0];
    assert_eq!(client.attr_i64("http.response.status_code"), Some(404));
    assert_eq!(client.attr_str("error.type"), Some("404"));
    assert_eq!(client.status.code, StatusCode::Error);

    // Nothing listens on this port: no response, a connect error.
    let closed = format!("http://127.0.0.1:{}/x", free_port());
    let (status, body) = call_through_a(&a, &closed).await;
    assert_eq!((status, body.as_str()), (502, "connect"));
    let spans = receiver
        .wait_until(
            |spans| of_service(spans, "svc-a", SpanKind::Client).len() >= 2,
            WAIT,
        )
        .await;
    let refused = of_service(&spans, "svc-a", SpanKind::Client)
        .into_iter()
        .find(|s| s.attr_str("url.full") == Some(closed.as_str()))
        .expect("the refused call's span");
    assert_eq!(refused.attr_str("error.type"), Some("connect"));
    assert_eq!(refused.attr("http.response.status_code"), None);
    assert_eq!(refused.status.code, StatusCode::Error);
}
