//! The users API through database outages (issue 18): no failed request through restarts,
//! killed connections, password rotation and Aurora's resume.
//!
//! Each test runs the compiled binary against an own PostgreSQL cluster whose application role
//! logs in with a password (scram-sha-256), puts it under steady load (readers: `GET
//! /users/{id}` of an existing user; a writer: `POST /signup`), causes the event, and counts
//! every request by class: ok, 503 with `Retry-After` (unavailable), 500, anything else. The
//! figures (counts per class, recovery times) are printed with `eprintln!`:
//!
//! ```sh
//! cargo test -p users-api --test e2e_resilience -- --nocapture 2>&1 | grep '^\[resilience\]'
//! ```
//!
//! The tests run one at a time (timings matter, and the machine may have 2 cores).

// The figures are printed on standard error, for collection.
#![allow(clippy::print_stderr)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use apprunner_kit_tests::load::{Class, Load, Outcome, Report};
use apprunner_kit_tests::{AuroraProxy, CountingProxy, Postgres, SecretsEmulator, rotation};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use support::Service;

/// Concurrent readers and writers.
const READERS: usize = 3;
const WRITERS: usize = 1;
/// Each worker's pause between two requests.
const PACE: Duration = Duration::from_millis(10);
/// The pool size the service runs with.
const POOL_SIZE: &str = "5";
/// The application role and its database.
const ROLE: &str = "app";
const DATABASE: &str = "users";
/// How long the Aurora proxy holds new connections after a pause (the issue's 20 s).
const AURORA_HOLD: Duration = Duration::from_secs(20);
/// At most this many connection attempts may reach a paused cluster during [`AURORA_HOLD`]
/// (one attempt in flight at a time; without the outage gate every waiting request, up to the
/// pool size, opens its own and retries it).
const MAX_ATTEMPTS_WHILE_PAUSED: usize = 10;

/// In the rotation scenario, connections live this long (`DB_POOL_MAX_LIFETIME`): the pool
/// replaces them, and each new one logs in.
const ROTATION_LIFETIME: &str = "1s";
/// How long the rotation scenario lets the pool replace its connections after a step.
const RELOGIN: Duration = Duration::from_millis(2500);

/// One scenario at a time in this binary.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// The users API, and the id of a user the readers read.
struct Deployment {
    service: Service,
    _dir: tempfile::TempDir,
    user_id: String,
}

fn jwt_key() -> String {
    "0123456789abcdef".repeat(4)
}

/// Starts an own cluster with a password role.
async fn cluster(password: &str) -> Arc<Postgres> {
    let pg = Arc::new(
        tokio::task::spawn_blocking(Postgres::start_own)
            .await
            .unwrap(),
    );
    let (p, password) = (Arc::clone(&pg), password.to_owned());
    tokio::task::spawn_blocking(move || p.create_password_role(ROLE, &password, DATABASE))
        .await
        .unwrap();
    pg
}

/// The environment every scenario's service gets (plus `extra`).
fn base_env(extra: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = vec![
        ("JWT_SECRET".into(), jwt_key()),
        ("OTEL_TRACES_EXPORTER".into(), "none".into()),
        ("DB_POOL_MAX_CONNECTIONS".into(), POOL_SIZE.into()),
        ("RUST_LOG".into(), "info".into()),
    ];
    env.extend(extra);
    env
}

impl Deployment {
    /// The service connecting to `127.0.0.1:db_port` (the cluster, or a proxy in front of it)
    /// as the password role, with `DATABASE_URL` (plus `extra`).
    async fn start(password: &str, db_port: u16, extra: &[(&str, &str)]) -> Self {
        let mut env = vec![(
            "DATABASE_URL".to_owned(),
            format!("postgres://{ROLE}:{password}@127.0.0.1:{db_port}/{DATABASE}"),
        )];
        env.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        Self::start_with_env(base_env(env)).await
    }

    async fn start_with_env(env: Vec<(String, String)>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let service = tokio::task::block_in_place(|| Service::start(dir.path(), &env));
        let client = http_client();
        let signup = send(
            &client,
            "POST",
            &service.url("/signup"),
            Some(json!({"email": "reader@example.com", "password": "reader-password"})),
            201,
        )
        .await;
        assert_eq!(signup.0.class, Class::Ok, "{}", signup.0.detail);
        let user_id = signup.1["data"]["id"].as_str().unwrap().to_owned();
        Self {
            service,
            _dir: dir,
            user_id,
        }
    }

