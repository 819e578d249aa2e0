//! X-Ray centralized sampling (`OTEL_TRACES_SAMPLER=xray`) against a peer answering
//! `GetSamplingRules` and `GetSamplingTargets` (`support/xray_sampling_peer.py`), which holds
//! every request the kit sends and every answer it gives to botocore's X-Ray model.
//!
//! Decisions are real: spans started with the tracer of the provider `init` builds, their
//! sampled flag read back. Each test has its own provider and peer, and never reads the global
//! provider, so the tests run side by side.
//!
//! One test runs a real service (`http-test-server`, a child process) taking real HTTP
//! requests, with the X-Ray API's SigV4 signing checked by the peer, and counts the spans an
//! OTLP receiver gets.
//!
//! Tolerances: a fixed rate is a binomial draw per trace id (random), so a count of sampled
//! spans is checked against its expectation within 4.5 standard deviations (a false failure
//! about once in 150,000 runs); what the reservoir must take (the first N per second) is
//! checked exactly, allowing only for decisions that straddled a second boundary.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use apprunner::telemetry::{TelemetryConfig, TelemetryGuard};
use apprunner_kit_tests::{OtlpReceiver, SamplingPeer, SpanKind as Kind, free_port};
use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::{Span as _, SpanKind, Tracer as _};
use opentelemetry::{Context, KeyValue};
use serde_json::{Value, json};

/// A version 1 sampling rule as the API returns it.
fn rule(name: &str, priority: u32, method: &str, path: &str, reservoir: u32, rate: f64) -> Value {
    json!({
        "RuleName": name, "Priority": priority, "FixedRate": rate, "ReservoirSize": reservoir,
        "ServiceName": "*", "ServiceType": "*", "Host": "*", "HTTPMethod": method,
        "URLPath": path, "ResourceARN": "*", "Version": 1, "Attributes": {},
    })
}

/// X-Ray's own default rule: priority 10000, 1 per second, then 5 %.
fn default_rule() -> Value {
    rule("Default", 10000, "*", "*", 1, 0.05)
}

/// Telemetry sampling with X-Ray rules from `arg`'s endpoint; spans are not exported (the
/// decision is what is tested).
fn init(arg: &str) -> TelemetryGuard {
    let vars: HashMap<&str, String> = HashMap::from([
        ("OTEL_TRACES_SAMPLER", "xray".to_owned()),
        ("OTEL_TRACES_SAMPLER_ARG", arg.to_owned()),
        ("OTEL_TRACES_EXPORTER", "none".to_owned()),
        ("OTEL_SERVICE_NAME", "orders-api".to_owned()),
    ]);
    TelemetryConfig::from_lookup(|k| vars.get(k).cloned())
        .expect("config")
        .install_subscriber(false)
        .init()
        .expect("init")
}

/// One decision: the epoch seconds just before and after it, and whether the span is sampled.
#[derive(Debug, Clone, Copy)]
struct Decision {
    before: u64,
    after: u64,
    sampled: bool,
}

fn epoch_second() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// Starts `n` SERVER spans for `method path` (with `parent`, or as roots), `pause` apart.
fn drive(
    telemetry: &TelemetryGuard,
    n: usize,
    method: &str,
    path: &str,
    parent: Option<&Context>,
    pause: Duration,
) -> Vec<Decision> {
    let tracer = telemetry.tracer();
    (0..n)
        .map(|_| {
            let builder = tracer
                .span_builder(format!("{method} {path}"))
                .with_kind(SpanKind::Server)
                .with_attributes([
                    KeyValue::new("http.request.method", method.to_owned()),
                    KeyValue::new("url.path", path.to_owned()),
                    KeyValue::new("server.address", "orders.example.com"),
                ]);
            let before = epoch_second();
            let mut span = match parent {
                Some(cx) => builder.start_with_context(&tracer, cx),
                None => builder.start(&tracer),
            };
            let after = epoch_second();
            let sampled = span.span_context().is_sampled();
            span.end();
            if !pause.is_zero() {
                std::thread::sleep(pause);
            }
            Decision {
                before,
                after,
                sampled,
            }
        })
        .collect()
}

fn sampled(decisions: &[Decision]) -> usize {
    decisions.iter().filter(|d| d.sampled).count()
}

