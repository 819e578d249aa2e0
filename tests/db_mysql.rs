//! `apprunner::db` on MariaDB (a throwaway server, or `APPRUNNER_TEST_MYSQL_URL`): the same
//! scenarios as on PostgreSQL and SQLite, with MySQL's error numbers and quoting, and the
//! detection of MariaDB behind a `mysql://` URL.
//!
//! One server for the whole binary (starting one takes seconds): a single test runs every
//! scenario, each on a fresh database.

#[macro_use]
#[path = "db_common/mod.rs"]
mod common;

use apprunner::db::{DbConfig, MySqlPool};
use apprunner_kit_tests::MariaDb;
use common::*;

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
async fn mariadb_statements_are_traced() {
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
}
