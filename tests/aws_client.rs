//! AWS SDK calls through `apprunner::client::AwsTracing`, against a real AWS emulator (moto)
//! speaking the AWS protocols, exported to a real OTLP receiver: the `telemetry-probe`
//! binary's `aws` scenario (see `bin/telemetry_probe/aws.rs`) calls Secrets Manager, S3, SQS,
//! SNS and DynamoDB inside a SERVER span, Secrets Manager once more through a proxy that fails
//! the first attempt, and SQS once outside any span.

use std::collections::BTreeSet;

use apprunner_kit_tests::{
    AttrValue, CountingProxy, OtlpReceiver, Probe, SecretsEmulator, SpanKind, SpanRecord,
    StatusCode, grpc_env, xray,
};

const SECRET_VALUE: &str = "pa55-w0rd-never-in-a-span";
/// What the probe stores in S3, sends to SQS and SNS and writes to DynamoDB.
const PAYLOAD: &str = "payload-0f-the-user-never-in-a-span";
/// The S3 object key (it names a person: not a span attribute either).
const OBJECT_KEY: &str = "alice@example.com";

/// The probe's outcome line and the spans that reached the receiver.
struct Run {
    outcome: serde_json::Value,
    spans: Vec<SpanRecord>,
    emulator: SecretsEmulator,
    flaky: CountingProxy,
}

async fn run() -> Run {
    let receiver = OtlpReceiver::start().await;
    let emulator = SecretsEmulator::start();
    emulator.create_secret("app/token", SECRET_VALUE).await;
    let flaky = CountingProxy::start(&emulator.endpoint()).await;
    flaky.fail_next(1);

    let mut env = grpc_env(&receiver);
    env.push(("PROBE_AWS_ENDPOINT", emulator.endpoint()));
    env.push(("PROBE_FLAKY_ENDPOINT", flaky.endpoint()));
    env.push(("PROBE_SECRET_ID", "app/token".to_owned()));
    env.push(("PROBE_PAYLOAD", PAYLOAD.to_owned()));
    env.push(("OTEL_SERVICE_NAME", "aws-probe".to_owned()));
    let probe = tokio::task::spawn_blocking(move || {
        Probe::run(env!("CARGO_BIN_EXE_telemetry-probe"), "aws", &env)
    })
    .await
    .unwrap();
    let line = probe
        .stdout()
        .lines()
        .find_map(|l| l.strip_prefix("PROBE_AWS ").map(str::to_owned))
        .unwrap_or_else(|| panic!("no PROBE_AWS line:\n{}", probe.stdout()));
    Run {
        outcome: serde_json::from_str(&line).unwrap(),
        spans: receiver.spans(),
        emulator,
        flaky,
    }
}

