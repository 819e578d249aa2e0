//! Verified TLS to PostgreSQL: a throwaway cluster that accepts TCP connections over TLS only,
//! with a server certificate for `localhost` issued by a test CA, and `apprunner::db` connecting
//! with `DB_SSL_MODE` / `DB_SSL_ROOT_CERT` (or the URL's `sslmode` / `sslrootcert`).

use std::path::Path;
use std::time::{Duration, Instant};

use apprunner::db::{DbConfig, DbError, PgPool, SslMode};
use apprunner_kit_tests::{Postgres, TestCa};

const PASSWORD: &str = "never-print-this-0xC0FFEE";

/// The CA, and a cluster whose certificate names `localhost` only (not `127.0.0.1`).
async fn tls_cluster() -> (TestCa, Postgres) {
    tokio::task::spawn_blocking(|| {
        let ca = TestCa::generate();
        let (cert, key) = ca.issue_server_cert(&["localhost"]);
        let pg = Postgres::start_with_tls(&cert, &key);
        (ca, pg)
    })
    .await
    .unwrap()
}

/// A configuration of the `DB_*` parts, with a short start-up deadline: a TLS failure must not
/// be retried, so these tests would time out into `DbError::Unreachable` if it were.
fn parts(pg: &Postgres, host: &str, mode: &str, ca: &Path) -> DbConfig {
    let port = pg.port().to_string();
    let ca = ca.display().to_string();
    let mode = mode.to_owned();
    let host = host.to_owned();
    DbConfig::from_lookup(move |key| match key {
        "DB_HOST" => Some(host.clone()),
        "DB_PORT" => Some(port.clone()),
        "DB_USER" => Some("postgres".into()),
        "DB_PASSWORD" => Some(PASSWORD.into()),
        "DB_DATABASE" => Some("postgres".into()),
        "DB_SSL_MODE" => Some(mode.clone()),
        "DB_SSL_ROOT_CERT" => Some(ca.clone()),
        "DB_STARTUP_TIMEOUT" => Some("20s".into()),
        _ => None,
    })
    .expect("config")
}

async fn uses_tls(pool: &PgPool) -> bool {
    sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(pool)
        .await
        .expect("query pg_stat_ssl")
}