/// Checks decisions against "the first `quota` of each second, then `rate`": exactly for the
/// reservoir (the first `quota` decisions of each second are all sampled), within 4.5
/// standard deviations for the rate. Returns the expected count.
fn assert_reservoir_then_rate(what: &str, decisions: &[Decision], quota: usize, rate: f64) -> f64 {
    let straddling = decisions.iter().filter(|d| d.before != d.after).count();
    let mut per_second: BTreeMap<u64, Vec<bool>> = BTreeMap::new();
    for d in decisions.iter().filter(|d| d.before == d.after) {
        per_second.entry(d.before).or_default().push(d.sampled);
    }
    let (mut expected, mut variance) = (0.0, 0.0);
    for (second, list) in &per_second {
        let first = list.len().min(quota);
        let missed = list[..first].iter().filter(|s| !**s).count();
        assert!(
            missed <= straddling,
            "{what}: in second {second}, {missed} of the first {first} decisions were not \
             sampled although the reservoir takes {quota} per second ({straddling} straddled \
             a second)"
        );
        let rest = (list.len() - first) as f64;
        expected += first as f64 + rate * rest;
        variance += rest * rate * (1.0 - rate);
    }
    expected += straddling as f64 * rate;
    let tolerance = 4.5 * variance.sqrt() + (straddling * quota.max(1)) as f64 + 1.0;
    let got = sampled(decisions) as f64;
    assert!(
        (got - expected).abs() <= tolerance,
        "{what}: {got} of {} sampled, expected {expected:.1} ± {tolerance:.1} ({} seconds, \
         reservoir {quota}/s, then {rate})",
        decisions.len(),
        per_second.len()
    );
    expected
}

/// The statistics documents of every `GetSamplingTargets` call, summed per rule:
/// (RequestCount, SampledCount, BorrowCount).
fn reported(peer: &SamplingPeer) -> BTreeMap<String, (u64, u64, u64)> {
    let mut sums: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    for call in peer.targets_calls() {
        for doc in call["params"]["SamplingStatisticsDocuments"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let n = |k: &str| doc[k].as_u64().unwrap_or(0);
            let e = sums
                .entry(doc["RuleName"].as_str().unwrap().to_owned())
                .or_default();
            e.0 += n("RequestCount");
            e.1 += n("SampledCount");
            e.2 += n("BorrowCount");
        }
    }
    sums
}

fn now_f64() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

/// Waits until the peer has answered `n` more `what` calls than `seen`, so that the answer
/// to at least one call started after now has been applied.
fn after_calls(peer: &SamplingPeer, what: &'static str, more: usize) {
    let count = |r: &Value| r[what].as_array().map_or(0, Vec::len);
    let seen = count(&peer.records());
    peer.wait_for(what, Duration::from_secs(20), |r| count(r) >= seen + more);
}

