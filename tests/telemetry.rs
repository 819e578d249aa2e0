//! `apprunner::telemetry` against a real OTLP receiver.
//!
//! Each scenario runs the `telemetry-probe` binary as a child process with its own
//! environment (the `OTEL_*` variables under test), so no test shares global state.

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use apprunner_kit_tests::{
    OtlpReceiver, Probe, ReceiverBehavior, SpanKind, block_on, grpc_env, one,
};

const WAIT: Duration = Duration::from_secs(20);

/// Runs the probe binary of this package.
fn run_probe(scenario: &str, env: &[(&str, String)]) -> Probe {
    Probe::run(env!("CARGO_BIN_EXE_telemetry-probe"), scenario, env)
}

#[test]
fn spans_arrive_with_xray_ids_parent_links_and_resource() {
    let receiver = OtlpReceiver::start_blocking();
    let mut env = grpc_env(&receiver);
    env.push((
        "OTEL_RESOURCE_ATTRIBUTES",
        "cloud.platform=aws_app_runner,deployment.environment.name=test".into(),
    ));
    env.push(("AWS_REGION", "eu-west-1".into()));
    let probe = run_probe("spans", &env);
    let spans = block_on(receiver.wait_for_spans(3, WAIT));
    assert_eq!(probe.result()["ok"], true, "{}", probe.stdout());

    let root = one(&spans, "root");
    let child = one(&spans, "child");
    let control = one(&spans, "control");
    assert_eq!(root.kind, SpanKind::Server);
    assert_eq!(child.kind, SpanKind::Internal);
    assert!(root.parent_span_id.is_none(), "{root:#?}");
    assert_eq!(child.parent_span_id.as_deref(), Some(root.span_id.as_str()));
    assert_eq!(child.trace_id, root.trace_id);
    assert_ne!(control.trace_id, root.trace_id);
    assert_eq!(child.attr_i64("answer"), Some(42));

    // X-Ray ids: the first 8 hex digits are the epoch seconds.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    for span in [root, control] {
        let epoch = i64::from_str_radix(&span.trace_id[..8], 16).unwrap();
        assert!(
            (now - epoch).abs() < 60,
            "trace id {} is not X-Ray",
            span.trace_id
        );
    }

    for span in &spans {
        assert_eq!(span.resource_str("service.name"), Some("telemetry-probe"));
        assert_eq!(span.resource_str("service.version"), Some("9.9.9"));
        assert_eq!(span.resource_str("cloud.platform"), Some("aws_app_runner"));
        assert_eq!(span.resource_str("cloud.provider"), Some("aws"));
        assert_eq!(span.resource_str("cloud.region"), Some("eu-west-1"));
        assert_eq!(
            span.resource_str("deployment.environment.name"),
            Some("test")
        );
        assert!(span.resource_str("service.instance.id").is_some());
        assert_eq!(span.scope_name, "apprunner");
    }
}

#[test]
fn json_logs_carry_the_xray_trace_id_and_span_id() {
    let receiver = OtlpReceiver::start_blocking();
    let probe = run_probe("spans", &grpc_env(&receiver));
    let spans = block_on(receiver.wait_for_spans(3, WAIT));
    let child = one(&spans, "child");

    let line = probe.log("inside child");
    assert_eq!(line["trace_id"], child.xray_trace_id());
    assert!(line["trace_id"].as_str().unwrap().starts_with("1-"));
    assert_eq!(line["span_id"], child.span_id);
    assert_eq!(line["span"], "child");
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["user_id"], 7);
    let root_line = probe.log("inside root");
    assert_eq!(root_line["span_id"], one(&spans, "root").span_id);
    // Every line parsed as JSON (checked by `logs()`), including ones outside spans.
    assert!(probe.logs().len() >= 3);
}

#[test]
fn an_app_runner_trace_header_is_continued() {
    let receiver = OtlpReceiver::start_blocking();
    let mut env = grpc_env(&receiver);
    env.push((
        "PROBE_TRACE_HEADER",
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1".into(),
    ));
    run_probe("spans", &env);
    let spans = block_on(receiver.wait_for_spans(3, WAIT));
    let root = one(&spans, "root");
    assert_eq!(root.trace_id, "5759e988bd862e3fe1be46a994272793");
    assert_eq!(root.parent_span_id.as_deref(), Some("53995c3f42cd8ad8"));
    assert_eq!(root.xray_trace_id(), "1-5759e988-bd862e3fe1be46a994272793");
    assert_eq!(one(&spans, "child").trace_id, root.trace_id);
}

