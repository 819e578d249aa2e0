//! Tests of the shared test harness itself: the OTLP receiver receives what real
//! `opentelemetry-otlp` exporters send (plain, TLS, mutual TLS, gzip; refusing, failing first
//! or starting late when asked), and the PostgreSQL cluster really serves.

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::time::{Duration, SystemTime};

use tonic::transport::{Certificate, ClientTlsConfig, Identity};

use apprunner_kit_tests::{
    AttrValue, OtlpProtocol, OtlpReceiver, Postgres, ReceiverBehavior, SpanKind, SpanRecord,
    StatusCode, TestCa,
};
use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, Status, TraceContextExt as _, TraceFlags, TraceId, TraceState,
    Tracer as _, TracerProvider as _,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::{
    Compression, RetryPolicy, WithExportConfig as _, WithHttpConfig as _, WithTonicConfig as _,
};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{
    SdkTracerProvider, SpanData, SpanEvents, SpanExporter as _, SpanLinks,
};

const WAIT: Duration = Duration::from_secs(20);

/// Makes a SERVER parent span with a CLIENT child (error status, one event) and returns the
/// provider's tracer output through `provider`.
fn emit_parent_and_child(provider: &SdkTracerProvider) {
    let tracer = provider.tracer_with_scope(
        InstrumentationScope::builder("harness-scope")
            .with_version("1.2.3")
            .build(),
    );
    let parent = tracer
        .span_builder("GET /users/{id}")
        .with_kind(opentelemetry::trace::SpanKind::Server)
        .with_attributes([
            KeyValue::new("http.request.method", "GET"),
            KeyValue::new("http.response.status_code", 200_i64),
            KeyValue::new("harness.flag", true),
        ])
        .start(&tracer);
    let cx = opentelemetry::Context::current_with_span(parent);
    let mut child = tracer
        .span_builder("SELECT users")
        .with_kind(opentelemetry::trace::SpanKind::Client)
        .with_attributes([KeyValue::new("db.system.name", "postgresql")])
        .start_with_context(&tracer, &cx);
    child.add_event("retry", vec![KeyValue::new("attempt", 2_i64)]);
    child.set_status(Status::error("connection reset"));
    child.end();
    cx.span().end();
}

/// Sends `rounds` parent-and-child pairs through a batch provider exporting with `exporter`,
/// then shuts the provider down (flushing them).
async fn export_parents_and_children(exporter: opentelemetry_otlp::SpanExporter, rounds: usize) {
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource())
        .build();
    for _ in 0..rounds {
        emit_parent_and_child(&provider);
    }
    tokio::task::spawn_blocking(move || provider.shutdown())
        .await
        .unwrap()
        .unwrap();
}

fn resource() -> Resource {
    Resource::builder_empty()
        .with_service_name("harness-service")
        .with_attribute(KeyValue::new("deployment.environment.name", "test"))
        .build()
}