/// Waits until root spans for `GET /x` are all sampled (a rule of rate 1 applies).
fn wait_until_all_sampled(telemetry: &TelemetryGuard, timeout: Duration) {
    let deadline = std::time::Instant::now() + timeout;
    while sampled(&drive(telemetry, 20, "GET", "/x", None, Duration::ZERO)) < 20 {
        assert!(
            std::time::Instant::now() < deadline,
            "the rules never applied within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn assert_model_conformant(peer: &SamplingPeer) {
    let violations = peer.violations();
    assert!(
        violations.is_empty(),
        "requests or answers outside botocore's X-Ray model: {violations:#?}"
    );
}

#[test]
#[allow(clippy::print_stdout)] // the figures, for `--nocapture` runs
fn decisions_over_2000_requests_follow_the_rules_and_statistics_match_them() {
    let peer = SamplingPeer::start();
    peer.set(json!({
        "rules": [
            rule("api-get", 10, "GET", "/api/*", 10, 0.10),
            rule("health", 1, "*", "/health", 0, 0.0),
            rule("orders-post", 20, "POST", "/orders*", 1, 0.0),
            default_rule(),
        ],
        // X-Ray's answer for api-get: 5 per second for this instance, and a rate of its own
        // (the target's rate replaces the rule's). orders-post gets no target: it keeps
        // borrowing one per second.
        "targets": {
            "api-get": {"FixedRate": 0.2, "ReservoirQuota": 5, "ReservoirQuotaTTL": 300},
            "health": {"FixedRate": 0.0, "ReservoirQuota": 0, "ReservoirQuotaTTL": 300},
            "Default": {"FixedRate": 0.05, "ReservoirQuota": 1, "ReservoirQuotaTTL": 300},
        },
        "page_size": 2,
    }));
    let telemetry = init(&format!(
        "endpoint={},polling_interval=300,targets_polling_interval=0.2",
        peer.endpoint()
    ));
    // Two targets rounds: the quotas of the first have been applied.
    after_calls(&peer, "targets_calls", 2);
    assert!(peer.rules_calls() >= 2, "the rules came in pages of 2");

    let api = drive(
        &telemetry,
        2000,
        "GET",
        "/api/orders/7",
        None,
        Duration::from_micros(1200),
    );
    let health = drive(&telemetry, 200, "GET", "/health", None, Duration::ZERO);
    let posts = drive(
        &telemetry,
        300,
        "POST",
        "/orders",
        None,
        Duration::from_micros(3000),
    );
    let other = drive(
        &telemetry,
        400,
        "DELETE",
        "/api/orders/7",
        None,
        Duration::ZERO,
    );
    let finished = now_f64();

    let expected = assert_reservoir_then_rate("GET /api/* (quota 5/s, then 20 %)", &api, 5, 0.2);
    println!(
        "api-get: {} of {} sampled (expected {expected:.1})",
        sampled(&api),
        api.len()
    );
    assert_eq!(
        sampled(&health),
        0,
        "the priority 1 rule (rate 0) decides /health"
    );
    // orders-post has no quota yet: it borrows one per second, and its rate is 0.
    assert_reservoir_then_rate("POST /orders (borrowing)", &posts, 1, 0.0);
    // DELETE matches no rule of ours: X-Ray's Default rule (quota 1/s, then 5 %).
    assert_reservoir_then_rate("DELETE (Default rule)", &other, 1, 0.05);

    // The statistics reported to GetSamplingTargets are the decisions made.
    peer.wait_for(
        "a GetSamplingTargets call after the requests",
        Duration::from_secs(20),
        |r| {
            r["targets_calls"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["at"].as_f64().unwrap_or(0.0) > finished + 0.05)
            })
        },
    );
    let sums = reported(&peer);
    let n = |d: &[Decision]| (d.len() as u64, sampled(d) as u64);
    assert_eq!(
        sums["api-get"],
        (n(&api).0, n(&api).1, 0),
        "api-get statistics"
    );
    assert_eq!(sums["health"], (200, 0, 0), "health statistics");
    assert_eq!(
        sums["orders-post"],
        (n(&posts).0, n(&posts).1, n(&posts).1),
        "orders-post: every sampled request was borrowed"
    );
    assert_eq!(
        sums["Default"],
        (n(&other).0, n(&other).1, 0),
        "Default statistics"
    );
    for call in peer.targets_calls() {
        for doc in call["params"]["SamplingStatisticsDocuments"]
            .as_array()
            .unwrap()
        {
            let id = doc["ClientID"].as_str().unwrap();
            assert!(
                id.len() == 24 && id.chars().all(|c| c.is_ascii_hexdigit()),
                "ClientID {id}"
            );
        }
    }
    assert!(
        peer.records()["unsigned"].as_bool().unwrap(),
        "a proxy gets unsigned requests"
    );
    assert_model_conformant(&peer);
    telemetry.shutdown_blocking().expect("shutdown");
}

#[test]
fn a_rule_change_is_picked_up_after_the_next_poll() {
    let peer = SamplingPeer::start();
    peer.set(json!({"rules": [rule("all", 1, "*", "*", 0, 1.0), default_rule()]}));
    let telemetry = init(&format!(
        "endpoint={},polling_interval=0.5,targets_polling_interval=60",
        peer.endpoint()
    ));
    peer.wait_for("the first rules", Duration::from_secs(20), |r| {
        !r["rules_calls"].as_array().unwrap().is_empty()
    });
    after_calls(&peer, "rules_calls", 1);
    let before = drive(&telemetry, 200, "GET", "/x", None, Duration::ZERO);
    assert_eq!(sampled(&before), 200, "rule `all` samples everything");

    peer.set(json!({"rules": [rule("all", 1, "*", "*", 0, 0.0), default_rule()]}));
    after_calls(&peer, "rules_calls", 2);
    let after = drive(&telemetry, 200, "GET", "/x", None, Duration::ZERO);
    assert_eq!(
        sampled(&after),
        0,
        "the changed rule (rate 0) applies after the next poll"
    );
    assert_model_conformant(&peer);
    telemetry.shutdown_blocking().expect("shutdown");
}