    /// Readers and writers against the service until stopped.
    fn load(&self) -> Load {
        static NONCE: AtomicU64 = AtomicU64::new(0);
        let nonce = NONCE.fetch_add(1, Ordering::Relaxed);
        let client = http_client();
        let read_url = self.service.url(&format!("/users/{}", self.user_id));
        let signup_url = self.service.url("/signup");
        Load::start(READERS + WRITERS, PACE, move |worker, seq| {
            let client = client.clone();
            let read_url = read_url.clone();
            let signup_url = signup_url.clone();
            async move {
                if worker < READERS {
                    ("read", send(&client, "GET", &read_url, None, 200).await.0)
                } else {
                    let body = json!({
                        "email": format!("w{worker}-{seq}-{nonce}@example.com"),
                        "password": "load-password",
                    });
                    (
                        "write",
                        send(&client, "POST", &signup_url, Some(body), 201).await.0,
                    )
                }
            }
        })
    }

    /// The service's `WARN` and `ERROR` lines, but the access log's (at most 30, distinct
    /// messages and errors), for failure messages.
    fn warnings(&self) -> String {
        let mut seen = std::collections::BTreeSet::new();
        self.service
            .logs()
            .into_iter()
            .filter(|l| l["level"] == "WARN" || l["level"] == "ERROR")
            .filter(|l| l["target"] != "apprunner::http::access")
            .map(|l| {
                let mut l = l;
                if let Some(map) = l.as_object_mut() {
                    for volatile in ["timestamp", "trace_id", "span_id", "span", "spans"] {
                        map.remove(volatile);
                    }
                }
                l.to_string()
            })
            .filter(|l| seen.insert(l.clone()))
            .take(30)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The service's JSON log lines whose message is `message`.
    fn log_lines(&self, message: &str) -> Vec<Value> {
        self.service
            .logs()
            .into_iter()
            .filter(|l| l["message"] == message || l["fields"]["message"] == message)
            .collect()
    }
}

fn http_client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// One request; never panics: a transport error or a client-side timeout is [`Class::Other`].
async fn send(
    client: &HttpClient,
    method: &str,
    url: &str,
    body: Option<Value>,
    ok_status: u16,
) -> (Outcome, Value) {
    let mut request = hyper::Request::builder().method(method).uri(url);
    let body = match body {
        Some(body) => {
            request = request.header("content-type", "application/json");
            Full::new(Bytes::from(serde_json::to_vec(&body).unwrap()))
        }
        None => Full::new(Bytes::new()),
    };
    let request = request.body(body).unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(90), async {
        let response = client.request(request).await.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let retry_after = response.headers().contains_key("retry-after");
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok::<_, String>((status, retry_after, bytes))
    })
    .await;
    match answer {
        Err(_) => (
            Outcome::new(Class::Other, format!("{method} {url}: no answer in 90 s")),
            Value::Null,
        ),
        Ok(Err(e)) => (
            Outcome::new(Class::Other, format!("{method} {url}: {e}")),
            Value::Null,
        ),
        Ok(Ok((status, retry_after, bytes))) => {
            let class = Class::from_http(status, ok_status, retry_after);
            let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let detail = if class == Class::Ok {
                String::new()
            } else {
                format!(
                    "{status}{} {}",
                    if retry_after { " (Retry-After)" } else { "" },
                    String::from_utf8_lossy(&bytes)
                )
            };
            (Outcome::new(class, detail), json)
        }
    }
}

/// Prints one figure line: counts per kind and class, then recovery per kind.
fn figures(scenario: &str, report: &Report, event: Instant, back: Option<Instant>) {
    let mut line = format!("[resilience] postgres {scenario}: {}", report.summary());
    for kind in ["read", "write"] {
        let r = report.of_kind(Some(kind));
        if r.total(None) > 0 {
            line.push_str(&format!(" | {kind} {}", r.recovery(event, back)));
        }
    }
    eprintln!("{line}");
}