/// Connects, expecting `DbError::Tls` quickly (no retries until the deadline).
async fn tls_error(config: DbConfig) -> (String, DbError) {
    let started = Instant::now();
    let err = PgPool::connect_with(config)
        .await
        .expect_err("the connection must fail");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "a TLS failure was retried: {err}"
    );
    assert!(
        matches!(err, DbError::Tls { .. }),
        "not DbError::Tls: {err:?}"
    );
    let text = err.to_string();
    assert!(!text.contains(PASSWORD), "the password leaked: {text}");
    assert!(
        !format!("{err:?}").contains(PASSWORD),
        "the password leaked: {err:?}"
    );
    (text, err)
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_full_with_the_right_ca_and_host_connects_over_tls() {
    let (ca, pg) = tls_cluster().await;

    let pool = PgPool::connect_with(parts(&pg, "localhost", "verify-full", &ca.ca_cert_path()))
        .await
        .expect("verify-full with the right CA and host name");
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(one, 1);
    assert!(uses_tls(&pool).await, "the connection is not TLS");
    pool.close().await;

    // The same through DATABASE_URL's query string.
    let url = format!(
        "postgres://postgres@localhost:{}/postgres?sslmode=verify-full&sslrootcert={}",
        pg.port(),
        ca.ca_cert_path().display()
    );
    let pool = PgPool::connect_with(DbConfig::from_url(url).unwrap())
        .await
        .expect("verify-full from the URL");
    assert!(uses_tls(&pool).await);
    pool.close().await;

    // And with the builder, which wins over the variables (here: a wrong mode name would fail).
    let config = parts(&pg, "localhost", "disable", Path::new("/nonexistent.pem"))
        .ssl_mode(SslMode::VerifyFull)
        .ssl_root_cert(ca.ca_cert_path());
    let pool = PgPool::connect_with(config)
        .await
        .expect("builder settings");
    assert!(uses_tls(&pool).await);
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_ca_is_a_tls_error_naming_host_mode_and_ca_file() {
    let (_ca, pg) = tls_cluster().await;
    let other = tokio::task::spawn_blocking(TestCa::generate).await.unwrap();

    let (text, _) = tls_error(parts(
        &pg,
        "localhost",
        "verify-full",
        &other.ca_cert_path(),
    ))
    .await;
    let ca_file = other.ca_cert_path().display().to_string();
    for part in [
        format!("localhost:{}", pg.port()),
        "verify-full (DB_SSL_MODE)".to_owned(),
        format!("{ca_file} (DB_SSL_ROOT_CERT)"),
        "DB_SSL_ROOT_CERT".to_owned(),
    ] {
        assert!(text.contains(&part), "{part:?} missing from: {text}");
    }

    // verify-ca checks the chain too.
    let (text, _) = tls_error(parts(&pg, "localhost", "verify-ca", &other.ca_cert_path())).await;
    assert!(text.contains("verify-ca (DB_SSL_MODE)"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_host_name_not_in_the_certificate_fails_verify_full_only() {
    let (ca, pg) = tls_cluster().await;

    // The certificate names `localhost`; 127.0.0.1 is the same server under another name.
    let (text, _) = tls_error(parts(&pg, "127.0.0.1", "verify-full", &ca.ca_cert_path())).await;
    assert!(text.contains(&format!("127.0.0.1:{}", pg.port())), "{text}");
    assert!(text.contains("verify-full (DB_SSL_MODE)"), "{text}");
    assert!(text.contains("DB_HOST"), "{text}");

    // verify-ca checks the chain, not the name.
    let pool = PgPool::connect_with(parts(&pg, "127.0.0.1", "verify-ca", &ca.ca_cert_path()))
        .await
        .expect("verify-ca ignores the host name");
    assert!(uses_tls(&pool).await);
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn require_encrypts_without_checking_the_certificate() {
    let (_ca, pg) = tls_cluster().await;
    let other = tokio::task::spawn_blocking(TestCa::generate).await.unwrap();

    // `require`: TLS, but neither the chain (a foreign CA) nor the name (127.0.0.1) is checked.
    let pool = PgPool::connect_with(parts(&pg, "127.0.0.1", "require", &other.ca_cert_path()))
        .await
        .expect("require connects whatever the certificate");
    assert!(uses_tls(&pool).await);
    pool.close().await;

    // `disable`: the server (hostssl only) turns the plain connection away.
    let err = PgPool::connect_with(parts(&pg, "localhost", "disable", &other.ca_cert_path()))
        .await
        .expect_err("a plain connection is rejected by pg_hba");
    assert!(!matches!(err, DbError::Tls { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_ca_file_stops_start_up_before_connecting() {
    // No server at all: the check happens before the first connection attempt.
    let config = DbConfig::from_lookup(|key| match key {
        "DB_HOST" => Some("localhost".into()),
        "DB_SSL_MODE" => Some("verify-full".into()),
        "DB_SSL_ROOT_CERT" => Some("/nonexistent/rds/global-bundle.pem".into()),
        _ => None,
    })
    .unwrap();
    let err = PgPool::connect_with(config).await.unwrap_err();
    assert!(
        matches!(
            err,
            DbError::InvalidConfig {
                var: "DB_SSL_ROOT_CERT",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("/nonexistent/rds/global-bundle.pem"),
        "{err}"
    );

    let err = DbConfig::from_lookup(|key| match key {
        "DB_HOST" => Some("localhost".into()),
        "DB_SSL_MODE" => Some("verify_everything".into()),
        _ => None,
    })
    .unwrap_err();
    assert!(
        matches!(
            err,
            DbError::InvalidConfig {
                var: "DB_SSL_MODE",
                ..
            }
        ),
        "{err:?}"
    );
}