/// The only span named `name`.
fn named<'a>(spans: &'a [SpanRecord], name: &str) -> &'a SpanRecord {
    let found: Vec<_> = spans.iter().filter(|s| s.name == name).collect();
    assert_eq!(found.len(), 1, "one {name} span: {spans:#?}");
    found[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_sqs_sns_and_dynamodb_calls_are_client_spans_with_their_services_keys() {
    let Run {
        outcome,
        spans,
        emulator,
        ..
    } = run().await;
    let request = named(&spans, "request");
    let calls: Vec<&SpanRecord> = spans
        .iter()
        .filter(|s| s.attr_str("rpc.system") == Some("aws-api"))
        .filter(|s| s.attr_str("rpc.service") != Some("SecretsManager"))
        .filter(|s| s.parent_span_id.as_deref() == Some(request.span_id.as_str()))
        .collect();
    let names: BTreeSet<&str> = calls.iter().map(|s| s.name.as_str()).collect();
    for expected in [
        "S3.CreateBucket",
        "S3.PutObject",
        "S3.GetObject",
        "SQS.CreateQueue",
        "SQS.SendMessage",
        "SQS.ReceiveMessage",
        "SNS.CreateTopic",
        "SNS.Publish",
        "DynamoDB.CreateTable",
        "DynamoDB.PutItem",
    ] {
        assert!(
            names.contains(expected),
            "{expected} missing from {names:?}"
        );
    }
    for call in &calls {
        assert_eq!(call.kind, SpanKind::Client, "{}", call.summary());
        assert_eq!(call.trace_id, request.trace_id);
        assert_ne!(call.status.code, StatusCode::Error, "{}", call.summary());
        let (service, method) = call.name.split_once('.').unwrap();
        assert_eq!(call.attr_str("rpc.service"), Some(service));
        assert_eq!(call.attr_str("rpc.method"), Some(method));
        assert_eq!(call.attr_str("cloud.region"), Some("us-east-1"));
        assert_eq!(call.attr_i64("http.response.status_code"), Some(200));
    }

    // S3: the bucket, never the key.
    for name in ["S3.CreateBucket", "S3.PutObject", "S3.GetObject"] {
        assert_eq!(
            named(&spans, name).attr_str("aws.s3.bucket"),
            Some("probe-bucket")
        );
    }
    // SQS: messaging conventions, the id SQS gave the message.
    let send = named(&spans, "SQS.SendMessage");
    assert_eq!(send.attr_str("messaging.system"), Some("aws_sqs"));
    assert_eq!(
        send.attr_str("messaging.destination.name"),
        Some("probe-jobs")
    );
    assert_eq!(send.attr_str("messaging.operation.type"), Some("send"));
    assert_eq!(
        send.attr_str("messaging.operation.name"),
        Some("SendMessage")
    );
    assert_eq!(
        send.attr_str("messaging.message.id"),
        outcome["sqs_message_id"].as_str()
    );
    let receive = named(&spans, "SQS.ReceiveMessage");
    assert_eq!(
        receive.attr_str("messaging.operation.type"),
        Some("receive")
    );
    assert_eq!(
        receive.attr_str("messaging.destination.name"),
        Some("probe-jobs")
    );
    assert_eq!(receive.attr_i64("messaging.batch.message_count"), Some(1));
    // SNS: the topic's name and ARN, the message id.
    let publish = named(&spans, "SNS.Publish");
    assert_eq!(publish.attr_str("messaging.system"), Some("aws_sns"));
    assert_eq!(
        publish.attr_str("messaging.destination.name"),
        Some("probe-topic")
    );
    assert!(
        publish.attr_str("aws.sns.topic.arn").is_some_and(|arn| arn
            .starts_with("arn:aws:sns:us-east-1:")
            && arn.ends_with(":probe-topic")),
        "{}",
        publish.summary()
    );
    assert_eq!(
        publish.attr_str("messaging.message.id"),
        outcome["sns_message_id"].as_str()
    );
    // DynamoDB: the table, as a list.
    for name in ["DynamoDB.CreateTable", "DynamoDB.PutItem"] {
        assert_eq!(
            named(&spans, name).attr("aws.dynamodb.table_names"),
            Some(&AttrValue::Array(vec![AttrValue::Str(
                "probe-users".into()
            )]))
        );
    }

    // No payload, key or secret in any span.
    for span in &spans {
        let text = format!("{:?} {:?} {:?}", span.attributes, span.events, span.status);
        for value in [PAYLOAD, OBJECT_KEY, SECRET_VALUE] {
            assert!(!text.contains(value), "{value} in {}: {text}", span.name);
        }
    }

    // One X-Ray node per service, in the `aws` namespace, not one per operation.
    let map = xray::service_map(&spans);
    assert_eq!(
        map.remotes,
        BTreeSet::from(["DynamoDB", "S3", "SNS", "SQS", "SecretsManager"].map(str::to_owned)),
        "{map:?}"
    );
    assert_eq!(
        map.services,
        BTreeSet::from(["aws-probe".to_owned()]),
        "{map:?}"
    );
    for call in &calls {
        let made = xray::segments(call);
        assert_eq!(made.len(), 1, "{}", call.summary());
        assert_eq!(made[0].namespace.as_deref(), Some("aws"));
    }

    // The headers reached the emulator: the SQS message and the SNS publication carry the
    // trace, naming their CLIENT spans.
    let requests = emulator.requests();
    let sent = requests
        .iter()
        .find(|r| r.target == "AmazonSQS.SendMessage")
        .expect("the SendMessage request");
    assert_eq!(
        sent.headers.get("traceparent"),
        Some(&format!("00-{}-{}-01", send.trace_id, send.span_id))
    );
    let put = requests
        .iter()
        .find(|r| r.method == "PUT" && r.url.contains("/probe-bucket/users/"))
        .expect("the PutObject request");
    let put_span = named(&spans, "S3.PutObject");
    assert!(
        put.headers
            .get("x-amzn-trace-id")
            .is_some_and(|h| h.starts_with(&xray::trace_header_prefix(
                &put_span.trace_id,
                &put_span.span_id
            ))),
        "{:?}",
        put.headers
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_are_events_of_one_span_and_calls_outside_a_span_are_the_services_own() {
    let Run {
        outcome,
        spans,
        flaky,
        ..
    } = run().await;
    assert_eq!(outcome["flaky_found"], true, "{outcome}");
    // Two attempts reached the proxy: the first failed (503), the SDK's retry succeeded.
    assert_eq!(flaky.get_secret_value_calls("app/token"), 2);
    let retried: Vec<&SpanRecord> = spans
        .iter()
        .filter(|s| s.name == "SecretsManager.GetSecretValue")
        .filter(|s| s.events.iter().any(|e| e.name == "retry"))
        .collect();
    assert_eq!(retried.len(), 1, "{spans:#?}");
    let retried = retried[0];
    let retries: Vec<_> = retried
        .events
        .iter()
        .filter(|e| e.name == "retry")
        .collect();
    assert_eq!(retries.len(), 1);
    assert_eq!(
        retries[0].attributes.get("aws.attempt"),
        Some(&AttrValue::I64(2))
    );
    assert_eq!(retried.attr_i64("http.response.status_code"), Some(200));
    assert_ne!(retried.status.code, StatusCode::Error);
    // One span for both attempts: no span per attempt.
    let request = named(&spans, "request");
    assert_eq!(
        retried.parent_span_id.as_deref(),
        Some(request.span_id.as_str())
    );

    // The call made outside any span starts its own trace as the service's own span.
    let list = named(&spans, "SQS.ListQueues");
    assert!(list.is_root());
    assert_eq!(list.attr_str("aws.span.kind"), Some("LOCAL_ROOT"));
    assert_eq!(list.attr_str("aws.local.service"), Some("aws-probe"));
    let map = xray::service_map([list]);
    assert_eq!(map.services, BTreeSet::from(["aws-probe".to_owned()]));
    assert_eq!(map.remotes, BTreeSet::from(["SQS".to_owned()]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_operation_is_a_client_span_named_service_dot_operation() {
    let Run {
        outcome,
        spans,
        emulator,
        ..
    } = run().await;
    assert_eq!(outcome["found"], true, "{outcome}");
    assert!(
        outcome["missing_error"]
            .as_str()
            .unwrap()
            .contains("ResourceNotFoundException"),
        "{outcome}"
    );

    let request = spans
        .iter()
        .find(|s| s.name == "request")
        .expect("the request span");
    let calls: Vec<&SpanRecord> = spans
        .iter()
        .filter(|s| s.name == "SecretsManager.GetSecretValue")
        .filter(|s| s.events.is_empty())
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
    // Two direct calls, and the retried one's second attempt through the proxy.
    assert_eq!(sent.len(), 3);
    let every_call: Vec<&SpanRecord> = spans
        .iter()
        .filter(|s| s.name == "SecretsManager.GetSecretValue")
        .collect();
    for request in &sent {
        let traceparent = request.headers.get("traceparent").expect("a traceparent");
        let call = every_call
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