#[test]
fn a_header_without_sampled_is_not_dropped() {
    let receiver = OtlpReceiver::start_blocking();
    let mut env = grpc_env(&receiver);
    env.push((
        "PROBE_TRACE_HEADER",
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8".into(),
    ));
    run_probe("spans", &env);
    let spans = block_on(receiver.wait_for_spans(3, WAIT));
    assert_eq!(
        one(&spans, "root").trace_id,
        "5759e988bd862e3fe1be46a994272793"
    );
}

#[test]
fn sampled_0_is_honoured() {
    let receiver = OtlpReceiver::start_blocking();
    let mut env = grpc_env(&receiver);
    env.push((
        "PROBE_TRACE_HEADER",
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0".into(),
    ));
    let probe = run_probe("spans", &env);
    // The control span proves the exporter worked; root and child were not sampled.
    let spans = block_on(receiver.wait_for_spans(1, WAIT));
    assert_eq!(probe.result()["ok"], true);
    let names: Vec<_> = receiver.spans().iter().map(|s| s.name.clone()).collect();
    assert_eq!(names, vec!["control"], "{spans:#?}");
    // The log line inside the unsampled request still names its trace.
    assert_eq!(
        probe.log("inside child")["trace_id"],
        "1-5759e988-bd862e3fe1be46a994272793"
    );
}

#[test]
fn a_malformed_header_starts_a_fresh_trace() {
    let receiver = OtlpReceiver::start_blocking();
    let mut env = grpc_env(&receiver);
    env.push((
        "PROBE_TRACE_HEADER",
        "Root=1-zzzz;Parent=;Sampled=yes;;=".into(),
    ));
    run_probe("spans", &env);
    let spans = block_on(receiver.wait_for_spans(3, WAIT));
    let root = one(&spans, "root");
    assert!(root.parent_span_id.is_none());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now - i64::from_str_radix(&root.trace_id[..8], 16).unwrap()).abs() < 60);
}

#[test]
fn otel_service_name_and_sampler_variables_apply() {
    let receiver = OtlpReceiver::start_blocking();
    let mut env = grpc_env(&receiver);
    env.push(("OTEL_SERVICE_NAME", "from-env".into()));
    run_probe("spans", &env);
    let spans = block_on(receiver.wait_for_spans(3, WAIT));
    assert!(
        spans
            .iter()
            .all(|s| s.resource_str("service.name") == Some("from-env"))
    );

    let receiver = OtlpReceiver::start_blocking();
    let mut env = grpc_env(&receiver);
    env.push(("OTEL_TRACES_SAMPLER", "always_off".into()));
    let probe = run_probe("spans", &env);
    assert_eq!(probe.result()["ok"], true);
    // Shutdown has flushed everything the process had: nothing was sampled.
    assert!(receiver.spans().is_empty(), "{:#?}", receiver.spans());
}

#[test]
fn otel_sdk_disabled_exports_nothing_but_logs_keep_working() {
    let receiver = OtlpReceiver::start_blocking();
    let mut env = grpc_env(&receiver);
    env.push(("OTEL_SDK_DISABLED", "true".into()));
    let probe = run_probe("spans", &env);
    assert_eq!(probe.result()["ok"], true);
    assert!(receiver.spans().is_empty());
    assert!(receiver.export_requests().is_empty());
    assert_eq!(probe.log("inside child")["message"], "inside child");
}

#[test]
fn http_protobuf_and_headers_variables_apply() {
    let receiver = OtlpReceiver::start_blocking();
    let env = vec![
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".to_owned()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.http_endpoint()),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "x-team=kit,x-note=a%20b".to_owned(),
        ),
    ];
    run_probe("spans", &env);
    let spans = block_on(receiver.wait_for_spans(3, WAIT));
    assert_eq!(
        one(&spans, "child").parent_span_id.as_deref(),
        Some(one(&spans, "root").span_id.as_str())
    );
    let requests = receiver.export_requests();
    assert!(!requests.is_empty());
    for r in &requests {
        assert_eq!(r.protocol, apprunner_kit_tests::OtlpProtocol::HttpProtobuf);
        assert_eq!(r.header("x-team"), Some("kit"));
        assert_eq!(r.header("x-note"), Some("a b"));
    }

    let receiver = OtlpReceiver::start_blocking();
    let mut env = grpc_env(&receiver);
    env.push((
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        "authorization=Bearer%20t0k".into(),
    ));
    run_probe("spans", &env);
    block_on(receiver.wait_for_spans(3, WAIT));
    for r in receiver.export_requests() {
        assert_eq!(r.protocol, apprunner_kit_tests::OtlpProtocol::Grpc);
        assert_eq!(r.header("authorization"), Some("Bearer t0k"));
    }
}

