//! `apprunner::db` on MariaDB through outages (issue 18), at pool level (the users API has no
//! MySQL store): a restart and a stop for 5 s, `KILL` of every idle connection, and a password
//! rotation through the Secrets Manager emulator (`ALTER USER`), each under steady load.
//!
//! Each test starts an own server whose user logs in with a password, and a [`MySqlPool`] with
//! five workers on it: three readers (`SELECT` on `&pool`), a writer (`INSERT` on `&pool`) and a
//! writer marked retryable (`INSERT` on `pool.retryable()`). Every statement is counted by class:
//! ok, unavailable (`apprunner::db::is_unavailable`), other error. The figures are printed:
//!
//! ```sh
//! cargo test -p apprunner-kit-tests --test db_resilience_mysql -- --nocapture 2>&1 | grep '^\[resilience\]'
//! ```

// The figures are printed on standard error, for collection.
#![allow(clippy::print_stderr)]

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use apprunner::db::{DbConfig, MySqlPool, RdsSecretSource};
use apprunner::secrets::SecretCache;
use apprunner_kit_tests::load::{Class, Load, Outcome, Report};
use apprunner_kit_tests::{CountingProxy, LogCapture, MariaDb, SecretsEmulator, rotation};

const USER: &str = "app";
const DATABASE: &str = "app";
const PACE: Duration = Duration::from_millis(10);
const READERS: usize = 3;

/// How long the rotation scenario lets the pool replace its connections after a step (they
/// live 1 s there: `DB_POOL_MAX_LIFETIME`).
const RELOGIN: Duration = Duration::from_millis(2500);

/// One scenario at a time in this binary (each runs its own server; timings matter).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The binary's log lines (JSON, fields at the top level), as the global subscriber.
fn logs() -> &'static LogCapture {
    static CAPTURE: OnceLock<LogCapture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture = LogCapture::default();
        let writer = capture.clone();
        tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || writer.clone())
            .init();
        capture
    })
}

/// Log lines whose message is `message`.
fn log_lines(message: &str) -> Vec<serde_json::Value> {
    logs()
        .text()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["message"] == message)
        .collect()
}

/// An own server with the password user and its database.
async fn server(password: &str) -> Arc<MariaDb> {
    let server = Arc::new(blocking(MariaDb::start_own).await);
    let (s, password) = (Arc::clone(&server), password.to_owned());
    blocking(move || s.create_password_user(USER, &password, DATABASE)).await;
    server
}

/// The pool as a service would configure it (the `DB_*` variables), with the test table.
async fn pool(server: &MariaDb, password: &str, source: Option<RdsSecretSource>) -> MySqlPool {
    // With a credential source (the rotation scenario), connections are replaced every second,
    // so new ones log in while the password changes.
    let lifetime = if source.is_some() { "1s" } else { "30m" };
    let vars = [
        ("DB_POOL_MAX_LIFETIME", lifetime.to_owned()),
        ("DB_ENGINE", "mysql".to_owned()),
        ("DB_HOST", server.host()),
        ("DB_PORT", server.port().to_string()),
        ("DB_USER", USER.to_owned()),
        ("DB_PASSWORD", password.to_owned()),
        ("DB_DATABASE", DATABASE.to_owned()),
        ("DB_POOL_MAX_CONNECTIONS", "5".to_owned()),
    ];
    let mut config =
        DbConfig::from_lookup(|key| vars.iter().find(|(k, _)| *k == key).map(|(_, v)| v.clone()))
            .expect("configuration");
    if let Some(source) = source {
        config = config.credentials(source);
    }
    let pool = MySqlPool::connect_with(config).await.expect("connect");
    sqlx::query(
        "CREATE TABLE items (id BIGINT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(64) NOT NULL)",
    )
    .execute(&pool)
    .await
    .expect("create the table");
    sqlx::query("INSERT INTO items (v) VALUES ('first')")
        .execute(&pool)
        .await
        .expect("insert the row the readers read");
    pool
}

fn outcome(result: Result<(), sqlx::Error>) -> Outcome {
    match result {
        Ok(()) => Outcome::new(Class::Ok, ""),
        Err(e) if apprunner::db::is_unavailable(&e) => {
            Outcome::new(Class::Unavailable, e.to_string())
        }
        Err(e) => Outcome::new(Class::Internal, format!("{e} ({e:?})")),
    }
}

