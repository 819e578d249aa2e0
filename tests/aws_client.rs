//! AWS SDK calls through `apprunner::client::AwsTracing`, against a real Secrets Manager
//! emulator (moto) speaking the AWS protocol, exported to a real OTLP receiver: the
//! `telemetry-probe` binary's `aws` scenario makes two `GetSecretValue` calls inside a SERVER
//! span, one for a secret that exists and one for a secret that does not.

use apprunner_kit_tests::{
    OtlpReceiver, Probe, SecretsEmulator, SpanKind, SpanRecord, StatusCode, grpc_env, xray,
};

const SECRET_VALUE: &str = "pa55-w0rd-never-in-a-span";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_operation_is_a_client_span_named_service_dot_operation() {
    let receiver = OtlpReceiver::start().await;
    let emulator = SecretsEmulator::start();
    emulator.create_secret("app/token", SECRET_VALUE).await;

    let mut env = grpc_env(&receiver);
    env.push(("PROBE_AWS_ENDPOINT", emulator.endpoint()));
    env.push(("PROBE_SECRET_ID", "app/token".to_owned()));
    let probe = tokio::task::spawn_blocking(move || {
        Probe::run(env!("CARGO_BIN_EXE_telemetry-probe"), "aws", &env)
    })
    .await
    .unwrap();
    let line = probe
        .stdout()
        .lines()
        .find_map(|l| l.strip_prefix("PROBE_AWS ").map(str::to_owned))
        .expect("the probe's PROBE_AWS line");
    let outcome: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(outcome["found"], true, "{line}");
    assert!(
        outcome["missing_error"]
            .as_str()
            .unwrap()
            .contains("ResourceNotFoundException"),
        "{line}"
    );

    let spans = receiver.spans();
    let request = spans
        .iter()
        .find(|s| s.name == "request")
        .expect("the request span");
    let calls: Vec<&SpanRecord> = spans
        .iter()
        .filter(|s| s.name == "SecretsManager.GetSecretValue")
        .collect();
    assert_eq!(calls.len(), 2, "{spans:#?}");
    for call in &calls {
        assert_eq!(call.kind, SpanKind::Client);
        assert_eq!(call.trace_id, request.trace_id);
        assert_eq!(
            call.parent_span_id.as_deref(),
            Some(request.span_id.as_str())
        );
        assert_eq!(call.scope_name, "apprunner");
        assert_eq!(call.attr_str("rpc.system"), Some("aws-api"));
        assert_eq!(call.attr_str("rpc.service"), Some("SecretsManager"));
        assert_eq!(call.attr_str("rpc.method"), Some("GetSecretValue"));
        assert_eq!(call.attr_str("cloud.region"), Some("us-east-1"));
        assert!(
            call.attr_str("aws.request_id")
                .is_some_and(|id| !id.is_empty()),
            "{call:?}"
        );
        // One AWS node per service on the X-Ray map.
        let made = xray::segments(call);
        assert_eq!(made.len(), 1);
        assert_eq!(made[0].name, "SecretsManager");
        assert_eq!(made[0].namespace.as_deref(), Some("aws"));
    }
    let (ok, failed): (Vec<&SpanRecord>, Vec<&SpanRecord>) = calls
        .iter()
        .partition(|s| s.status.code != StatusCode::Error);
    assert_eq!((ok.len(), failed.len()), (1, 1), "{calls:#?}");
    assert_eq!(ok[0].attr_i64("http.response.status_code"), Some(200));
    assert_eq!(ok[0].attr("error.type"), None);
    // AWS answers 400, moto 404: a client error either way.
    let status = failed[0].attr_i64("http.response.status_code").unwrap();
    assert!((400..500).contains(&status), "{status}");
    assert_eq!(
        failed[0].attr_str("error.type"),
        Some("ResourceNotFoundException")
    );

    // No payload in any span: the secret's value appears nowhere.
    for span in &spans {
        let text = format!("{:?} {:?} {:?}", span.attributes, span.events, span.status);
        assert!(
            !text.contains(SECRET_VALUE),
            "the secret in {}: {text}",
            span.name
        );
    }

    // The trace headers went out with each call, naming its CLIENT span.
    let sent: Vec<_> = emulator
        .requests()
        .into_iter()
        .filter(|r| r.target == "secretsmanager.GetSecretValue")
        .collect();
    assert_eq!(sent.len(), 2);
    for request in &sent {
        let traceparent = request.headers.get("traceparent").expect("a traceparent");
        let call = calls
            .iter()
            .find(|c| traceparent == &format!("00-{}-{}-01", c.trace_id, c.span_id))
            .unwrap_or_else(|| panic!("{traceparent} names no CLIENT span"));
        let xray_header = request
            .headers
            .get("x-amzn-trace-id")
            .expect("an X-Amzn-Trace-Id");
        let expected = xray::trace_header_prefix(&call.trace_id, &call.span_id);
        assert!(xray_header.starts_with(&expected), "{xray_header}");
    }
}