#[test]
fn otel_propagators_selects_the_header_format() {
    let receiver = OtlpReceiver::start_blocking();
    let mut env = grpc_env(&receiver);
    env.push(("OTEL_PROPAGATORS", "tracecontext".into()));
    env.push((
        "PROBE_TRACE_HEADER",
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1".into(),
    ));
    run_probe("spans", &env);
    let spans = block_on(receiver.wait_for_spans(3, WAIT));
    // With only W3C propagation the X-Ray header is ignored: a fresh trace.
    assert_ne!(
        one(&spans, "root").trace_id,
        "5759e988bd862e3fe1be46a994272793"
    );
}

#[test]
fn invalid_variables_are_named_in_the_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_telemetry-probe"))
        .env("OTEL_TRACES_EXPORTER", "zipkin")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("OTEL_TRACES_EXPORTER"), "{stderr}");
    assert!(stderr.contains("zipkin"), "{stderr}");
}

#[test]
fn spans_ended_right_before_shutdown_all_arrive() {
    let receiver = OtlpReceiver::start_blocking();
    // A one-minute batch timer: only the shutdown flush can deliver these spans.
    let probe = burst(&receiver, 1500, &[("OTEL_BSP_MAX_QUEUE_SIZE", "4096")]);
    let result = probe.result();
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(result["exported"], 1500, "{result}");
    assert_eq!(result["dropped"], 0, "{result}");
    assert_each_burst_span_arrived_once(&receiver, 1500);
}

/// The probe's `burst` scenario (`count` spans ended right before shutdown) exporting to
/// `receiver`, with a one-minute batch timer and the batch settings `bsp`.
fn burst(receiver: &OtlpReceiver, count: usize, bsp: &[(&'static str, &str)]) -> Probe {
    let mut env = grpc_env(receiver);
    env.push(("OTEL_BSP_SCHEDULE_DELAY", "60000".into()));
    env.extend(bsp.iter().map(|(key, value)| (*key, (*value).to_owned())));
    env.push(("PROBE_COUNT", count.to_string()));
    run_probe("burst", &env)
}

/// Every span of a `burst` of `count` arrived, each exactly once.
fn assert_each_burst_span_arrived_once(receiver: &OtlpReceiver, count: i64) {
    let spans = receiver.spans_named("burst");
    assert_eq!(spans.len() as i64, count);
    let mut seen: Vec<i64> = spans.iter().map(|s| s.attr_i64("i").unwrap()).collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..count).collect::<Vec<_>>());
}

#[test]
fn the_default_queue_holds_8192_spans() {
    // No export before shutdown (schedule delay 60 s, batches as large as the queue): a burst
    // of 6000 fits the kit's default queue of 8192; the SDK's 2048 cannot hold it.
    let receiver = OtlpReceiver::start_blocking();
    let probe = burst(
        &receiver,
        6000,
        &[("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "8192")],
    );
    let result = probe.result();
    assert_eq!(result["dropped"], 0, "{result}");
    assert_eq!(result["exported"], 6000, "{result}");
    assert_each_burst_span_arrived_once(&receiver, 6000);
}

#[test]
fn a_full_queue_drops_and_counts_spans() {
    let receiver = OtlpReceiver::start_blocking();
    let probe = burst(
        &receiver,
        500,
        &[
            ("OTEL_BSP_MAX_QUEUE_SIZE", "64"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "1000"),
        ],
    );
    let result = probe.result();
    let exported = result["exported"].as_u64().unwrap();
    let dropped = result["dropped"].as_u64().unwrap();
    assert_eq!(exported + dropped, 500, "{result}");
    assert!(dropped > 0, "{result}");
    assert_eq!(receiver.spans_named("burst").len() as u64, exported);
    let warned = probe.logs().iter().any(|l| {
        l["message"] == "telemetry shut down with spans lost" && l["spans_dropped"] == dropped
    });
    assert!(warned, "{}", probe.stdout());
}

#[test]
fn exports_are_cut_at_the_max_export_batch_size() {
    let receiver = OtlpReceiver::start_blocking();
    let probe = burst(
        &receiver,
        500,
        &[
            ("OTEL_BSP_MAX_QUEUE_SIZE", "1000"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "64"),
        ],
    );
    let result = probe.result();
    assert_eq!(result["exported"].as_u64(), Some(500), "{result}");
    assert_eq!(result["dropped"].as_u64(), Some(0), "{result}");
    let sizes: Vec<usize> = receiver
        .export_requests()
        .iter()
        .map(|request| request.span_count)
        .filter(|&count| count > 0)
        .collect();
    assert_eq!(sizes.iter().sum::<usize>(), 500, "{sizes:?}");
    assert!(sizes.iter().all(|&count| count <= 64), "{sizes:?}");
    assert!(
        sizes.len() >= 8,
        "500 spans need at least 8 requests of 64: {sizes:?}"
    );
    assert_each_burst_span_arrived_once(&receiver, 500);
}

#[test]
fn without_a_collector_the_process_works_and_shutdown_is_bounded() {
    let mut env = vec![
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            OtlpReceiver::unused_endpoint(),
        ),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "500".to_owned()),
        ("PROBE_SHUTDOWN_TIMEOUT_MS", "2000".to_owned()),
    ];
    let started = std::time::Instant::now();
    let probe = run_probe("spans", &env);
    let elapsed = started.elapsed();
    // The service kept working: its log lines were written with trace ids.
    assert!(
        probe.log("inside child")["trace_id"]
            .as_str()
            .unwrap()
            .starts_with("1-")
    );
    let result = probe.result();
    assert!(
        result["shutdown_ms"].as_u64().unwrap() <= 2000 + 1500,
        "{result}"
    );
    assert!(elapsed < Duration::from_secs(15), "{elapsed:?}");
    // The export failure is logged once, not once per batch.
    let failures = probe
        .logs()
        .iter()
        .filter(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("span export failed"))
        })
        .count();
    assert!(failures <= 1, "{}", probe.stdout());
    // ... and nothing else complains (the SDK's own per-batch errors are filtered out).
    let other_warnings = probe
        .logs()
        .iter()
        .filter(|l| l["level"] == "WARN" || l["level"] == "ERROR")
        .filter(|l| {
            let m = l["message"].as_str().unwrap_or_default();
            !m.starts_with("span export failed") && m != "telemetry shut down with spans lost"
        })
        .count();
    assert_eq!(other_warnings, 0, "{}", probe.stdout());

    // A collector that accepts connections but never answers in time.
    let slow = OtlpReceiver::start_blocking_with(ReceiverBehavior::Delay(Duration::from_secs(30)));
    env[0].1 = slow.grpc_endpoint();
    let probe = run_probe("spans", &env);
    let result = probe.result();
    assert!(
        result["shutdown_ms"].as_u64().unwrap() <= 2000 + 1500,
        "{result}"
    );
}

