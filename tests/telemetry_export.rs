//! `apprunner::telemetry`'s export pipeline against real receivers: TLS and mutual TLS from the
//! `OTEL_EXPORTER_OTLP_*` variables, gzip, a collector that starts late, one that fails first,
//! and one that never answers.
//!
//! Each scenario runs the `telemetry-probe` binary as a child process with its own environment
//! and asserts on what the receiver got and on the probe's export statistics.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use apprunner_kit_tests::{
    OtlpProtocol, OtlpReceiver, Probe, ProbeStats, ReceiverBehavior, SpanKind, SpanRecord, TestCa,
    block_on, one,
};

/// How long to wait for spans a finished probe has flushed (they are normally there already).
const WAIT: Duration = Duration::from_secs(5);

/// Runs the probe binary of this package.
fn run_probe(scenario: &str, env: &[(&str, String)]) -> Probe {
    Probe::run(env!("CARGO_BIN_EXE_telemetry-probe"), scenario, env)
}

/// The OTLP transport the probe is told to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Grpc,
    Http,
}

impl Transport {
    const BOTH: [Transport; 2] = [Transport::Grpc, Transport::Http];

    fn protocol(self) -> &'static str {
        match self {
            Self::Grpc => "grpc",
            Self::Http => "http/protobuf",
        }
    }

    fn otlp_protocol(self) -> OtlpProtocol {
        match self {
            Self::Grpc => OtlpProtocol::Grpc,
            Self::Http => OtlpProtocol::HttpProtobuf,
        }
    }

    fn endpoint(self, receiver: &OtlpReceiver) -> String {
        match self {
            Self::Grpc => receiver.grpc_endpoint(),
            Self::Http => receiver.http_endpoint(),
        }
    }
}

/// `OTEL_EXPORTER_OTLP_PROTOCOL` and `OTEL_EXPORTER_OTLP_ENDPOINT` for `receiver`, plus
/// `OTEL_EXPORTER_OTLP_CERTIFICATE` when it serves TLS.
fn export_env(receiver: &OtlpReceiver, transport: Transport) -> Vec<(&'static str, String)> {
    let mut env = vec![
        (
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            transport.protocol().to_owned(),
        ),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", transport.endpoint(receiver)),
    ];
    if let Some(ca) = receiver.tls() {
        env.push(("OTEL_EXPORTER_OTLP_CERTIFICATE", path(ca.ca_cert_path())));
    }
    env
}

/// The client certificate and key variables for `ca`'s client identity.
fn client_identity_env(ca: &TestCa) -> [(&'static str, String); 2] {
    [
        (
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
            path(ca.client_cert_path()),
        ),
        ("OTEL_EXPORTER_OTLP_CLIENT_KEY", path(ca.client_key_path())),
    ]
}

fn path(p: std::path::PathBuf) -> String {
    p.to_str().expect("a UTF-8 temporary path").to_owned()
}

/// The trace id is an X-Ray one: its first 8 hex digits are the epoch seconds of about now.
fn assert_xray_trace_id(span: &SpanRecord) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let epoch = i64::from_str_radix(&span.trace_id[..8], 16).unwrap();
    assert!(
        (now - epoch).abs() < 120,
        "trace id {} is not X-Ray",
        span.trace_id
    );
    assert!(span.xray_trace_id().starts_with("1-"));
}

/// What the `spans` scenario sends arrived whole: `root` (SERVER) with its `child`, and
/// `control` in a trace of its own, with the probe's resource, on `transport`. Called once the
/// probe has exited: its shutdown flush has been answered, so the spans are already here.
fn assert_spans_scenario(receiver: &OtlpReceiver, transport: Transport) {
    let spans = block_on(receiver.wait_for_spans(3, WAIT));
    assert_eq!(spans.len(), 3, "{spans:#?}");
    let root = one(&spans, "root");
    let child = one(&spans, "child");
    let control = one(&spans, "control");
    assert_eq!(root.kind, SpanKind::Server);
    assert!(root.is_root(), "{root:#?}");
    assert_eq!(child.parent_span_id.as_deref(), Some(root.span_id.as_str()));
    assert_eq!(child.trace_id, root.trace_id);
    assert_ne!(control.trace_id, root.trace_id);
    assert_eq!(child.attr_i64("answer"), Some(42));
    for span in [root, control] {
        assert_xray_trace_id(span);
    }
    for span in &spans {
        assert_eq!(span.resource_str("service.name"), Some("telemetry-probe"));
        assert_eq!(span.resource_str("service.version"), Some("9.9.9"));
        assert_eq!(span.protocol, transport.otlp_protocol());
    }
}