#[test]
fn a_rule_change_x_ray_reports_with_the_targets_is_fetched_at_once() {
    let peer = SamplingPeer::start();
    peer.set(json!({"rules": [rule("all", 1, "*", "*", 0, 1.0), default_rule()]}));
    // Rules every 5 minutes: only LastRuleModification can bring the change in time.
    let telemetry = init(&format!(
        "endpoint={},polling_interval=300,targets_polling_interval=0.2",
        peer.endpoint()
    ));
    after_calls(&peer, "targets_calls", 1);
    assert_eq!(
        sampled(&drive(&telemetry, 100, "GET", "/x", None, Duration::ZERO)),
        100
    );
    let rules_before = peer.rules_calls();
    peer.set(json!({
        "rules": [rule("all", 1, "*", "*", 0, 0.0), default_rule()],
        "last_rule_modification": "now",
    }));
    peer.wait_for("the rules fetched again", Duration::from_secs(20), |r| {
        r["rules_calls"].as_array().unwrap().len() > rules_before
    });
    after_calls(&peer, "targets_calls", 1);
    assert_eq!(
        sampled(&drive(&telemetry, 100, "GET", "/x", None, Duration::ZERO)),
        0
    );
    assert_model_conformant(&peer);
    telemetry.shutdown_blocking().expect("shutdown");
}

#[test]
fn without_an_endpoint_the_local_default_applies_and_rules_take_over_soon_once_it_answers() {
    let mut peer = SamplingPeer::start();
    peer.stop();
    // Before any rules: 1 per second, then 5 %.
    let telemetry = init(&format!(
        "endpoint={},polling_interval=300,targets_polling_interval=60",
        peer.endpoint()
    ));
    let down = drive(
        &telemetry,
        1000,
        "GET",
        "/x",
        None,
        Duration::from_micros(500),
    );
    assert_reservoir_then_rate("endpoint down at start", &down, 1, 0.05);

    // The sampling proxy starts late (a collector beside the service): without rules, the
    // kit tries again within seconds, not one polling interval (5 min here) later.
    peer.restart();
    peer.set(json!({"rules": [rule("all", 1, "*", "*", 0, 1.0), default_rule()]}));
    wait_until_all_sampled(&telemetry, Duration::from_secs(20));
    assert_model_conformant(&peer);
    telemetry.shutdown_blocking().expect("shutdown");
}

#[test]
fn when_the_endpoint_goes_down_the_rules_expire_into_the_local_default() {
    let mut peer = SamplingPeer::start();
    peer.set(json!({"rules": [rule("all", 1, "*", "*", 0, 1.0), default_rule()]}));
    // Rules live 12 polling intervals: 3 s here (an hour at the default 5 minutes).
    let telemetry = init(&format!(
        "endpoint={},polling_interval=0.25,targets_polling_interval=60",
        peer.endpoint()
    ));
    after_calls(&peer, "rules_calls", 2);
    assert_eq!(
        sampled(&drive(&telemetry, 200, "GET", "/x", None, Duration::ZERO)),
        200
    );
    assert_model_conformant(&peer);
    peer.stop();
    let stopped = std::time::Instant::now();
    // Still the last rules for a while (a blip does not change sampling) ...
    assert_eq!(
        sampled(&drive(&telemetry, 100, "GET", "/x", None, Duration::ZERO)),
        100
    );
    // ... then the local default.
    std::thread::sleep(Duration::from_secs(4).saturating_sub(stopped.elapsed()));
    let down = drive(
        &telemetry,
        1000,
        "GET",
        "/x",
        None,
        Duration::from_micros(500),
    );
    assert_reservoir_then_rate("endpoint down for 12 intervals", &down, 1, 0.05);
    telemetry.shutdown_blocking().expect("shutdown");
}