/// Readers, a plain writer and a retryable writer on `pool`.
fn load(pool: &MySqlPool) -> Load {
    let pool = pool.clone();
    Load::start(READERS + 2, PACE, move |worker, seq| {
        let pool = pool.clone();
        async move {
            match worker {
                w if w < READERS => {
                    let r = sqlx::query_scalar::<_, String>("SELECT v FROM items WHERE id = 1")
                        .fetch_one(&pool)
                        .await
                        .map(|_| ());
                    ("read", outcome(r))
                }
                w if w == READERS => {
                    let r = sqlx::query("INSERT INTO items (v) VALUES (?)")
                        .bind(format!("w{seq}"))
                        .execute(&pool)
                        .await
                        .map(|_| ());
                    ("write", outcome(r))
                }
                _ => {
                    let r = sqlx::query("INSERT INTO items (v) VALUES (?)")
                        .bind(format!("r{seq}"))
                        .execute(pool.retryable())
                        .await
                        .map(|_| ());
                    ("retryable write", outcome(r))
                }
            }
        }
    })
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// `KILL` of the user's idle connections, trying for a second until at least one was.
async fn kill_idle(server: &Arc<MariaDb>) -> usize {
    for _ in 0..50 {
        let s = Arc::clone(server);
        let n = blocking(move || s.kill_idle(USER)).await;
        if n > 0 {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    0
}

const KINDS: [&str; 3] = ["read", "write", "retryable write"];

fn figures(scenario: &str, report: &Report, event: Instant, back: Option<Instant>) {
    let mut line = format!("[resilience] mariadb {scenario}: {}", report.summary());
    for kind in KINDS {
        let r = report.of_kind(Some(kind));
        if r.total(None) > 0 {
            line.push_str(&format!(" | {kind} {}", r.recovery(event, back)));
        }
    }
    eprintln!("{line}");
}

fn assert_none_failed(report: &Report, kind: Option<&str>, what: &str) {
    let r = report.of_kind(kind);
    assert_eq!(
        r.failed(None),
        0,
        "{what}: {} of {} {} statements failed ({}):\n{}",
        r.failed(None),
        r.total(None),
        kind.unwrap_or("all"),
        report.summary(),
        r.failures(20).join("\n")
    );
}

fn assert_only_unavailable(report: &Report, kind: Option<&str>, what: &str) {
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
        "{what}: errors other than unavailable ({}):\n{}",
        report.summary(),
        bad.join("\n")
    );
}

/// Scenario 1: a restart (SIGTERM, start again) and a stop for 5 s then start. Reads and
/// retryable writes never fail; plain writes fail only as unavailable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_and_stop_fail_no_read() {
    let _serial = SERIAL.lock().await;
    let password = "app-Pa55-restart";
    let server = server(password).await;
    let pool = pool(&server, password, None).await;
    let load = load(&pool);
    tokio::time::sleep(Duration::from_secs(1)).await;

    let restart = Instant::now();
    blocking({
        let s = Arc::clone(&server);
        move || s.restart()
    })
    .await;
    let restarted = Instant::now();
    load.wait_for_ok(Some("read"), restarted, 5, Duration::from_secs(20))
        .await;
    load.wait_for_ok(Some("write"), restarted, 1, Duration::from_secs(20))
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    let stop = Instant::now();
    blocking({
        let s = Arc::clone(&server);
        move || s.stop()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    blocking({
        let s = Arc::clone(&server);
        move || s.start_again()
    })
    .await;
    let started = Instant::now();
    load.wait_for_ok(Some("read"), started, 5, Duration::from_secs(20))
        .await;
    load.wait_for_ok(Some("write"), started, 1, Duration::from_secs(20))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let report = load.stop().await;

    eprintln!(
        "[resilience] mariadb restart took {}ms; stop+5s+start took {}ms",
        (restarted - restart).as_millis(),
        (started - stop).as_millis()
    );
    figures(
        "restart",
        &report.ended_between(restart, stop),
        restart,
        Some(restarted),
    );
    figures(
        "stop 5 s, start",
        &report.ended_between(stop, report.stopped),
        stop,
        Some(started),
    );
    assert_none_failed(&report, Some("read"), "reads through restart and stop");
    assert_none_failed(
        &report,
        Some("retryable write"),
        "retryable writes through restart and stop",
    );
    assert_only_unavailable(&report, Some("write"), "writes through restart and stop");
    pool.close().await;
}

/// Scenario 2: `KILL` of every idle connection, five times: no read and no retryable write
/// fails. A plain write may fail, as unavailable only: a `KILL` can land between the pool's
/// ping and the statement, and MySQL then closes the socket without saying whether the
/// statement ran, so the kit does not run it twice (PostgreSQL says: its scenario asserts 0).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_idle_connections_fail_no_statement() {
    let _serial = SERIAL.lock().await;
    let password = "app-Pa55-kill";
    let server = server(password).await;
    let pool = pool(&server, password, None).await;
    let load = load(&pool);
    tokio::time::sleep(Duration::from_secs(1)).await;

    let first = Instant::now();
    let mut killed = 0;
    for _ in 0..5 {
        killed += kill_idle(&server).await;
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    load.wait_for_ok(None, Instant::now(), 10, Duration::from_secs(20))
        .await;
    let report = load.stop().await;
    eprintln!("[resilience] mariadb KILL: {killed} idle connections killed");
    figures("KILL idle", &report, first, Some(first));
    assert!(killed > 0, "no idle connection was killed");
    for kind in ["read", "retryable write"] {
        assert_none_failed(
            &report,
            Some(kind),
            "statements while idle connections were killed",
        );
    }
    assert_only_unavailable(
        &report,
        Some("write"),
        "plain writes while idle connections were killed",
    );
    pool.close().await;
}

/// Scenario 3: a rotation as the rotation function does it (`createSecret` AWSPENDING,
/// `setSecret` ALTER USER, `finishSecret` AWSCURRENT), then one with the secret updated first,
/// under load: no statement fails, and each change costs one refresh, not one per statement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_fails_no_statement_and_reads_the_secret_once_per_change() {
    let _serial = SERIAL.lock().await;
    logs();
    let passwords = ["app-Pa55-rot0", "app-Pa55-rot1", "app-Pa55-rot2"];
    let server = server(passwords[0]).await;
    let moto = blocking(SecretsEmulator::start).await;
    let counting = CountingProxy::start(&moto.endpoint()).await;
    let secret = |password: &str| {
        serde_json::json!({
            "username": USER, "password": password, "engine": "mysql",
            "host": server.host(), "port": server.port(), "dbname": DATABASE,
        })
        .to_string()
    };
    let secret_id = "prod/app-db";
    moto.create_secret(secret_id, &secret(passwords[0])).await;
    let sm = moto.client();
    // The pool reads the secret through the counting proxy.
    let through_proxy = moto
        .sdk_config()
        .to_builder()
        .endpoint_url(counting.endpoint())
        .build();
    let cache = Arc::new(SecretCache::from_sdk_config(&through_proxy).unwrap());
    let pool = pool(
        &server,
        passwords[0],
        Some(RdsSecretSource::new(cache, secret_id)),
    )
    .await;
    let reads = || counting.get_secret_value_calls(secret_id);
    let changes = || {
        log_lines("database credentials changed")
            .iter()
            .filter(|l| l["source"].as_str().is_some_and(|s| s.contains(secret_id)))
            .map(|l| match l["stage"].as_str().unwrap_or("?") {
                "AWSCURRENT" => "current".to_owned(),
                "AWSPENDING" => "pending".to_owned(),
                other => other.to_owned(),
            })
            .collect::<Vec<_>>()
    };
    let at_start = reads();
    let load = load(&pool);
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Rotation 1, in the rotation function's order.
    let rotation1 = Instant::now();
    let token1 = rotation::new_token();
    rotation::create_secret(&sm, secret_id, &token1, &secret(passwords[1])).await;
    blocking({
        let s = Arc::clone(&server);
        let password = passwords[1];
        move || s.alter_password(USER, password)
    })
    .await;
    // Open connections stay logged in; the pool replaces them (DB_POOL_MAX_LIFETIME=1s), and
    // each new one logs in with the old password first.
    let set_secret = Instant::now();
    tokio::time::sleep(RELOGIN).await;
    load.wait_for_ok(None, Instant::now(), 10, Duration::from_secs(20))
        .await;
    rotation::finish_secret(&sm, secret_id, &token1).await;
    tokio::time::sleep(RELOGIN).await;
    load.wait_for_ok(None, Instant::now(), 10, Duration::from_secs(20))
        .await;
    let calls1 = reads() - at_start;
    let changes1 = changes();

    // Rotation 2, the secret updated first.
    let rotation2 = Instant::now();
    let token2 = rotation::new_token();
    rotation::create_secret(&sm, secret_id, &token2, &secret(passwords[2])).await;
    rotation::finish_secret(&sm, secret_id, &token2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    blocking({
        let s = Arc::clone(&server);
        let password = passwords[2];
        move || s.alter_password(USER, password)
    })
    .await;
    tokio::time::sleep(RELOGIN).await;
    load.wait_for_ok(None, Instant::now(), 10, Duration::from_secs(20))
        .await;
    let calls2 = reads() - at_start - calls1;
    let all_changes = changes();
    let report = load.stop().await;

    eprintln!(
        "[resilience] mariadb rotation: GetSecretValue calls: start-up {at_start}, rotation 1 (createSecret, setSecret, finishSecret) {calls1}, \
         rotation 2 (secret first) {calls2}; `database credentials changed` stages: \
         {all_changes:?}"
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
    assert_none_failed(&report, None, "statements through both rotations");
    assert!(
        (1..=2).contains(&calls1),
        "rotation 1: {calls1} GetSecretValue calls (one refresh: AWSCURRENT, then AWSPENDING): \
         {:?}",
        counting.calls()
    );
    assert!(
        (1..=2).contains(&calls2),
        "rotation 2: {calls2} GetSecretValue calls (one refresh: AWSCURRENT): {:?}",
        counting.calls()
    );
    assert_eq!(
        changes1,
        ["pending"],
        "rotation 1: one change, from AWSPENDING"
    );
    assert_eq!(
        all_changes,
        ["pending", "current"],
        "rotation 2: one change, from AWSCURRENT"
    );
    let text = logs().text();
    for password in passwords {
        assert!(!text.contains(password), "a password was logged");
    }
    pool.close().await;
}
