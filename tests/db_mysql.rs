//! `apprunner::db` on MariaDB (a throwaway server, or `APPRUNNER_TEST_MYSQL_URL`): the same
//! scenarios as on PostgreSQL and SQLite, with MySQL's error numbers and quoting, the
//! detection of MariaDB behind a `mysql://` URL, and password rotation through Secrets
//! Manager (moto) when the server answers error 1045.
//!
//! One server for the whole binary (starting one takes seconds): a single test runs every
//! scenario, each on a fresh database.

#[macro_use]
#[path = "db_common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use apprunner::db::{DbConfig, MySqlPool, RdsSecretSource};
use apprunner::secrets::SecretCache;
use apprunner_kit_tests::{MariaDb, SecretsEmulator};
use common::*;
use sqlx::mysql::MySqlDatabaseError;

scenarios!(sqlx::MySql);

async fn pool(server: &MariaDb, system: &'static str) -> (MySqlPool, Expect) {
    let url = server.create_database("app");
    let pool = MySqlPool::connect_with(DbConfig::from_url(url.clone()).unwrap())
        .await
        .expect("connect");
    sqlx::query(DDL).execute(&pool).await.expect("create table");
    let database = url.rsplit('/').next().unwrap().to_owned();
    let user = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .map(|(userinfo, _)| userinfo.split(':').next().unwrap_or_default().to_owned());
    let expect = Expect {
        system,
        namespace: database,
        server: Some((server.host(), i64::from(server.port()))),
        user,
        placeholder: |_| "?".into(),
        // ER_DUP_ENTRY, ER_PARSE_ERROR
        unique_violation: "1062",
        syntax_error: "1064",
    };
    (pool, expect)
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_scenarios() {
    let server = tokio::task::spawn_blocking(MariaDb::start).await.unwrap();
    // What the server is decides db.system.name (MariaDB is detected behind mysql://).
    let probe = MySqlPool::connect(&server.create_database("probe"))
        .await
        .unwrap();
    let version: String = sqlx::query_scalar("SELECT VERSION()")
        .fetch_one(probe.as_sqlx())
        .await
        .unwrap();
    let system = if version.to_lowercase().contains("mariadb") {
        "mariadb"
    } else {
        "mysql"
    };

    let (p, e) = pool(&server, system).await;
    spans_follow_conventions(p, e).await;
    let (p, e) = pool(&server, system).await;
    parentless_statements_have_no_span(p, e).await;
    let (p, e) = pool(&server, system).await;
    literals_never_reach_spans(p, e).await;
    let (p, e) = pool(&server, system).await;
    errors_record_status_codes(p, e).await;
    let (p, e) = pool(&server, system).await;
    transactions_nest(p, e).await;
    let (p, e) = pool(&server, system).await;
    connections_are_traced(p, e).await;
    rotated_password_fails_no_request_once_the_secret_holds_it(&server).await;
}

/// MySQL's error number (`ER_…`), if `error` is one from the server.
fn mysql_error_number(error: &sqlx::Error) -> Option<u16> {
    error
        .as_database_error()?
        .try_downcast_ref::<MySqlDatabaseError>()
        .map(MySqlDatabaseError::number)
}

/// Kills every session of `user` (as a rotation replaces connections) and waits until they are
/// gone; returns how many there were.
async fn kill_sessions(admin: &sqlx::MySqlPool, user: &str) -> usize {
    let count = "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = ?";
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT CAST(ID AS CHAR) FROM information_schema.PROCESSLIST WHERE USER = ?",
    )
    .bind(user)
    .fetch_all(admin)
    .await
    .expect("list the sessions");
    for id in &ids {
        match sqlx::raw_sql(AssertSqlSafe(format!("KILL {id}")))
            .execute(admin)
            .await
        {
            // ER_NO_SUCH_THREAD: it ended meanwhile.
            Err(e) if mysql_error_number(&e) != Some(1094) => panic!("KILL {id}: {e}"),
            _ => {}
        }
    }
    // KILL does not wait for the session to end.
    let deadline = Instant::now() + WAIT;
    loop {
        let left: i64 = sqlx::query_scalar(count)
            .bind(user)
            .fetch_one(admin)
            .await
            .expect("count the sessions");
        if left == 0 {
            return ids.len();
        }
        assert!(
            Instant::now() < deadline,
            "{left} sessions of {user} still there after KILL"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// As on PostgreSQL: a rotated password fails no request once the secret holds it. MySQL
/// rejects the stale password with error 1045 (`ER_ACCESS_DENIED_ERROR`, SQLSTATE 28000); the
/// pool then reads the secret again and retries.
async fn rotated_password_fails_no_request_once_the_secret_holds_it(server: &MariaDb) {
    let database = server
        .create_database("rot")
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    // Unique per process, like the databases (APPRUNNER_TEST_MYSQL_URL may name a shared
    // server).
    let user = format!("app_rot_{}", std::process::id());
    let passwords = ["first-Pa55-wd", "second-Pa55-wd", "third-Pa55-wd"];
    // Host '%': the pool connects over TCP from 127.0.0.1, and the server resolves no names
    // (--skip-name-resolve), so a 'localhost' account would never match.
    server.sql(&format!(
        "DROP USER IF EXISTS '{user}'@'%'; \
         CREATE USER '{user}'@'%' IDENTIFIED BY '{}'; \
         GRANT ALL PRIVILEGES ON `{database}`.* TO '{user}'@'%'",
        passwords[0]
    ));
    let alter = |password: &str| {
        server.sql(&format!(
            "ALTER USER '{user}'@'%' IDENTIFIED BY '{password}'"
        ));
    };
    let admin = sqlx::MySqlPool::connect(&server.url())
        .await
        .expect("connect as the administrator");

    let moto = tokio::task::spawn_blocking(SecretsEmulator::start)
        .await
        .unwrap();
    let secret = |password: &str| {
        serde_json::json!({
            "username": user, "password": password, "engine": "mysql",
            "host": server.host(), "port": server.port(), "dbname": database,
        })
        .to_string()
    };
    moto.create_secret("prod/users-db", &secret(passwords[0]))
        .await;
    let cache = Arc::new(SecretCache::from_sdk_config(&moto.sdk_config()).unwrap());
    let config = DbConfig::from_lookup(lookup(&[
        ("DB_ENGINE", "mysql".into()),
        ("DB_HOST", server.host()),
        ("DB_PORT", server.port().to_string()),
        ("DB_USER", user.clone()),
        ("DB_PASSWORD", passwords[0].into()),
        ("DB_DATABASE", database.clone()),
        ("DB_POOL_MAX_CONNECTIONS", "2".into()),
    ]))
    .unwrap()
    .credentials(RdsSecretSource::new(cache, "prod/users-db"));
    let pool = MySqlPool::connect_with(config)
        .await
        .expect("connect with the first password");

    let work = |pool: MySqlPool| async move {
        request("rotation", async move {
            let account: String = sqlx::query_scalar("SELECT CURRENT_USER()")
                .fetch_one(&pool)
                .await?;
            let mut tx = pool.begin().await?;
            sqlx::query("SELECT 1").execute(&mut *tx).await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(account)
        })
        .await
    };
    // The account the server matched.
    let account = format!("{user}@%");
    assert_eq!(work(pool.clone()).await.output.unwrap(), account);
    assert_eq!(
        moto.get_secret_value_calls("prod/users-db"),
        0,
        "read only when needed"
    );

    // Rotation as Secrets Manager does it: the secret gets the new password, the database too,
    // and connections get replaced (here: killed, so the pool must open new ones).
    moto.update_secret("prod/users-db", &secret(passwords[1]))
        .await;
    alter(passwords[1]);
    assert!(
        kill_sessions(&admin, &user).await > 0,
        "the pool kept a connection"
    );
    let requests = all_answer(5, &account, || work(pool.clone())).await;
    assert_eq!(
        moto.get_secret_value_calls("prod/users-db"),
        1,
        "one refresh"
    );
    for req in &requests {
        for span in req.db_spans(3).await {
            assert_ne!(span.status.code, StatusCode::Error, "{}", span.summary());
            assert_eq!(span.attr_str("db.user"), Some(user.as_str()));
        }
    }

    // The database changes first (the rotation's window): new connections fail until the
    // secret holds the new password, then nothing fails, without restarting anything.
    alter(passwords[2]);
    assert!(kill_sessions(&admin, &user).await > 0);
    let failed = work(pool.clone()).await;
    let error = failed.output.unwrap_err();
    // ER_ACCESS_DENIED_ERROR, whose SQLSTATE is 28000.
    assert_eq!(mysql_error_number(&error), Some(1045), "{error}");
    let code = error
        .as_database_error()
        .and_then(|e| e.code())
        .map(|c| c.into_owned());
    assert_eq!(code.as_deref(), Some("28000"), "{error}");
    let refreshes = moto.get_secret_value_calls("prod/users-db");
    moto.update_secret("prod/users-db", &secret(passwords[2]))
        .await;
    // The pool asks the source at most once a second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    all_answer(5, &account, || work(pool.clone())).await;
    assert_eq!(
        moto.get_secret_value_calls("prod/users-db"),
        refreshes + 1,
        "one refresh once the secret holds the new password"
    );
    pool.close().await;
    server.sql(&format!("DROP USER IF EXISTS '{user}'@'%'"));
    assert_nowhere(&passwords);
}