#[test]
fn a_slow_endpoint_never_holds_up_a_decision() {
    let peer = SamplingPeer::start();
    peer.set(json!({"rules": [rule("all", 1, "*", "*", 0, 1.0), default_rule()], "delay": 3.0}));
    let telemetry = init(&format!(
        "endpoint={},polling_interval=300,targets_polling_interval=60",
        peer.endpoint()
    ));
    // The first GetSamplingRules call has arrived; its answer is held for 3 s.
    peer.wait_for("the first rules call", Duration::from_secs(20), |r| {
        !r["rules_calls"].as_array().unwrap().is_empty()
    });
    let started = std::time::Instant::now();
    let during = drive(&telemetry, 500, "GET", "/x", None, Duration::ZERO);
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "500 decisions took {took:?} while a poll was held 3 s"
    );
    assert_reservoir_then_rate("while the first poll is held", &during, 1, 0.05);
    // Then the held answer arrives and its rules apply.
    wait_until_all_sampled(&telemetry, Duration::from_secs(20));
    assert_model_conformant(&peer);
    telemetry.shutdown_blocking().expect("shutdown");
}

#[test]
fn a_parent_decision_wins_over_the_rules() {
    let peer = SamplingPeer::start();
    peer.set(json!({"rules": [rule("none", 1, "*", "*", 0, 0.0), default_rule()]}));
    let telemetry = init(&format!(
        "endpoint={},polling_interval=0.25,targets_polling_interval=60",
        peer.endpoint()
    ));
    after_calls(&peer, "rules_calls", 2);
    let propagator = TelemetryConfig::from_lookup(|_| None)
        .expect("config")
        .propagator();
    let parent = |sampled: &str| {
        let headers = HashMap::from([(
            "x-amzn-trace-id".to_owned(),
            format!(
                "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled={sampled}"
            ),
        )]);
        propagator.extract(&headers)
    };
    let count = |parent: Option<&Context>| {
        sampled(&drive(&telemetry, 50, "GET", "/x", parent, Duration::ZERO))
    };
    assert_eq!(count(None), 0, "roots: rule `none` (no reservoir, rate 0)");
    assert_eq!(count(Some(&parent("1"))), 50, "App Runner's Sampled=1 wins");
    // App Runner's `Sampled=?` leaves the decision to this service: the rules decide.
    assert_eq!(count(Some(&parent("?"))), 0, "Sampled=? follows the rules");

    peer.set(json!({"rules": [rule("all", 1, "*", "*", 0, 1.0), default_rule()]}));
    after_calls(&peer, "rules_calls", 2);
    assert_eq!(count(None), 50, "roots: rule `all` (rate 1)");
    assert_eq!(count(Some(&parent("0"))), 0, "App Runner's Sampled=0 wins");
    assert_eq!(count(Some(&parent("?"))), 50, "Sampled=? follows the rules");
    assert_model_conformant(&peer);
    telemetry.shutdown_blocking().expect("shutdown");
}

#[test]
fn the_peer_holds_requests_and_answers_to_botocores_model() {
    let peer = SamplingPeer::start();
    // A statistics document breaking the model three ways: a 5-digit ClientID (24 required),
    // a timestamp as text (rest-json sends epoch seconds), a negative count.
    let (status, body) = peer.post(
        "/SamplingTargets",
        r#"{"SamplingStatisticsDocuments": [{"RuleName": "r", "ClientID": "abcde",
            "Timestamp": "2026-01-01T00:00:00Z", "RequestCount": -1, "SampledCount": 0}]}"#,
    );
    assert!(status.contains(" 400 "), "{status} {body}");
    for expected in ["ClientID", "Timestamp", "RequestCount"] {
        assert!(body.contains(expected), "{expected} not reported: {body}");
    }
    let (status, body) = peer.post("/GetSamplingRules", r#"{"NextTokne": "1"}"#);
    assert!(
        status.contains(" 400 ") && body.contains("NextTokne"),
        "{status} {body}"
    );
    // An answer breaking the model (a rule without its required Host) is not sent.
    let mut broken = rule("broken", 1, "*", "*", 0, 1.0);
    broken.as_object_mut().unwrap().remove("Host");
    peer.set(json!({"rules": [broken]}));
    let (status, body) = peer.post("/GetSamplingRules", "{}");
    assert!(
        status.contains(" 500 ") && body.contains("Host"),
        "{status} {body}"
    );
    assert_eq!(peer.violations().len(), 3);
    // What the kit sends and gets passes.
    peer.set(json!({"rules": [default_rule()]}));
    let (status, body) = peer.post("/GetSamplingRules", "{}");
    assert!(
        status.contains(" 200 ") && body.contains("\"Priority\": 10000"),
        "{status} {body}"
    );
}

