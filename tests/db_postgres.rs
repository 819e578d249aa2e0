//! `apprunner::db` on PostgreSQL (a throwaway cluster per test): spans at a real OTLP receiver,
//! start-up retries, a restart mid-run, password rotation through Secrets Manager (moto), and
//! migrations.

#[macro_use]
#[path = "db_common/mod.rs"]
mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use apprunner::db::{DbConfig, DbError, PgPool, RdsSecretSource};
use apprunner::secrets::SecretCache;
use apprunner_kit_tests::{Postgres, SecretsEmulator};
use common::*;

scenarios!(sqlx::Postgres);

async fn cluster() -> Postgres {
    tokio::task::spawn_blocking(Postgres::start).await.unwrap()
}

fn expect(pg: &Postgres, database: &str) -> Expect {
    Expect {
        system: "postgresql",
        namespace: database.into(),
        server: Some((pg.host(), i64::from(pg.port()))),
        user: Some(pg.user().into()),
        placeholder: |n| format!("${n}"),
        unique_violation: "23505",
        syntax_error: "42601",
    }
}

/// A pool on a fresh database `app` with the `users` table.
async fn pool(pg: &Postgres) -> (PgPool, Expect) {
    let url = pg.create_database("app");
    let pool = PgPool::connect(&url).await.expect("connect");
    sqlx::query(DDL).execute(&pool).await.expect("create table");
    let database = url.rsplit('/').next().unwrap().to_owned();
    (pool, expect(pg, &database))
}