/// Every span the probe ended was exported, none failed or dropped.
fn assert_all_exported(probe: &Probe, ended: u64) {
    let stats = probe.stats();
    assert_eq!(
        stats,
        ProbeStats {
            spans_ended: ended,
            spans_exported: ended,
            spans_failed: 0,
            spans_dropped: 0,
        },
        "{}",
        probe.stdout()
    );
    assert_eq!(probe.result()["ok"], true, "{}", probe.stdout());
}

/// Every `steady` span the probe ended arrived exactly once (attributes `i` = 0, 1, ...), and
/// the probe counted them all exported.
fn assert_steady_arrived_once(receiver: &OtlpReceiver, probe: &Probe) {
    let stats = probe.stats();
    assert!(stats.spans_ended >= 10, "{stats:?}\n{}", probe.stdout());
    assert_all_exported(probe, stats.spans_ended);
    let spans = receiver.spans_named("steady");
    let seen: Vec<i64> = spans.iter().map(|s| s.attr_i64("i").unwrap()).collect();
    let distinct: BTreeSet<i64> = seen.iter().copied().collect();
    assert_eq!(
        seen.len(),
        distinct.len(),
        "some spans arrived more than once"
    );
    assert_eq!(
        distinct,
        (0..stats.spans_ended as i64).collect::<BTreeSet<_>>(),
        "{stats:?}"
    );
    for span in &spans {
        assert_xray_trace_id(span);
        assert_eq!(span.resource_str("service.name"), Some("telemetry-probe"));
    }
}

// ---------------------------------------------------------------------------------------------
// TLS

fn tls_run(transport: Transport) {
    let receiver = OtlpReceiver::start_tls_blocking();
    let env = export_env(&receiver, transport);
    assert!(env[1].1.starts_with("https://localhost:"), "{env:?}");
    let probe = run_probe("spans", &env);
    assert_spans_scenario(&receiver, transport);
    assert_all_exported(&probe, 3);
}

#[test]
fn grpc_over_tls_trusts_otel_exporter_otlp_certificate() {
    tls_run(Transport::Grpc);
}

#[test]
fn http_protobuf_over_tls_trusts_otel_exporter_otlp_certificate() {
    tls_run(Transport::Http);
}

/// The `_TRACES_` variants, over mutual TLS: protocol, endpoint (for HTTP the full
/// `/v1/traces` URL, used as is), CA, client certificate and key.
#[test]
fn traces_variables_configure_mutual_tls_on_both_transports() {
    for transport in Transport::BOTH {
        let receiver = OtlpReceiver::start_mutual_tls_blocking();
        let ca = receiver.tls().unwrap();
        let endpoint = match transport {
            Transport::Grpc => receiver.grpc_endpoint(),
            Transport::Http => receiver.http_traces_url(),
        };
        let env = vec![
            (
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
                transport.protocol().to_owned(),
            ),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", endpoint),
            (
                "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
                path(ca.ca_cert_path()),
            ),
            (
                "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
                path(ca.client_cert_path()),
            ),
            (
                "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY",
                path(ca.client_key_path()),
            ),
        ];
        let probe = run_probe("spans", &env);
        assert_spans_scenario(&receiver, transport);
        assert_all_exported(&probe, 3);
    }
}