#[test]
fn console_exporter_prints_readable_spans() {
    let output = Command::new(env!("CARGO_BIN_EXE_telemetry-probe"))
        .env("OTEL_TRACES_EXPORTER", "console")
        .env("APPRUNNER_LOG_FORMAT", "text")
        .output()
        .unwrap();
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line = stderr
        .lines()
        .find(|l| l.contains(" child "))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(line.contains("trace=1-"), "{line}");
    assert!(line.contains("answer=42"), "{line}");
    // Text logs on stdout, not JSON.
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("inside child") && !stdout.contains("\"message\""),
        "{stdout}"
    );
}

#[test]
fn span_limits_and_the_value_length_limit_apply_to_what_arrives() {
    let receiver = OtlpReceiver::start_blocking();
    let mut env = grpc_env(&receiver);
    env.push(("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "2".into()));
    env.push(("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "3".into()));
    run_probe("attributes", &env);
    let spans = block_on(receiver.wait_for_spans(1, WAIT));
    let wide = one(&spans, "wide");
    assert_eq!(wide.attributes.len(), 2, "{wide:#?}");
    for value in wide.attributes.values() {
        let value = value.as_str().expect("string attributes");
        assert_eq!(value.chars().count(), 3, "{wide:#?}");
    }
    let event = wide.event("wide event").expect("the event");
    assert_eq!(event.attr_str("note"), Some("ééé"), "{event:#?}");

    // Without limits, all four arrive whole.
    let receiver = OtlpReceiver::start_blocking();
    run_probe("attributes", &grpc_env(&receiver));
    let spans = block_on(receiver.wait_for_spans(1, WAIT));
    let wide = one(&spans, "wide");
    for key in ["a", "b", "c", "d"] {
        assert_eq!(wide.attr_str(key).map(str::len), Some(8), "{wide:#?}");
    }
}

#[test]
fn the_bsp_export_timeout_bounds_an_export() {
    // A collector that never answers in time: each export gives up after
    // OTEL_BSP_EXPORT_TIMEOUT although the OTLP timeout would allow 20 s.
    let slow = OtlpReceiver::start_blocking_with(ReceiverBehavior::Delay(Duration::from_secs(30)));
    let mut env = grpc_env(&slow);
    env.push(("OTEL_EXPORTER_OTLP_TIMEOUT", "20000".into()));
    env.push(("OTEL_BSP_EXPORT_TIMEOUT", "300".into()));
    env.push(("PROBE_SHUTDOWN_TIMEOUT_MS", "10000".into()));
    let probe = run_probe("spans", &env);
    let result = probe.result();
    assert_eq!(result["ok"], true, "{result}");
    assert!(
        result["shutdown_ms"].as_u64().unwrap() < 3000,
        "the export was cut at 300 ms: {result}"
    );
    assert_eq!(result["exported"], 0, "{result}");
}