fn assert_parent_and_child(spans: &[SpanRecord], protocol: OtlpProtocol) {
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let parent = spans
        .iter()
        .find(|s| s.name == "GET /users/{id}")
        .expect("parent span");
    let child = spans
        .iter()
        .find(|s| s.name == "SELECT users")
        .expect("child span");

    assert_eq!(parent.kind, SpanKind::Server);
    assert_eq!(child.kind, SpanKind::Client);
    assert!(parent.is_root(), "{parent:#?}");
    assert_eq!(
        child.parent_span_id.as_deref(),
        Some(parent.span_id.as_str())
    );
    assert_eq!(child.trace_id, parent.trace_id);
    assert_eq!(parent.trace_id.len(), 32);
    assert_eq!(parent.span_id.len(), 16);
    assert!(
        parent
            .trace_id
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
    assert_ne!(parent.span_id, child.span_id);

    assert_eq!(parent.attr_str("http.request.method"), Some("GET"));
    assert_eq!(parent.attr_i64("http.response.status_code"), Some(200));
    assert_eq!(parent.attr_bool("harness.flag"), Some(true));
    assert_eq!(child.attr_str("db.system.name"), Some("postgresql"));

    for span in [parent, child] {
        assert_eq!(span.resource_str("service.name"), Some("harness-service"));
        assert_eq!(
            span.resource_str("deployment.environment.name"),
            Some("test")
        );
        assert_eq!(span.scope_name, "harness-scope");
        assert_eq!(span.scope_version, "1.2.3");
        assert_eq!(span.protocol, protocol);
        assert!(span.start_time_unix_nano > 0);
        assert!(span.end_time_unix_nano >= span.start_time_unix_nano);
    }

    assert_eq!(parent.status.code, StatusCode::Unset);
    assert_eq!(child.status.code, StatusCode::Error);
    assert_eq!(child.status.message, "connection reset");
    let event = child.event("retry").expect("retry event");
    assert_eq!(event.attributes.get("attempt"), Some(&AttrValue::I64(2)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_exporter_delivers_spans_resource_and_metadata() {
    let receiver = OtlpReceiver::start().await;
    let mut metadata = tonic::metadata::MetadataMap::new();
    metadata.insert("x-harness-token", "grpc-123".parse().unwrap());
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(receiver.grpc_endpoint())
        .with_metadata(metadata)
        .build()
        .unwrap();
    export_parents_and_children(exporter, 1).await;

    let spans = receiver.wait_for_spans(2, WAIT).await;
    assert_parent_and_child(&spans, OtlpProtocol::Grpc);

    let requests = receiver.export_requests();
    assert_eq!(requests.len(), 1, "{requests:#?}");
    assert_eq!(requests[0].protocol, OtlpProtocol::Grpc);
    assert_eq!(requests[0].span_count, 2);
    assert_eq!(requests[0].header("X-Harness-Token"), Some("grpc-123"));
    assert_eq!(requests[0].header("content-type"), Some("application/grpc"));
}

/// `ReceiverBehavior::Count`: what a real exporter sends is decoded (with prost) and counted,
/// nothing kept; an export the receiver cannot decode is refused, not counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counting_receiver_counts_what_exporters_send_and_refuses_garbage() {
    let receiver = OtlpReceiver::start_with(ReceiverBehavior::Count).await;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(receiver.grpc_endpoint())
        .build()
        .unwrap();
    export_parents_and_children(exporter, 5).await;
    assert_eq!(receiver.span_count(), 10);
    assert!(receiver.spans().is_empty() && receiver.export_requests().is_empty());

    // A gRPC call whose message is not an ExportTraceServiceRequest: its field 1 is a number
    // where the request has its resource spans.
    let channel = tonic::transport::Endpoint::from_shared(receiver.grpc_endpoint())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = tonic::client::Grpc::new(channel);
    client.ready().await.unwrap();
    let status = client
        .unary::<_, opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse, _>(
            tonic::Request::new(
                opentelemetry_proto::tonic::collector::trace::v1::ExportTracePartialSuccess {
                    rejected_spans: 5,
                    error_message: String::new(),
                },
            ),
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
                .parse()
                .unwrap(),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .unwrap_err();
    // tonic's prost codec answers a message it cannot decode with INTERNAL.
    assert_eq!(status.code(), tonic::Code::Internal, "{status:?}");
    assert_eq!(receiver.span_count(), 10);
}

/// The async reqwest client (the one the kit uses) needs a runtime: the simple processor
/// exports on the test's thread, whose I/O the multi-thread runtime's workers drive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_protobuf_exporter_delivers_spans_resource_and_headers() {
    let receiver = OtlpReceiver::start().await;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(receiver.http_traces_url())
        .with_headers(HashMap::from([(
            "x-harness-token".to_owned(),
            "http-456".to_owned(),
        )]))
        .build()
        .unwrap();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter)
        .with_resource(resource())
        .build();
    emit_parent_and_child(&provider);
    provider.shutdown().unwrap();

    let spans = receiver.wait_for_spans(2, WAIT).await;
    assert_parent_and_child(&spans, OtlpProtocol::HttpProtobuf);

    // One export per span (the simple processor).
    let requests = receiver.export_requests();
    assert_eq!(requests.len(), 2, "{requests:#?}");
    for request in &requests {
        assert_eq!(request.path, "/v1/traces");
        assert_eq!(request.header("x-harness-token"), Some("http-456"));
        assert_eq!(
            request.header("content-type"),
            Some("application/x-protobuf")
        );
    }
}

fn span_data(name: &'static str) -> SpanData {
    SpanData {
        span_context: SpanContext::new(
            TraceId::from_hex("5759e988bd862e3fe1be46a994272793").unwrap(),
            SpanId::from_hex("53995c3f42cd8ad8").unwrap(),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        ),
        parent_span_id: SpanId::INVALID,
        parent_span_is_remote: false,
        span_kind: opentelemetry::trace::SpanKind::Internal,
        name: name.into(),
        start_time: SystemTime::now(),
        end_time: SystemTime::now(),
        attributes: vec![],
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: Status::Unset,
        instrumentation_scope: InstrumentationScope::builder("harness").build(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unavailable_and_slow_receivers_fail_exports_until_they_recover() {
    let receiver = OtlpReceiver::start_with(ReceiverBehavior::Unavailable).await;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(receiver.grpc_endpoint())
        .with_timeout(Duration::from_millis(500))
        .build()
        .unwrap();

    let unavailable = exporter.export(vec![span_data("refused")]).await;
    assert!(
        unavailable.is_err(),
        "export to an UNAVAILABLE receiver succeeded"
    );
    assert!(
        !receiver.export_requests().is_empty(),
        "the refused call was not recorded"
    );
    assert!(receiver.spans().is_empty(), "{:#?}", receiver.spans());

    receiver.set_behavior(ReceiverBehavior::Delay(Duration::from_secs(30)));
    let slow = exporter.export(vec![span_data("too slow")]).await;
    assert!(
        slow.is_err(),
        "export outlived its 500 ms timeout against a 30 s receiver"
    );
    assert!(receiver.spans().is_empty(), "{:#?}", receiver.spans());

    receiver.set_behavior(ReceiverBehavior::Accept);
    exporter.export(vec![span_data("accepted")]).await.unwrap();
    let spans = receiver.wait_for_spans(1, WAIT).await;
    assert_eq!(spans.len(), 1, "{spans:#?}");
    assert_eq!(spans[0].name, "accepted");
    assert_eq!(spans[0].trace_id, "5759e988bd862e3fe1be46a994272793");
    assert_eq!(
        spans[0].xray_trace_id(),
        "1-5759e988-bd862e3fe1be46a994272793"
    );
    assert_eq!(spans[0].span_id, "53995c3f42cd8ad8");
    assert_eq!(spans[0].kind, SpanKind::Internal);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exporting_to_the_unused_endpoint_fails() {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(OtlpReceiver::unused_endpoint())
        .with_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    assert!(exporter.export(vec![span_data("nobody")]).await.is_err());
}

/// POSTs `body` to the receiver with a blocking std socket (HTTP/1.1) and returns the status line.
fn blocking_post(receiver: &OtlpReceiver, content_type: &str, body: &[u8]) -> String {
    let mut stream = std::net::TcpStream::connect(receiver.http_addr()).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        stream,
        "POST /v1/traces HTTP/1.1\r\nHost: {}\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        receiver.http_addr(),
        body.len()
    )
    .unwrap();
    stream.write_all(body).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap_or_default();
    response.lines().next().unwrap_or_default().to_owned()
}

/// The receiver answers while the test's current-thread runtime is blocked in synchronous I/O.
#[tokio::test]
async fn receiver_serves_while_the_test_runtime_is_blocked() {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use prost::Message as _;

    let receiver = OtlpReceiver::start().await;
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: vec![0xAB; 16],
                    span_id: vec![0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08],
                    parent_span_id: vec![0x0A; 8],
                    name: "raw".to_owned(),
                    kind: 3,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let status = blocking_post(
        &receiver,
        "application/x-protobuf",
        &request.encode_to_vec(),
    );
    assert_eq!(status, "HTTP/1.1 200 OK");
    let status = blocking_post(&receiver, "application/json", b"{}");
    assert_eq!(status, "HTTP/1.1 415 Unsupported Media Type");

    let spans = receiver.wait_for_spans(1, WAIT).await;
    assert_eq!(spans[0].trace_id, "abababababababababababababababab");
    assert_eq!(spans[0].span_id, "0102030405060708");
    assert_eq!(spans[0].parent_span_id.as_deref(), Some("0a0a0a0a0a0a0a0a"));
    assert_eq!(spans[0].kind, SpanKind::Client);
    assert_eq!(spans[0].status.code, StatusCode::Unset);
    assert!(spans[0].resource.is_empty());
}

#[tokio::test]
#[should_panic(expected = "timed out after")]
async fn wait_for_spans_panics_listing_what_arrived() {
    let receiver = OtlpReceiver::start().await;
    receiver.wait_for_spans(1, Duration::from_millis(200)).await;
}

// ---------------------------------------------------------------------------------------------
// TLS, mutual TLS, gzip, failing and late receivers, driven by opentelemetry-otlp directly

/// A gRPC exporter to `receiver`, trusting its CA (with the client identity when `identity`),
/// compressing with gzip when `gzip`, without the exporter's own retries.
fn tonic_exporter(
    receiver: &OtlpReceiver,
    identity: bool,
    gzip: bool,
) -> opentelemetry_otlp::SpanExporter {
    let mut builder = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(receiver.grpc_endpoint())
        .with_timeout(Duration::from_secs(5))
        .with_retry_policy(RetryPolicy::disabled());
    if let Some(ca) = receiver.tls() {
        let mut tls =
            ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca.ca_cert_pem()));
        if identity {
            tls = tls.identity(Identity::from_pem(
                ca.client_cert_pem(),
                ca.client_key_pem(),
            ));
        }
        builder = builder.with_tls_config(tls);
    }
    if gzip {
        builder = builder.with_compression(Compression::Gzip);
    }
    builder.build().unwrap()
}

/// An http/protobuf exporter to `receiver` on a reqwest client trusting only its CA
/// (presenting the client identity when `identity`), gzip when `gzip`, without retries.
fn http_exporter(
    receiver: &OtlpReceiver,
    identity: bool,
    gzip: bool,
) -> opentelemetry_otlp::SpanExporter {
    let mut client = reqwest::Client::builder().timeout(Duration::from_secs(5));
    if let Some(ca) = receiver.tls() {
        client = client
            .tls_certs_only([reqwest::Certificate::from_pem(ca.ca_cert_pem().as_bytes()).unwrap()]);
        if identity {
            client = client.identity(
                reqwest::Identity::from_pem(ca.client_identity_pem().as_bytes()).unwrap(),
            );
        }
    }
    let mut builder = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client.build().unwrap())
        .with_endpoint(receiver.http_traces_url())
        .with_retry_policy(RetryPolicy::disabled());
    if gzip {
        builder = builder.with_compression(Compression::Gzip);
    }
    builder.build().unwrap()
}

/// Runs one export of an HTTP exporter to completion on a runtime of its own (call it outside
/// any runtime).
fn export_now(
    exporter: &opentelemetry_otlp::SpanExporter,
    name: &'static str,
) -> opentelemetry_sdk::error::OTelSdkResult {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime for the export")
        .block_on(exporter.export(vec![span_data(name)]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_receiver_serves_grpc_to_an_exporter_trusting_its_ca() {
    let receiver = OtlpReceiver::builder().tls().start().await;
    assert!(receiver.grpc_endpoint().starts_with("https://localhost:"));
    assert!(receiver.ca_cert_path().is_file());
    export_parents_and_children(tonic_exporter(&receiver, false, false), 1).await;
    let spans = receiver.wait_for_spans(2, WAIT).await;
    assert_parent_and_child(&spans, OtlpProtocol::Grpc);
    assert!(!receiver.export_requests()[0].is_compressed());

    // An exporter that does not trust the test CA cannot connect.
    let untrusting = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(receiver.grpc_endpoint())
        .with_tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(TestCa::generate().ca_cert_pem())),
        )
        .with_retry_policy(RetryPolicy::disabled())
        .build()
        .unwrap();
    assert!(
        untrusting
            .export(vec![span_data("untrusted")])
            .await
            .is_err()
    );
    assert_eq!(receiver.spans().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_receiver_serves_grpc_only_with_a_client_certificate() {
    let receiver = OtlpReceiver::builder().mutual_tls().start().await;
    let without = tonic_exporter(&receiver, false, false);
    assert!(without.export(vec![span_data("anonymous")]).await.is_err());
    assert!(receiver.export_requests().is_empty());

    tonic_exporter(&receiver, true, false)
        .export(vec![span_data("identified")])
        .await
        .unwrap();
    let spans = receiver.wait_for_spans(1, WAIT).await;
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].name, "identified");
}

#[test]
fn tls_and_mutual_tls_receivers_serve_http() {
    let receiver = OtlpReceiver::start_tls_blocking();
    assert!(receiver.http_traces_url().starts_with("https://localhost:"));
    export_now(&http_exporter(&receiver, false, false), "over tls").unwrap();
    let spans = receiver.wait_for_spans_blocking(1, WAIT);
    assert_eq!(spans[0].name, "over tls");
    assert_eq!(spans[0].protocol, OtlpProtocol::HttpProtobuf);

    let receiver = OtlpReceiver::start_mutual_tls_blocking();
    assert!(export_now(&http_exporter(&receiver, false, false), "anonymous").is_err());
    assert!(receiver.export_requests().is_empty());
    export_now(&http_exporter(&receiver, true, false), "identified").unwrap();
    let spans = receiver.wait_for_spans_blocking(1, WAIT);
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].name, "identified");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_grpc_exports_are_decoded_and_recorded_as_compressed() {
    let receiver = OtlpReceiver::start().await;
    export_parents_and_children(tonic_exporter(&receiver, false, true), 1).await;
    let spans = receiver.wait_for_spans(2, WAIT).await;
    assert_parent_and_child(&spans, OtlpProtocol::Grpc);
    let requests = receiver.export_requests();
    assert_eq!(
        requests[0].compression.as_deref(),
        Some("gzip"),
        "{requests:#?}"
    );

    // Over mutual TLS too.
    let receiver = OtlpReceiver::builder().mutual_tls().start().await;
    export_parents_and_children(tonic_exporter(&receiver, true, true), 1).await;
    receiver.wait_for_spans(2, WAIT).await;
    assert!(receiver.export_requests().iter().all(|r| r.is_compressed()));
}

#[test]
fn gzip_http_exports_are_decoded_and_recorded_as_compressed() {
    let receiver = OtlpReceiver::start_tls_blocking();
    export_now(&http_exporter(&receiver, false, true), "gzipped").unwrap();
    export_now(&http_exporter(&receiver, false, false), "plain").unwrap();
    let spans = receiver.wait_for_spans_blocking(2, WAIT);
    let names: Vec<_> = spans.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["gzipped", "plain"]);
    let compression: Vec<_> = receiver
        .export_requests()
        .into_iter()
        .map(|r| r.compression)
        .collect();
    assert_eq!(compression, [Some("gzip".to_owned()), None]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_first_refuses_that_many_grpc_calls_then_accepts() {
    let receiver = OtlpReceiver::start_with(ReceiverBehavior::FailFirst(2)).await;
    let exporter = tonic_exporter(&receiver, false, false);
    assert!(exporter.export(vec![span_data("first")]).await.is_err());
    assert!(exporter.export(vec![span_data("second")]).await.is_err());
    exporter.export(vec![span_data("third")]).await.unwrap();
    let spans = receiver.wait_for_spans(1, WAIT).await;
    assert_eq!(spans.len(), 1, "{spans:#?}");
    assert_eq!(spans[0].name, "third");
    assert_eq!(receiver.export_requests().len(), 3);

    // set_behavior starts the count again; an exporter with the recommended retry policy
    // gets through on its third attempt, its spans recorded once.
    receiver.set_behavior(ReceiverBehavior::FailFirst(2));
    receiver.clear();
    let retrying = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(receiver.grpc_endpoint())
        .build()
        .unwrap();
    retrying.export(vec![span_data("retried")]).await.unwrap();
    assert_eq!(receiver.export_requests().len(), 3);
    assert_eq!(receiver.spans().len(), 1);
}

#[test]
fn fail_first_answers_http_503_then_accepts() {
    let receiver = OtlpReceiver::start_blocking_with(ReceiverBehavior::FailFirst(2));
    let exporter = http_exporter(&receiver, false, false);
    assert!(export_now(&exporter, "first").is_err());
    assert!(export_now(&exporter, "second").is_err());
    export_now(&exporter, "third").unwrap();
    let spans = receiver.wait_for_spans_blocking(1, WAIT);
    assert_eq!(spans.len(), 1, "{spans:#?}");
    assert_eq!(spans[0].name, "third");
    assert_eq!(receiver.export_requests().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_receiver_refuses_connections_until_it_starts() {
    let delay = Duration::from_millis(1500);
    let started = std::time::Instant::now();
    let receiver = OtlpReceiver::builder()
        .tls()
        .start_after(delay)
        .start()
        .await;
    assert!(started.elapsed() < delay, "the endpoints are known at once");
    let refused = tokio::net::TcpStream::connect(("127.0.0.1", port(&receiver.grpc_endpoint())))
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    let exporter = tonic_exporter(&receiver, false, false);
    assert!(exporter.export(vec![span_data("early")]).await.is_err());

    tokio::time::sleep(delay.saturating_sub(started.elapsed()) + Duration::from_millis(300)).await;
    tonic_exporter(&receiver, false, false)
        .export(vec![span_data("late")])
        .await
        .unwrap();
    let spans = receiver.wait_for_spans(1, WAIT).await;
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].name, "late");
}

#[test]
fn a_late_http_receiver_refuses_connections_until_it_starts() {
    let delay = Duration::from_millis(1500);
    let receiver = OtlpReceiver::start_late_blocking(delay);
    let exporter = http_exporter(&receiver, false, false);
    assert!(export_now(&exporter, "early").is_err());
    std::thread::sleep(delay + Duration::from_millis(300));
    export_now(&exporter, "late").unwrap();
    let spans = receiver.wait_for_spans_blocking(1, WAIT);
    assert_eq!(spans[0].name, "late");
}

fn port(endpoint: &str) -> u16 {
    endpoint.rsplit(':').next().unwrap().parse().unwrap()
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

fn psql(pg: &Postgres, url: &str, sql: &str) -> String {
    let out = std::process::Command::new(pg.psql_path())
        .args([
            "-X",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            sql,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "psql {sql:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn postgres_cluster_serves_creates_databases_and_restarts() {
    let pg = Postgres::start();
    assert_eq!(psql(&pg, &pg.url(), "select 1 + 1"), "2");
    assert_eq!(pg.host(), "127.0.0.1");
    assert!(
        pg.url().contains(&format!(":{}/", pg.port())),
        "{}",
        pg.url()
    );

    let url = pg.create_database("harness_db");
    assert_ne!(url, pg.url());
    psql(
        &pg,
        &url,
        "create table t (v int); insert into t values (41)",
    );
    assert_eq!(psql(&pg, &url, "select v + 1 from t"), "42");
    assert_eq!(
        psql(&pg, &url, "select current_database()"),
        url.rsplit('/').next().unwrap().split('?').next().unwrap()
    );

    if pg.is_own_cluster() {
        pg.stop();
        let refused = std::process::Command::new(pg.psql_path())
            .args(["-X", "-d", &url, "-c", "select 1"])
            .output()
            .unwrap();
        assert!(
            !refused.status.success(),
            "psql connected to a stopped cluster"
        );
        pg.restart();
        assert_eq!(
            psql(&pg, &url, "select v from t"),
            "41",
            "data survives a restart"
        );
    }
}

#[test]
fn two_clusters_run_side_by_side() {
    let a = Postgres::start();
    let b = Postgres::start();
    let a_db = a.create_database("same_name");
    let b_db = b.create_database("same_name");
    assert_ne!(a_db, b_db);
    assert_eq!(psql(&a, &a_db, "select 1"), "1");
    assert_eq!(psql(&b, &b_db, "select 1"), "1");
}