fn mutual_tls_run(transport: Transport) {
    let receiver = OtlpReceiver::start_mutual_tls_blocking();
    let mut env = export_env(&receiver, transport);
    env.extend(client_identity_env(receiver.tls().unwrap()));
    let probe = run_probe("spans", &env);
    assert_spans_scenario(&receiver, transport);
    assert_all_exported(&probe, 3);
}

#[test]
fn grpc_over_mutual_tls_presents_the_client_certificate() {
    mutual_tls_run(Transport::Grpc);
}

#[test]
fn http_protobuf_over_mutual_tls_presents_the_client_certificate() {
    mutual_tls_run(Transport::Http);
}

/// Without a client certificate the mutual-TLS receiver refuses every connection: nothing
/// arrives, and the probe still exits normally, counting its spans failed.
#[test]
fn without_a_client_certificate_nothing_arrives_and_spans_count_failed() {
    for transport in Transport::BOTH {
        let receiver = OtlpReceiver::start_mutual_tls_blocking();
        let mut env = export_env(&receiver, transport);
        env.push(("OTEL_EXPORTER_OTLP_TIMEOUT", "2000".to_owned()));
        env.push(("PROBE_SHUTDOWN_TIMEOUT_MS", "15000".to_owned()));
        let probe = run_probe("spans", &env);
        assert!(
            probe.elapsed() < Duration::from_secs(30),
            "{:?}",
            probe.elapsed()
        );
        assert!(receiver.spans().is_empty(), "{:#?}", receiver.spans());
        assert!(receiver.export_requests().is_empty());
        let stats = probe.stats();
        assert_eq!(
            stats,
            ProbeStats {
                spans_ended: 3,
                spans_exported: 0,
                spans_failed: 3,
                spans_dropped: 0,
            },
            "{transport:?}: {}",
            probe.stdout()
        );
        // The service kept working: its log lines carry X-Ray trace ids.
        let trace_id = probe.log("inside child")["trace_id"].clone();
        assert!(trace_id.as_str().unwrap().starts_with("1-"), "{trace_id}");
    }
}

// ---------------------------------------------------------------------------------------------
// gzip

fn gzip_run(transport: Transport) {
    let receiver = OtlpReceiver::start_blocking();
    let mut env = export_env(&receiver, transport);
    env.push(("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip".to_owned()));
    let probe = run_probe("spans", &env);
    assert_spans_scenario(&receiver, transport);
    assert_all_exported(&probe, 3);
    let requests = receiver.export_requests();
    assert!(!requests.is_empty());
    for request in &requests {
        assert_eq!(
            request.compression.as_deref(),
            Some("gzip"),
            "{transport:?}: {request:#?}"
        );
    }
}

#[test]
fn grpc_exports_are_gzip_compressed() {
    gzip_run(Transport::Grpc);
}

#[test]
fn http_protobuf_exports_are_gzip_compressed() {
    gzip_run(Transport::Http);
}

// ---------------------------------------------------------------------------------------------
// Collectors that are late, failing or gone

/// The `steady` scenario for `duration_ms` (a span every 50 ms, a batch every 200 ms) against
/// `receiver`, with a generous shutdown timeout.
fn steady(receiver: &OtlpReceiver, transport: Transport, duration_ms: u64) -> Probe {
    let mut env = export_env(receiver, transport);
    env.push(("PROBE_DURATION_MS", duration_ms.to_string()));
    env.push(("OTEL_BSP_SCHEDULE_DELAY", "200".to_owned()));
    env.push(("PROBE_SHUTDOWN_TIMEOUT_MS", "15000".to_owned()));
    run_probe("steady", &env)
}

/// The collector starts 3 s after the service (connections refused until then): every span
/// ended meanwhile is retried and arrives, each exactly once.
fn late_collector_run(transport: Transport) {
    let receiver = OtlpReceiver::start_late_blocking(Duration::from_secs(3));
    let probe = steady(&receiver, transport, 5000);
    assert_steady_arrived_once(&receiver, &probe);
    assert!(
        receiver
            .export_requests()
            .iter()
            .all(|r| r.protocol == transport.otlp_protocol())
    );
}