/// Asserts no request of `kind` failed.
fn assert_none_failed(d: &Deployment, report: &Report, kind: Option<&str>, what: &str) {
    let r = report.of_kind(kind);
    assert_eq!(
        r.failed(None),
        0,
        "{what}: {} of {} {} requests failed ({}):\n{}\nthe service's warnings:\n{}",
        r.failed(None),
        r.total(None),
        kind.unwrap_or("all"),
        report.summary(),
        r.failures(20).join("\n"),
        d.warnings()
    );
}

/// Asserts every failed request of `kind` was a 503 with `Retry-After` (no 500, nothing else).
fn assert_only_unavailable(d: &Deployment, report: &Report, kind: Option<&str>, what: &str) {
    let r = report.of_kind(kind);
    let bad: Vec<String> = r
        .samples
        .iter()
        .filter(|s| !matches!(s.class, Class::Ok | Class::Unavailable))
        .map(|s| format!("{} {}: {}", s.kind, s.class, s.detail))
        .take(20)
        .collect();
    assert!(
        bad.is_empty(),
        "{what}: failures other than 503 ({}):\n{}\nthe service's warnings:\n{}",
        report.summary(),
        bad.join("\n"),
        d.warnings()
    );
}

/// The stage of a `database credentials changed` line: `current` or `pending` (`AWSCURRENT`,
/// `AWSPENDING` for a Secrets Manager secret).
fn normalize_stage(stage: &str) -> String {
    match stage {
        "AWSCURRENT" => "current".to_owned(),
        "AWSPENDING" => "pending".to_owned(),
        other => other.to_owned(),
    }
}

