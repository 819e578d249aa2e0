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

#[tokio::test(flavor = "multi_thread")]
async fn restart_mid_run_fails_fast_then_recovers() {
    let pg = Arc::new(cluster().await);
    let url = pg.create_database("restart");
    let pool = PgPool::connect_with(
        DbConfig::from_url(url)
            .unwrap()
            .acquire_timeout(Duration::from_secs(1)),
    )
    .await
    .unwrap();
    let query = |pool: PgPool| async move {
        let req = request("restart", async {
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
    let started = Instant::now();
    let (down, ok) = query(pool.clone()).await;
    assert!(!ok, "a request while the database is down fails");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "fails fast (acquire timeout 1 s): {:?}",
        started.elapsed()
    );
    let spans = down.db_spans(1).await;
    assert_eq!(
        spans[0].status.code,
        StatusCode::Error,
        "{}",
        spans[0].summary()
    );
    assert!(spans[0].attr("error.type").is_some());

    let restarted = Arc::clone(&pg);
    tokio::task::spawn_blocking(move || restarted.restart())
        .await
        .unwrap();
    for _ in 0..3 {
        let (req, ok) = query(pool.clone()).await;
        assert!(ok, "recovered without a new pool: {:?}", req.output);
    }
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
    // The pool asks the source at most once a second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
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