#[test]
fn grpc_a_collector_starting_3s_late_loses_no_span() {
    late_collector_run(Transport::Grpc);
}

#[test]
fn http_a_collector_starting_3s_late_loses_no_span() {
    late_collector_run(Transport::Http);
}

/// All at once, as a collector behind TLS that comes up after the service: gzip over TLS to a
/// receiver that starts 3 s late loses nothing.
fn tls_gzip_late_run(transport: Transport) {
    let receiver = OtlpReceiver::builder()
        .tls()
        .start_after(Duration::from_secs(3))
        .start_blocking();
    let mut env = export_env(&receiver, transport);
    assert!(env[1].1.starts_with("https://"), "{env:?}");
    env.push(("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip".to_owned()));
    env.push(("PROBE_DURATION_MS", "5000".to_owned()));
    env.push(("OTEL_BSP_SCHEDULE_DELAY", "200".to_owned()));
    env.push(("PROBE_SHUTDOWN_TIMEOUT_MS", "15000".to_owned()));
    let probe = run_probe("steady", &env);
    assert_steady_arrived_once(&receiver, &probe);
    let requests = receiver.export_requests();
    assert!(!requests.is_empty());
    for request in &requests {
        assert_eq!(request.protocol, transport.otlp_protocol());
        assert_eq!(request.compression.as_deref(), Some("gzip"), "{request:#?}");
    }
}

#[test]
fn grpc_tls_gzip_to_a_late_collector_loses_nothing() {
    tls_gzip_late_run(Transport::Grpc);
}

#[test]
fn http_protobuf_tls_gzip_to_a_late_collector_loses_nothing() {
    tls_gzip_late_run(Transport::Http);
}

/// The collector answers UNAVAILABLE (gRPC) / 503 (HTTP) twice, then accepts: the refused
/// batches are retried and every span arrives exactly once.
fn failing_first_run(transport: Transport) {
    let receiver = OtlpReceiver::start_blocking_with(ReceiverBehavior::FailFirst(2));
    let probe = steady(&receiver, transport, 1500);
    assert_steady_arrived_once(&receiver, &probe);
    let requests = receiver.export_requests();
    assert!(requests.len() >= 3, "{requests:#?}");
}

#[test]
fn grpc_unavailable_twice_then_ok_delivers_every_span_once() {
    failing_first_run(Transport::Grpc);
}

#[test]
fn http_503_twice_then_ok_delivers_every_span_once() {
    failing_first_run(Transport::Http);
}

/// No collector for the whole run: the probe exits normally within its shutdown timeout
/// (plus slack), and every span it ended is counted failed or dropped.
#[test]
fn a_collector_down_for_the_whole_run_does_not_hang_the_service() {
    for transport in Transport::BOTH {
        let env = vec![
            (
                "OTEL_EXPORTER_OTLP_PROTOCOL",
                transport.protocol().to_owned(),
            ),
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                OtlpReceiver::unused_endpoint(),
            ),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "1000".to_owned()),
            ("OTEL_BSP_SCHEDULE_DELAY", "200".to_owned()),
            ("PROBE_DURATION_MS", "1000".to_owned()),
            ("PROBE_SHUTDOWN_TIMEOUT_MS", "3000".to_owned()),
        ];
        let probe = run_probe("steady", &env);
        let result = probe.result();
        assert!(
            result["shutdown_ms"].as_u64().unwrap() <= 3000 + 1500,
            "{transport:?}: {result}"
        );
        assert!(
            probe.elapsed() < Duration::from_secs(12),
            "{transport:?}: {:?}",
            probe.elapsed()
        );
        let stats = probe.stats();
        assert!(stats.spans_ended >= 10, "{transport:?}: {stats:?}");
        assert_eq!(stats.spans_exported, 0, "{transport:?}: {stats:?}");
        assert_eq!(
            stats.spans_failed + stats.spans_dropped,
            stats.spans_ended,
            "{transport:?}: {stats:?}"
        );
    }
}