/// Runs `f` on the blocking pool.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// Terminates idle connections of the role, trying for a second until at least one was (the
/// load keeps some busy); returns how many.
async fn terminate_idle(pg: &Arc<Postgres>) -> usize {
    for _ in 0..50 {
        let pg = Arc::clone(pg);
        let n = blocking(move || pg.terminate_idle(ROLE)).await;
        if n > 0 {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    0
}

/// Scenario 1: `pg_ctl restart -m fast`, then a stop for 5 s and a start. Reads (outside a
/// transaction) never fail; writes fail only with 503 while the server is down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_and_stop_fail_no_read_and_answer_503_to_writes() {
    let _serial = SERIAL.lock().await;
    let password = "app-Pa55-restart";
    let pg = cluster(password).await;
    let port = pg.port();
    let d = Deployment::start(password, port, &[]).await;
    let load = d.load();
    tokio::time::sleep(Duration::from_secs(1)).await;

    // A fast restart.
    let restart = Instant::now();
    blocking({
        let pg = Arc::clone(&pg);
        move || pg.restart_fast()
    })
    .await;
    let restarted = Instant::now();
    load.wait_for_ok(Some("read"), restarted, 5, Duration::from_secs(20))
        .await;
    load.wait_for_ok(Some("write"), restarted, 1, Duration::from_secs(20))
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Down for 5 s.
    let stop = Instant::now();
    blocking({
        let pg = Arc::clone(&pg);
        move || pg.stop()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    blocking({
        let pg = Arc::clone(&pg);
        move || pg.start_again()
    })
    .await;
    let started = Instant::now();
    load.wait_for_ok(Some("read"), started, 5, Duration::from_secs(20))
        .await;
    load.wait_for_ok(Some("write"), started, 1, Duration::from_secs(20))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let report = load.stop().await;

    let restart_phase = report.ended_between(restart, stop);
    let stop_phase = report.ended_between(stop, report.stopped);
    eprintln!(
        "[resilience] postgres restart -m fast took {}ms; stop+5s+start took {}ms",
        (restarted - restart).as_millis(),
        (started - stop).as_millis()
    );
    figures("restart -m fast", &restart_phase, restart, Some(restarted));
    figures("stop 5 s, start", &stop_phase, stop, Some(started));

    assert_none_failed(&d, &report, Some("read"), "reads through restart and stop");
    assert_only_unavailable(
        &d,
        &report,
        Some("write"),
        "writes through restart and stop",
    );
    assert!(
        d.log_lines("request failed").is_empty(),
        "500s were logged:\n{}",
        d.service.output()
    );
    drop(d);
}

/// Scenario 2: `pg_terminate_backend` on every idle connection, five times: no request fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_idle_connections_fail_no_request() {
    let _serial = SERIAL.lock().await;
    let password = "app-Pa55-terminate";
    let pg = cluster(password).await;
    let port = pg.port();
    let d = Deployment::start(password, port, &[]).await;
    let load = d.load();
    tokio::time::sleep(Duration::from_secs(1)).await;

    let first = Instant::now();
    let mut terminated = 0;
    for _ in 0..5 {
        terminated += terminate_idle(&pg).await;
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let last = Instant::now();
    load.wait_for_ok(None, last, 10, Duration::from_secs(20))
        .await;
    let report = load.stop().await;
    eprintln!(
        "[resilience] postgres pg_terminate_backend: {terminated} idle connections terminated"
    );
    figures("pg_terminate_backend idle", &report, first, Some(first));
    assert!(terminated > 0, "no idle connection was terminated");
    assert_none_failed(
        &d,
        &report,
        None,
        "requests while idle connections were terminated",
    );
    drop(d);
}

/// Scenario 3: a rotation as the rotation function does it, against the Secrets Manager
/// emulator, under load: `createSecret` (AWSPENDING), `setSecret` (ALTER ROLE), `finishSecret`
/// (AWSCURRENT moves); then one with the secret updated first. No request fails, and each
/// change costs one refresh (`GetSecretValue` of AWSCURRENT, then AWSPENDING if needed), not
/// one per request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_fails_no_request_and_reads_the_secret_once_per_change() {
    let _serial = SERIAL.lock().await;
    let passwords = ["app-Pa55-rot0", "app-Pa55-rot1", "app-Pa55-rot2"];
    let pg = cluster(passwords[0]).await;
    let moto = blocking(SecretsEmulator::start).await;
    let counting = CountingProxy::start(&moto.endpoint()).await;
    let secret = |password: &str| {
        json!({
            "username": ROLE, "password": password, "engine": "postgres",
            "host": "127.0.0.1", "port": pg.port(), "dbname": DATABASE,
        })
        .to_string()
    };
    let arn = moto
        .create_secret("users-api/db", &secret(passwords[0]))
        .await;
    let sm = moto.client();
    // The service reaches Secrets Manager through the counting proxy.
    let mut env: Vec<(String, String)> = moto
        .env()
        .into_iter()
        .filter(|(k, _)| k != "AWS_ENDPOINT_URL")
        .collect();
    env.push(("AWS_ENDPOINT_URL".into(), counting.endpoint()));
    env.push(("DB_SECRET_NAME".into(), arn.clone()));
    env.push(("DB_POOL_MAX_LIFETIME".into(), ROTATION_LIFETIME.into()));
    let d = Deployment::start_with_env(base_env(env)).await;
    let reads = || counting.get_secret_value_calls(&arn);
    let at_start = reads();
    assert!(at_start >= 1, "the secret is read at start-up");
    let changes = |d: &Deployment| d.log_lines("database credentials changed");

    let load = d.load();
    tokio::time::sleep(Duration::from_secs(1)).await;

    // --- rotation 1, in the rotation function's order ------------------------------------------
    let rotation1 = Instant::now();
    let token1 = rotation::new_token();
    rotation::create_secret(&sm, &arn, &token1, &secret(passwords[1])).await;
    blocking({
        let pg = Arc::clone(&pg);
        let password = passwords[1];
        move || pg.alter_password(ROLE, password)
    })
    .await;
    // Open connections stay logged in; the pool replaces them (DB_POOL_MAX_LIFETIME=1s), and
    // each new one logs in with the old password first.
    let set_secret = Instant::now();
    tokio::time::sleep(RELOGIN).await;
    load.wait_for_ok(None, Instant::now(), 10, Duration::from_secs(20))
        .await;
    rotation::finish_secret(&sm, &arn, &token1).await;
    tokio::time::sleep(RELOGIN).await;
    load.wait_for_ok(None, Instant::now(), 10, Duration::from_secs(20))
        .await;
    let calls1 = reads() - at_start;
    let changes1 = changes(&d);

    // --- rotation 2, the secret updated first ---------------------------------------------------
    let rotation2 = Instant::now();
    let token2 = rotation::new_token();
    rotation::create_secret(&sm, &arn, &token2, &secret(passwords[2])).await;
    rotation::finish_secret(&sm, &arn, &token2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    blocking({
        let pg = Arc::clone(&pg);
        let password = passwords[2];
        move || pg.alter_password(ROLE, password)
    })
    .await;
    tokio::time::sleep(RELOGIN).await;
    load.wait_for_ok(None, Instant::now(), 10, Duration::from_secs(20))
        .await;
    let calls2 = reads() - at_start - calls1;
    let all_changes = changes(&d);
    let report = load.stop().await;

    let stages = |lines: &[Value]| -> Vec<String> {
        lines
            .iter()
            .map(|l| {
                let stage = if l["stage"].is_null() {
                    &l["fields"]["stage"]
                } else {
                    &l["stage"]
                };
                normalize_stage(stage.as_str().unwrap_or("?"))
            })
            .collect()
    };
    eprintln!(
        "[resilience] postgres rotation: GetSecretValue calls: start-up {at_start}, rotation 1 (createSecret, setSecret, finishSecret) {calls1}, \
         rotation 2 (secret first) {calls2}; `database credentials changed` stages: {:?}",
        stages(&all_changes)
    );
    figures(
        "rotation 1",
        &report.ended_between(rotation1, rotation2),
        set_secret,
        None,
    );
    figures(
        "rotation 2 (secret first)",
        &report.ended_between(rotation2, report.stopped),
        rotation2,
        None,
    );

    assert_none_failed(&d, &report, None, "requests through both rotations");
    assert!(
        (1..=2).contains(&calls1),
        "rotation 1: {calls1} GetSecretValue calls (one refresh: AWSCURRENT, then AWSPENDING); \
         calls: {:?}",
        counting.calls()
    );
    assert!(
        (1..=2).contains(&calls2),
        "rotation 2: {calls2} GetSecretValue calls (one refresh: AWSCURRENT); calls: {:?}",
        counting.calls()
    );
    assert_eq!(
        stages(&changes1),
        ["pending"],
        "rotation 1: the new password comes from AWSPENDING, once:\n{}",
        d.service.output()
    );
    assert_eq!(
        stages(&all_changes),
        ["pending", "current"],
        "rotation 2: the new password comes from AWSCURRENT, once:\n{}",
        d.service.output()
    );
    let output = d.service.output();
    for password in passwords {
        assert!(!output.contains(password), "a password was logged");
    }
    drop(d);
}

/// Scenario 4a: Aurora resumes from a pause while requests arrive: the cluster's proxy accepts
/// and holds new connections for 20 s. Within the resume budget (30 s by default), requests
/// wait and none fails, and only a few connection attempts reach the cluster meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aurora_resume_fails_no_request_with_few_connection_attempts() {
    let _serial = SERIAL.lock().await;
    let password = "app-Pa55-aurora";
    let pg = cluster(password).await;
    let proxy = AuroraProxy::start(([127, 0, 0, 1], pg.port()).into()).await;
    let d = Deployment::start(password, proxy.port(), &[]).await;
    let load = d.load();
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Aurora pauses only an idle cluster: let the requests in flight finish, pause, go on.
    load.hold().await;
    proxy.pause(AURORA_HOLD);
    let paused = Instant::now();
    let resumed = paused + AURORA_HOLD;
    load.release();
    tokio::time::sleep_until((resumed + Duration::from_secs(2)).into()).await;
    load.wait_for_ok(None, resumed, 10, Duration::from_secs(20))
        .await;
    let attempts = proxy.accepted_since_pause();
    let held = proxy.held();
    let report = load.stop().await;

    eprintln!(
        "[resilience] postgres aurora resume ({}s hold): {held} connection attempts held while \
         paused, {attempts} accepted since the pause (pool size {POOL_SIZE})",
        AURORA_HOLD.as_secs()
    );
    figures("aurora resume", &report, paused, Some(resumed));
    assert_none_failed(&d, &report, None, "requests through Aurora's resume");
    assert!(
        held <= MAX_ATTEMPTS_WHILE_PAUSED,
        "{held} connection attempts reached the paused cluster (at most \
         {MAX_ATTEMPTS_WHILE_PAUSED}: one attempt in flight at a time)"
    );
    drop(d);
}

/// Scenario 4b: the resume takes longer than the budget (`DB_RESUME_BUDGET=3s`, held 10 s):
/// requests wait up to the budget, then get a 503 (with `Retry-After`) fast; never a 500; and
/// requests succeed again once the cluster is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aurora_resume_past_the_budget_answers_503_fast() {
    let _serial = SERIAL.lock().await;
    let budget = Duration::from_secs(3);
    let hold = Duration::from_secs(10);
    let password = "app-Pa55-budget";
    let pg = cluster(password).await;
    let proxy = AuroraProxy::start(([127, 0, 0, 1], pg.port()).into()).await;
    let d = Deployment::start(password, proxy.port(), &[("DB_RESUME_BUDGET", "3s")]).await;
    let load = d.load();
    tokio::time::sleep(Duration::from_secs(1)).await;

    load.hold().await;
    proxy.pause(hold);
    let paused = Instant::now();
    let resumed = paused + hold;
    load.release();
    tokio::time::sleep_until((resumed + Duration::from_secs(2)).into()).await;
    load.wait_for_ok(None, resumed, 10, Duration::from_secs(20))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let held = proxy.held();
    let report = load.stop().await;

    // Requests sent well past the budget and well before the resume, and how long they took.
    let past_budget: Vec<_> = report
        .samples
        .iter()
        .filter(|s| {
            s.start >= paused + budget + Duration::from_secs(1)
                && s.start + Duration::from_secs(1) <= resumed
        })
        .collect();
    let slowest_past_budget = past_budget
        .iter()
        .map(|s| s.latency())
        .max()
        .unwrap_or_default();
    let unavailable = report.count(None, Class::Unavailable);
    eprintln!(
        "[resilience] postgres aurora resume past the budget ({}s budget, {}s hold): \
         {unavailable} 503s, {} requests sent past the budget answered in at most {}ms; \
         {held} connection attempts held",
        budget.as_secs(),
        hold.as_secs(),
        past_budget.len(),
        slowest_past_budget.as_millis()
    );
    figures(
        "aurora resume past the budget",
        &report,
        paused,
        Some(resumed),
    );

    assert_only_unavailable(&d, &report, None, "requests past the resume budget");
    assert!(unavailable > 0, "no 503 although the budget was exceeded");
    assert!(
        !past_budget.is_empty()
            && past_budget
                .iter()
                .all(|s| s.class == Class::Unavailable && s.latency() < Duration::from_secs(1)),
        "requests past the budget must get a 503 fast: {:?}",
        past_budget
            .iter()
            .map(|s| format!("{} {}ms {}", s.class, s.latency().as_millis(), s.detail))
            .collect::<Vec<_>>()
    );
    // The budget counts from the start of the first request that waited; before the pool
    // knows of the outage, a request waits at most its acquire timeout
    // (DB_POOL_ACQUIRE_TIMEOUT, 5 s) for the held connection attempts.
    let longest = report.recovery(paused, None).max_latency;
    let allowed = budget.max(Duration::from_secs(5)) + Duration::from_secs(1);
    let mut slowest: Vec<_> = report.samples.iter().collect();
    slowest.sort_by_key(|s| std::cmp::Reverse(s.latency()));
    assert!(
        longest < allowed,
        "a request waited {}ms, more than the {}s budget or the 5 s acquire timeout:\n{}\nthe \
         service's warnings:\n{}",
        longest.as_millis(),
        budget.as_secs(),
        slowest
            .iter()
            .take(8)
            .map(|s| format!(
                "{} +{}ms took {}ms: {} {}",
                s.kind,
                (s.start - paused).as_millis(),
                s.latency().as_millis(),
                s.class,
                s.detail
            ))
            .collect::<Vec<_>>()
            .join("\n"),
        d.warnings()
    );
    let after = report
        .samples
        .iter()
        .filter(|s| s.start >= resumed + Duration::from_secs(1))
        .collect::<Vec<_>>();
    assert!(
        !after.is_empty() && after.iter().all(|s| s.class == Class::Ok),
        "requests fail after the cluster resumed: {}",
        report.summary()
    );
    assert!(
        held <= MAX_ATTEMPTS_WHILE_PAUSED,
        "{held} connection attempts while paused"
    );
    drop(d);
}