fn psql(pg: &Postgres, url: &str, sql: &str) -> String {
    let out = Command::new(pg.psql_path())
        .args([
            "-X",
            "-q",
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
        .expect("run psql");
    assert!(
        out.status.success(),
        "psql `{sql}`: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn spans_follow_the_conventions() {
    let pg = cluster().await;
    let (pool, e) = pool(&pg).await;
    spans_follow_conventions(pool, e).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn parentless_statements_make_no_span() {
    let pg = cluster().await;
    let (pool, e) = pool(&pg).await;
    parentless_statements_have_no_span(pool, e).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn no_literal_reaches_a_span() {
    let pg = cluster().await;
    let (pool, e) = pool(&pg).await;
    literals_never_reach_spans(pool, e).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_carry_sqlstate() {
    let pg = cluster().await;
    let (pool, e) = pool(&pg).await;
    errors_record_status_codes(pool, e).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn transaction_statements_nest() {
    let pg = cluster().await;
    let (pool, e) = pool(&pg).await;
    transactions_nest(pool, e).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pooled_connections_are_traced() {
    let pg = cluster().await;
    let (pool, e) = pool(&pg).await;
    connections_are_traced(pool, e).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn database_down_at_start_up_retries_then_fails_clearly() {
    let port = apprunner_kit_tests::free_port();
    let password = "hunter2-Very-Secret";
    let configs = [
        DbConfig::from_lookup(lookup(&[
            ("DB_HOST", "127.0.0.1".into()),
            ("DB_PORT", port.to_string()),
            ("DB_USER", "app".into()),
            ("DB_PASSWORD", password.into()),
            ("DB_DATABASE", "app".into()),
            ("DB_STARTUP_TIMEOUT", "2s".into()),
            ("DB_CONNECT_TIMEOUT", "500ms".into()),
        ]))
        .unwrap(),
        DbConfig::from_url(format!("postgres://app:{password}@127.0.0.1:{port}/app"))
            .unwrap()
            .startup_timeout(Duration::from_secs(2)),
    ];
    for config in configs {
        let started = Instant::now();
        let err = PgPool::connect_with(config).await.unwrap_err();
        let elapsed = started.elapsed();
        let DbError::Unreachable {
            attempts, waited, ..
        } = &err
        else {
            panic!("expected Unreachable, got {err:?}");
        };
        assert!(*attempts > 1, "retried: {err}");
        assert!(*waited >= Duration::from_millis(1900), "{err}");
        assert!(
            elapsed < Duration::from_secs(10),
            "gave up in time: {elapsed:?}"
        );
        let text = err.to_string();
        assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
        assert!(
            text.to_lowercase().contains("refused"),
            "names the cause: {text}"
        );
        let debug = format!("{err:?}");
        assert!(
            !text.contains(password) && !debug.contains(password),
            "{debug}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn start_up_waits_for_the_database_to_come_up() {
    let pg = Arc::new(cluster().await);
    let url = pg.create_database("late");
    let stopped = Arc::clone(&pg);
    tokio::task::spawn_blocking(move || stopped.stop())
        .await
        .unwrap();
    let connect = tokio::spawn(async move {
        PgPool::connect_with(
            DbConfig::from_url(url)
                .unwrap()
                .startup_timeout(Duration::from_secs(60)),
        )
        .await
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !connect.is_finished(),
        "still retrying while the database is down"
    );
    let restarted = Arc::clone(&pg);
    tokio::task::spawn_blocking(move || restarted.restart())
        .await
        .unwrap();
    let pool = connect
        .await
        .unwrap()
        .expect("connected once the database came up");
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(one, 1);
}

/// Ends the backends running a statement that contains `marker`, from another session (as a
/// server shutting down does: SQLSTATE 57P01 to the client), once they have started.
async fn terminate_running(pg: &Arc<Postgres>, url: &str, marker: &str) {
    when_running(pg, url, marker, "count(pg_terminate_backend(pid))").await;
}

/// Waits until a statement containing `marker` runs (`select` of its rows, e.g. `count(*)`,
/// is not 0), polling from another session.
async fn when_running(pg: &Arc<Postgres>, url: &str, marker: &str, select: &str) {
    let sql = format!(
        "SELECT {select} FROM pg_stat_activity \
         WHERE query LIKE '%{marker}%' AND state = 'active' AND pid <> pg_backend_pid()"
    );
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (pg, url, sql) = (Arc::clone(pg), url.to_owned(), sql.clone());
        let killed = tokio::task::spawn_blocking(move || psql(&pg, &url, &sql))
            .await
            .unwrap();
        if killed != "0" {
            return;
        }
    }
    panic!("no statement containing {marker} ran");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_cut_off_by_a_shutdown_runs_again_on_a_fresh_connection() {
    let pg = Arc::new(cluster().await);
    let url = pg.create_database("reread");
    let pool = PgPool::connect(&url).await.unwrap();
    let read = request("read", async {
        sqlx::query_scalar::<_, i32>("SELECT 7 FROM pg_sleep(0.4) /* cut-read */")
            .fetch_one(&pool)
            .await
    });
    let (read, ()) = tokio::join!(read, terminate_running(&pg, &url, "cut-read"));
    assert_eq!(
        read.output.as_ref().unwrap(),
        &7,
        "the read answered after a retry"
    );
    let spans = read.db_spans(1).await;
    let span = &spans[0];
    assert_ne!(span.status.code, StatusCode::Error, "{}", span.summary());
    let retry = span
        .event("retry")
        .unwrap_or_else(|| panic!("no retry event: {}", span.summary()));
    assert_eq!(
        retry.attributes.get("error.type").and_then(|v| v.as_str()),
        Some("57P01"),
        "{retry:?}"
    );
    assert_eq!(span.attr_i64("db.response.returned_rows"), Some(1));
}

/// A table `events` and a way to count its rows of one kind.
async fn events_table(pool: &PgPool) {
    sqlx::query("CREATE TABLE events (id serial PRIMARY KEY, what text NOT NULL)")
        .execute(pool)
        .await
        .unwrap();
}

async fn count_events(pool: &PgPool, what: &str) -> i64 {
    sqlx::query_scalar::<_, i64>("SELECT count(*) FROM events WHERE what = $1")
        .bind(what)
        .fetch_one(pool)
        .await
        .unwrap()
}

fn slow_insert(what: &str) -> String {
    format!("INSERT INTO events (what) SELECT '{what}' FROM pg_sleep(0.4) /* cut-{what} */")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_write_the_server_ended_with_57p01_was_rolled_back_and_runs_again() {
    let pg = Arc::new(cluster().await);
    let url = pg.create_database("rewrite");
    let pool = PgPool::connect(&url).await.unwrap();
    events_table(&pool).await;
    let write = request("write", async {
        sqlx::query(sqlx::AssertSqlSafe(slow_insert("ended")))
            .execute(&pool)
            .await
    });
    let (write, ()) = tokio::join!(write, terminate_running(&pg, &url, "cut-ended"));
    assert_eq!(write.output.as_ref().unwrap().rows_affected(), 1);
    assert_eq!(count_events(&pool, "ended").await, 1, "once, not twice");
    let spans = write.db_spans(1).await;
    assert!(spans[0].event("retry").is_some(), "{}", spans[0].summary());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_write_whose_connection_drops_is_unavailable_unless_marked_retryable() {
    let pg = Arc::new(cluster().await);
    let url = pg.create_database("dropped");
    let proxy = apprunner_kit_tests::AuroraProxy::start(([127, 0, 0, 1], pg.port()).into()).await;
    let through_proxy = url.replace(&format!(":{}/", pg.port()), &format!(":{}/", proxy.port()));
    let direct = PgPool::connect(&url).await.unwrap();
    events_table(&direct).await;
    let pool = PgPool::connect(&through_proxy).await.unwrap();
    // Once the statement marked `marker` runs, drops every open connection (and lets new ones
    // through at once).
    let cut = |marker: &'static str| {
        let (pg, url, proxy) = (&pg, &url, &proxy);
        async move {
            when_running(pg, url, marker, "count(*)").await;
            proxy.pause(Duration::ZERO);
        }
    };

    // The connection drops with no word from the server: the statement may have run (here it
    // does, the backend finishes it), so an unmarked write is not run twice.
    let plain = sqlx::query(sqlx::AssertSqlSafe(slow_insert("plain"))).execute(&pool);
    let (plain, ()) = tokio::join!(plain, cut("cut-plain"));
    let error = plain.expect_err("an unmarked write is not run twice");
    assert!(apprunner::db::is_unavailable(&error), "{error}");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        count_events(&direct, "plain").await,
        1,
        "it ran once, on the server"
    );

    // The caller's word that the statement may run twice.
    let marked = sqlx::query(sqlx::AssertSqlSafe(slow_insert("marked"))).execute(pool.retryable());
    let (marked, ()) = tokio::join!(marked, cut("cut-marked"));
    assert_eq!(
        marked.expect("a marked write runs again").rows_affected(),
        1
    );
    // A read is run again too.
    let read =
        sqlx::query_scalar::<_, i32>("SELECT 3 FROM pg_sleep(0.4) /* cut-read */").fetch_one(&pool);
    let (read, ()) = tokio::join!(read, cut("cut-read"));
    assert_eq!(read.expect("a read runs again"), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_wait_for_a_database_back_within_the_resume_budget() {
    let pg = Arc::new(cluster().await);
    let url = pg.create_database("outage");
    let pool = PgPool::connect_with(
        DbConfig::from_url(&url)
            .unwrap()
            .acquire_timeout(Duration::from_secs(1))
            .resume_budget(Duration::from_secs(20)),
    )
    .await
    .unwrap();
    sqlx::query("CREATE TABLE events (what text NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    let stopped = Arc::clone(&pg);
    tokio::task::spawn_blocking(move || stopped.stop())
        .await
        .unwrap();
    // Reads and writes arrive while the database is down for ~2.5 s, longer than the
    // acquire timeout: they wait for it, and none fails.
    let work = (0..8).map(|i| {
        let pool = pool.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(200 * i)).await;
            let read = sqlx::query_scalar::<_, i32>("SELECT 1")
                .fetch_one(&pool)
                .await;
            let write = sqlx::query("INSERT INTO events VALUES ('during')")
                .execute(&pool)
                .await;
            (read.map(drop), write.map(drop))
        }
    });
    let restarted = Arc::clone(&pg);
    let restart = async move {
        tokio::time::sleep(Duration::from_millis(2500)).await;
        tokio::task::spawn_blocking(move || restarted.restart())
            .await
            .unwrap();
    };
    let (results, ()) = tokio::join!(futures_util::future::join_all(work), restart);
    for (i, (read, write)) in results.into_iter().enumerate() {
        read.unwrap_or_else(|e| panic!("read {i} failed: {e}"));
        write.unwrap_or_else(|e| panic!("write {i} failed: {e}"));
    }
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 8);
}

#[tokio::test(flavor = "multi_thread")]
async fn past_the_resume_budget_requests_fail_at_once_until_the_database_answers() {
    let pg = Arc::new(cluster().await);
    let url = pg.create_database("budget");
    let pool = PgPool::connect_with(
        DbConfig::from_url(&url)
            .unwrap()
            .acquire_timeout(Duration::from_secs(1))
            .resume_budget(Duration::from_secs(2)),
    )
    .await
    .unwrap();
    let query = |pool: PgPool| async move {
        let req = request("budget", async {
            sqlx::query_scalar::<_, i32>("SELECT 1")
                .fetch_one(&pool)
                .await
        })
        .await;
        let ok = req.output.is_ok();
        (req, ok)
    };
    assert!(query(pool.clone()).await.1);

    let stopped = Arc::clone(&pg);
    tokio::task::spawn_blocking(move || stopped.stop())
        .await
        .unwrap();
    let (down, ok) = query(pool.clone()).await;
    assert!(!ok, "a request while the database is down fails");
    let error = down.output.as_ref().unwrap_err();
    assert!(apprunner::db::is_unavailable(error), "{error}");
    let spans = down.db_spans(1).await;
    assert_eq!(
        spans[0].status.code,
        StatusCode::Error,
        "{}",
        spans[0].summary()
    );
    assert!(spans[0].attr("error.type").is_some());
    // The budget is spent: the next request does not wait for it again.
    let started = Instant::now();
    let error = sqlx::query("SELECT 1").execute(&pool).await.unwrap_err();
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_millis(500),
        "failed at once, not after another budget or acquire timeout: {waited:?} ({error})"
    );
    assert!(error.to_string().contains("DB_RESUME_BUDGET"), "{error}");

    let restarted = Arc::clone(&pg);
    tokio::task::spawn_blocking(move || restarted.restart())
        .await
        .unwrap();
    // The probe goes on meanwhile and notices the database within its backoff (≤ 0.5 s).
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if query(pool.clone()).await.1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not recovered without a new pool"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for _ in 0..3 {
        let (req, ok) = query(pool.clone()).await;
        assert!(ok, "recovered: {:?}", req.output);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_exhausted_pool_is_no_outage_and_fails_at_the_acquire_timeout() {
    let pg = cluster().await;
    let url = pg.create_database("busy");
    let pool = PgPool::connect_with(
        DbConfig::from_url(&url)
            .unwrap()
            .max_connections(1)
            .acquire_timeout(Duration::from_millis(500))
            .resume_budget(Duration::from_secs(60)),
    )
    .await
    .unwrap();
    let held = pool.acquire().await.unwrap();
    let started = Instant::now();
    let error = sqlx::query("SELECT 1").execute(&pool).await.unwrap_err();
    let waited = started.elapsed();
    assert!(matches!(error, sqlx::Error::PoolTimedOut), "{error}");
    assert!(
        waited < Duration::from_secs(10),
        "a busy pool does not wait for the 60 s resume budget: {waited:?}"
    );
    drop(held);
    sqlx::query("SELECT 1").execute(&pool).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn rotated_password_fails_no_request_once_the_secret_holds_it() {
    let pg = cluster().await;
    assert!(
        pg.is_own_cluster(),
        "needs an own cluster to require passwords (pg_hba.conf)"
    );
    let admin = pg.url();
    let passwords = ["first-Pa55-wd", "second-Pa55-wd", "third-Pa55-wd"];
    psql(
        &pg,
        &admin,
        &format!("CREATE ROLE app_rot LOGIN PASSWORD '{}'", passwords[0]),
    );
    psql(&pg, &admin, "CREATE DATABASE rot OWNER app_rot");
    // Require a password from app_rot over TCP (the cluster trusts everyone else).
    let hba = pg.data_dir().unwrap().join("pg_hba.conf");
    let rules = std::fs::read_to_string(&hba).unwrap();
    std::fs::write(
        &hba,
        format!("host all app_rot 127.0.0.1/32 scram-sha-256\n{rules}"),
    )
    .unwrap();
    psql(&pg, &admin, "SELECT pg_reload_conf()");

    let moto = tokio::task::spawn_blocking(SecretsEmulator::start)
        .await
        .unwrap();
    let secret = |password: &str| {
        serde_json::json!({
            "username": "app_rot", "password": password, "engine": "postgres",
            "host": "127.0.0.1", "port": pg.port(), "dbname": "rot",
        })
        .to_string()
    };
    moto.create_secret("prod/users-db", &secret(passwords[0]))
        .await;
    let cache = Arc::new(SecretCache::from_sdk_config(&moto.sdk_config()).unwrap());
    let config = DbConfig::from_lookup(lookup(&[
        ("DB_HOST", "127.0.0.1".into()),
        ("DB_PORT", pg.port().to_string()),
        ("DB_USER", "app_rot".into()),
        ("DB_PASSWORD", passwords[0].into()),
        ("DB_DATABASE", "rot".into()),
        ("DB_POOL_MAX_CONNECTIONS", "2".into()),
    ]))
    .unwrap()
    .credentials(RdsSecretSource::new(cache, "prod/users-db"));
    let pool = PgPool::connect_with(config)
        .await
        .expect("connect with the first password");

    let work = |pool: PgPool| async move {
        request("rotation", async move {
            let user: String = sqlx::query_scalar("SELECT current_user::text")
                .fetch_one(&pool)
                .await?;
            let mut tx = pool.begin().await?;
            sqlx::query("SELECT 1").execute(&mut *tx).await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(user)
        })
        .await
    };
    let kill_sessions =
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = 'app_rot'";
    assert_eq!(work(pool.clone()).await.output.unwrap(), "app_rot");
    assert_eq!(
        moto.get_secret_value_calls("prod/users-db"),
        0,
        "read only when needed"
    );

    // Rotation as Secrets Manager does it: the secret gets the new password, the database too,
    // and connections get replaced (here: killed, so the pool must open new ones).
    moto.update_secret("prod/users-db", &secret(passwords[1]))
        .await;
    psql(
        &pg,
        &admin,
        &format!("ALTER ROLE app_rot PASSWORD '{}'", passwords[1]),
    );
    psql(&pg, &admin, kill_sessions);
    let requests = all_answer(5, "app_rot", || work(pool.clone())).await;
    assert_eq!(
        moto.get_secret_value_calls("prod/users-db"),
        1,
        "one refresh"
    );
    for req in &requests {
        for span in req.db_spans(3).await {
            assert_ne!(span.status.code, StatusCode::Error, "{}", span.summary());
            assert_eq!(span.attr_str("db.user"), Some("app_rot"));
        }
    }

    // The database changes first (the rotation's window): new connections fail until the
    // secret holds the new password, then nothing fails, without restarting anything.
    psql(
        &pg,
        &admin,
        &format!("ALTER ROLE app_rot PASSWORD '{}'", passwords[2]),
    );
    psql(&pg, &admin, kill_sessions);
    let failed = work(pool.clone()).await;
    let error = failed.output.unwrap_err();
    let code = error
        .as_database_error()
        .and_then(|e| e.code())
        .map(|c| c.into_owned());
    assert_eq!(code.as_deref(), Some("28P01"), "{error}");
    moto.update_secret("prod/users-db", &secret(passwords[2]))
        .await;
    // No waiting: a refresh that started after the last failed one reads the new value.
    all_answer(5, "app_rot", || work(pool.clone())).await;
    assert_nowhere(&passwords);
}

#[tokio::test(flavor = "multi_thread")]
async fn migrations_run_once_for_instances_starting_together() {
    let pg = cluster().await;
    let url = pg.create_database("migrated");
    let start = || {
        let config = DbConfig::from_url(url.clone())
            .unwrap()
            .migrations(sqlx::migrate!("./db_migrations"));
        tokio::spawn(PgPool::connect_with(config))
    };
    let (a, b) = (start(), start());
    let (a, b) = (a.await.unwrap().unwrap(), b.await.unwrap().unwrap());
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&a)
        .await
        .unwrap();
    assert_eq!(applied, 2);
    sqlx::query("INSERT INTO accounts (email) VALUES ($1)")
        .bind("first@example.com")
        .execute(&b)
        .await
        .unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM accounts")
        .fetch_one(&a)
        .await
        .unwrap();
    assert_eq!(n, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn connects_from_db_variables() {
    let pg = cluster().await;
    let url = pg.create_database("vars");
    let database = url.rsplit('/').next().unwrap().to_owned();
    let config = DbConfig::from_lookup(lookup(&[
        ("DB_HOST", pg.host()),
        ("DB_PORT", pg.port().to_string()),
        ("DB_USER", pg.user().into()),
        ("DB_DATABASE", database.clone()),
    ]))
    .unwrap();
    let pool = PgPool::connect_with(config).await.unwrap();
    let current: String = sqlx::query_scalar("SELECT current_database()::text")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(current, database);
}
