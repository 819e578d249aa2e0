//! SigV4-signed export to X-Ray's OTLP endpoint, against real peers: a local HTTPS receiver
//! that verifies every signature with botocore, ECS container credentials that change, and the
//! ECS task metadata endpoint (`apprunner_kit_tests::XrayOtlpPeer`). The kit runs in the
//! `telemetry-probe` child process with only the environment a service on ECS gets.

use std::time::Duration;

use apprunner_kit_tests::{PEER_REGION, Probe, XrayOtlpPeer};
use serde_json::{Value, json};

const PROBE: &str = env!("CARGO_BIN_EXE_telemetry-probe");

fn probe(peer: &XrayOtlpPeer, scenario: &str, extra: &[(&'static str, String)]) -> Probe {
    let mut env = peer.ecs_env();
    env.extend(extra.iter().cloned());
    Probe::run(PROBE, scenario, &env)
}

/// The log lines saying an export failed.
fn failure_lines(probe: &Probe) -> Vec<Value> {
    probe
        .logs()
        .into_iter()
        .filter(|l| l.to_string().contains("span export failed"))
        .collect()
}

#[test]
fn spans_arrive_intact_signed_for_xray_in_the_region_with_the_ecs_resource() {
    let peer = XrayOtlpPeer::start(Duration::from_secs(3600));
    let probe = probe(&peer, "spans", &[]);
    let stats = probe.stats();
    assert_eq!(
        stats.spans_exported,
        3,
        "{}\n{}",
        probe.stdout(),
        peer.log()
    );
    assert_eq!(stats.spans_failed, 0);

    let requests = peer.requests();
    assert!(!requests.is_empty());
    for r in &requests {
        assert_eq!(r["status"], 200, "refused: {r}");
        assert_eq!(r["service"], "xray", "{r}");
        assert_eq!(r["region"], PEER_REGION, "{r}");
        assert_eq!(
            r["content_encoding"], "gzip",
            "the signed body is the gzipped one"
        );
        let signed: Vec<&str> = r["signed_headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h.as_str().unwrap())
            .collect();
        for header in ["host", "x-amz-date", "x-amz-security-token", "content-type"] {
            assert!(signed.contains(&header), "{header} not signed: {signed:?}");
        }
    }
    let spans: Vec<&Value> = requests
        .iter()
        .flat_map(|r| r["spans"].as_array().unwrap())
        .collect();
    let names: Vec<&str> = spans.iter().map(|s| s["name"].as_str().unwrap()).collect();
    for name in ["root", "child", "control"] {
        assert_eq!(names.iter().filter(|n| **n == name).count(), 1, "{names:?}");
    }
    let child = spans.iter().find(|s| s["name"] == "child").unwrap();
    let root = spans.iter().find(|s| s["name"] == "root").unwrap();
    assert_eq!(child["parent_span_id"], root["span_id"]);
    assert_eq!(child["trace_id"], root["trace_id"]);
    assert_eq!(child["attributes"]["answer"], "42");

    let resource = &root["resource"];
    let expected = json!({
        "cloud.provider": "aws",
        "cloud.platform": "aws_ecs",
        "cloud.region": "eu-west-1",
        "cloud.account.id": "111122223333",
        "cloud.availability_zone": "eu-west-1a",
        "aws.ecs.task.arn": "arn:aws:ecs:eu-west-1:111122223333:task/users/cd189a933e5849daa93386466019ab50",
        "aws.ecs.cluster.arn": "arn:aws:ecs:eu-west-1:111122223333:cluster/users",
        "aws.ecs.launchtype": "fargate",
        "aws.ecs.task.family": "users-api",
        "aws.ecs.task.revision": "7",
        "container.name": "users-api",
        "aws.log.group.names": ["/ecs/users-api"],
        "aws.log.stream.names": ["ecs/users-api/cd189a933e5849daa93386466019ab50"],
        "aws.log.group.arns": ["arn:aws:logs:eu-west-1:111122223333:log-group:/ecs/users-api"],
        "service.name": "telemetry-probe",
    });
    for (key, value) in expected.as_object().unwrap() {
        assert_eq!(&resource[key], value, "{key} in {resource}");
    }
    assert!(failure_lines(&probe).is_empty(), "{}", probe.stdout());
    let secret_free = probe.stdout();
    let records = peer.records();
    let key = records["creds_calls"][0]["key"].as_str().unwrap();
    assert!(
        !secret_free.contains(key),
        "credentials never reach the logs: {secret_free}"
    );
}

/// Runs a burst of 40 spans in batches of 5 with the peer in `mode`, and returns the probe.
fn refused(mode: &str) -> (XrayOtlpPeer, Probe) {
    let peer = XrayOtlpPeer::start(Duration::from_secs(3600));
    peer.set(json!({ "mode": mode }));
    let probe = probe(
        &peer,
        "burst",
        &[
            ("PROBE_COUNT", "40".to_owned()),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "5".to_owned()),
        ],
    );
    (peer, probe)
}

fn assert_refused_once(mode: &str, status: u64, expected: &str) {
    let (peer, probe) = refused(mode);
    let requests = peer.requests();
    assert!(
        requests.len() >= 2,
        "several batches were sent: {requests:?}"
    );
    assert!(
        requests.iter().all(|r| r["status"] == status),
        "{requests:?}"
    );
    let stats = probe.stats();
    assert_eq!(stats.spans_exported, 0);
    assert!(stats.spans_failed > 0);
    let lines = failure_lines(&probe);
    assert_eq!(
        lines.len(),
        1,
        "logged once, not per batch:\n{}",
        probe.stdout()
    );
    let line = lines[0].to_string();
    assert!(line.contains(expected), "{expected:?} not in {line}");
}

#[test]
fn a_tampered_body_is_refused_with_403_and_logged_once_with_its_fix() {
    assert_refused_once("tamper", 403, "SigV4 signature does not match");
}

#[test]
fn a_wrong_secret_key_is_refused_with_403_and_logged_once_with_its_fix() {
    assert_refused_once("wrong_secret", 403, "SigV4 signature does not match");
}

#[test]
fn unknown_credentials_are_named() {
    assert_refused_once("unknown_key", 403, "AWS credentials are not valid");
}

#[test]
fn transaction_search_not_enabled_is_named_with_its_fix() {
    assert_refused_once(
        "no_transaction_search",
        400,
        "update-trace-segment-destination --destination CloudWatchLogs --region eu-west-1",
    );
}

#[test]
fn a_missing_iam_action_is_named() {
    assert_refused_once("deny", 403, "lacks the IAM action xray:PutTraceSegments");
}

#[test]
fn credentials_are_refreshed_before_expiry_and_no_export_waits_for_a_refresh() {
    // Credentials live 8 s and each answer after the first takes 2.5 s: the kit must refresh
    // ahead of expiry, in the background, while exports go on every ~200 ms.
    let peer = XrayOtlpPeer::start(Duration::from_secs(8));
    peer.set(json!({ "creds_delay": 2.5 }));
    let probe = probe(
        &peer,
        "steady",
        &[
            ("PROBE_DURATION_MS", "11000".to_owned()),
            ("OTEL_BSP_SCHEDULE_DELAY", "200".to_owned()),
        ],
    );
    let stats = probe.stats();
    assert_eq!(stats.spans_failed, 0, "{}", probe.stdout());
    assert_eq!(stats.spans_exported, stats.spans_ended);

    let records = peer.records();
    let requests = records["requests"].as_array().unwrap();
    let keys: std::collections::BTreeSet<&str> = requests
        .iter()
        .map(|r| r["access_key"].as_str().unwrap())
        .collect();
    assert!(
        keys.len() >= 2,
        "exports moved to new credentials: {keys:?}"
    );
    let creds_calls = records["creds_calls"].as_array().unwrap().len();
    assert!(
        creds_calls <= 4,
        "credentials are cached, not fetched per export ({creds_calls} calls for {} exports)",
        requests.len()
    );
    for r in requests {
        assert_eq!(r["status"], 200, "{r}");
        let at = r["received_at"].as_f64().unwrap();
        let expiry = r["key_expiration"].as_f64().unwrap();
        assert!(at < expiry, "signed with expired credentials: {r}");
    }
    let mut times: Vec<f64> = requests
        .iter()
        .map(|r| r["received_at"].as_f64().unwrap())
        .collect();
    times.sort_by(f64::total_cmp);
    let longest_gap = times.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
    assert!(
        longest_gap < 1.5,
        "an export waited on a credentials refresh (2.5 s): longest gap {longest_gap:.2} s"
    );
}