/// `http-test-server` configured for X-Ray sampling from the X-Ray API (signed), killed on drop.
struct Service(std::process::Child, u16);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_requests_to_a_kit_service_are_sampled_by_rules_fetched_from_the_signed_api() {
    const KEY: &str = "AKIDSAMPLINGTEST0001";
    let peer = SamplingPeer::start();
    let mut hello = rule("hello", 5, "GET", "/hel?o", 0, 1.0);
    hello["Host"] = json!("127.0.0.?");
    hello["ServiceName"] = json!("sampled-*");
    peer.set(json!({
        "rules": [hello, rule("Default", 10000, "*", "*", 0, 0.0)],
        "sigv4": {"access_key": KEY, "secret": "sampling-test-secret", "region": "eu-west-1"},
    }));
    let receiver = OtlpReceiver::start().await;
    let port = free_port();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_http-test-server"))
        .env("PORT", port.to_string())
        .env("HOST", "127.0.0.1")
        .env("OTEL_SERVICE_NAME", "sampled-svc")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.grpc_endpoint())
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .env("OTEL_TRACES_SAMPLER", "xray")
        .env(
            "OTEL_TRACES_SAMPLER_ARG",
            format!(
                "endpoint={},sigv4=eu-west-1,polling_interval=300,targets_polling_interval=0.2",
                peer.endpoint()
            ),
        )
        .env("AWS_ACCESS_KEY_ID", KEY)
        .env("AWS_SECRET_ACCESS_KEY", "sampling-test-secret")
        .env("AWS_REGION", "eu-west-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent/aws-config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/aws-credentials",
        )
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env_remove("OTEL_EXPORTER_OTLP_PROTOCOL")
        .env_remove("OTEL_TRACES_EXPORTER")
        .env_remove("OTEL_SDK_DISABLED")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start http-test-server");
    let service = Service(child, port);
    let wait = Duration::from_secs(20);
    tokio::task::block_in_place(|| {
        peer.wait_for("signed rules and targets calls", wait, |r| {
            r["signed_ok"].as_u64().unwrap_or(0) >= 3
                || !r["signature_failures"].as_array().unwrap().is_empty()
        })
    });
    let client = reqwest::Client::new();
    let url = |path: &str| format!("http://127.0.0.1:{}{path}", service.1);
    for _ in 0..100 {
        let r = client.get(url("/hello")).send().await.expect("GET /hello");
        assert!(r.status().is_success());
    }
    for _ in 0..50 {
        client
            .post(url("/echo"))
            .body("x")
            .send()
            .await
            .expect("POST /echo");
        client
            .get(url("/slow?ms=0"))
            .send()
            .await
            .expect("GET /slow");
    }
    let finished = now_f64();
    tokio::task::block_in_place(|| {
        peer.wait_for("statistics after the requests", wait, |r| {
            r["targets_calls"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["at"].as_f64().unwrap_or(0.0) > finished + 0.05)
            })
        })
    });
    let sums = reported(&peer);
    assert_eq!(sums["hello"], (100, 100, 0), "hello statistics");
    assert_eq!(sums["Default"], (100, 0, 0), "Default statistics");
    let deadline = std::time::Instant::now() + wait;
    let server_spans = |path: &str| {
        receiver
            .spans()
            .into_iter()
            .filter(|s| s.kind == Kind::Server && s.attr_str("url.path") == Some(path))
            .count()
    };
    while server_spans("/hello") < 100 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        server_spans("/hello"),
        100,
        "every GET /hello sampled and exported"
    );
    assert_eq!(
        server_spans("/echo") + server_spans("/slow"),
        0,
        "the rest dropped"
    );
    let records = peer.records();
    assert_eq!(records["signature_failures"], json!([]), "{records}");
    assert!(
        !records["unsigned"].as_bool().unwrap(),
        "every call was signed"
    );
    assert_model_conformant(&peer);
}
