//! `apprunner::db` on SQLite (in memory): the spans that reach a real OTLP receiver, the
//! `query!` macros, and the tracing options.
//!
//! The global subscriber exports to one receiver per process (see `db_common`); each test finds
//! its spans by its request's trace id.

#[macro_use]
#[path = "db_common/mod.rs"]
mod common;

use apprunner::db::{DbConfig, QueryText, SqlitePool};
use common::*;

scenarios!(sqlx::Sqlite);

async fn connect(config: DbConfig) -> (SqlitePool, Expect) {
    let pool = SqlitePool::connect_with(config).await.expect("connect");
    sqlx::query(DDL).execute(&pool).await.expect("create table");
    let expect = Expect {
        system: "sqlite",
        namespace: ":memory:".into(),
        server: None,
        user: None,
        placeholder: |_| "?".into(),
        // SQLITE_CONSTRAINT_UNIQUE, SQLITE_ERROR
        unique_violation: "2067",
        syntax_error: "1",
    };
    (pool, expect)
}

fn memory() -> DbConfig {
    DbConfig::from_url("sqlite::memory:").unwrap()
}

async fn pool() -> (SqlitePool, Expect) {
    connect(memory()).await
}

#[tokio::test(flavor = "multi_thread")]
async fn spans_follow_the_conventions() {
    let (pool, e) = pool().await;
    spans_follow_conventions(pool, e).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn parentless_statements_make_no_span() {
    let (pool, e) = pool().await;
    parentless_statements_have_no_span(pool, e).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn no_literal_reaches_a_span() {
    let (pool, e) = pool().await;
    literals_never_reach_spans(pool, e).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_carry_result_codes() {
    let (pool, e) = pool().await;
    errors_record_status_codes(pool, e).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn transaction_statements_nest() {
    let (pool, e) = pool().await;
    transactions_nest(pool, e).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pooled_connections_are_traced() {
    let (pool, e) = pool().await;
    connections_are_traced(pool, e).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn query_macros_are_traced() {
    let (pool, e) = pool().await;
    let req = request("macros", async {
        let row = sqlx::query!(
            "SELECT count(*) AS n FROM sqlite_master WHERE type = ?",
            "table"
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(row.n, 1);
        let n: i64 =
            sqlx::query_scalar!("SELECT count(*) FROM sqlite_master WHERE name = ?", "users")
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(n, 1);
        let mut tx = pool.begin().await.unwrap();
        let names = sqlx::query!("SELECT name FROM sqlite_master WHERE type = 'table'")
            .fetch_all(&mut *tx)
            .await
            .unwrap();
        assert_eq!(names.len(), 1);
        tx.commit().await.unwrap();
    })
    .await;
    let spans = req.db_spans(5).await;
    assert_eq!(
        names(&spans),
        [
            "SELECT sqlite_master",
            "SELECT sqlite_master",
            "BEGIN",
            "SELECT sqlite_master",
            "COMMIT"
        ]
    );
    for span in &spans {
        e.assert_common(span);
    }
    assert_eq!(
        spans[0].attr_str("db.query.text"),
        Some("SELECT count(*) AS n FROM sqlite_master WHERE type = ?")
    );
    assert_eq!(
        spans[3].attr_str("db.query.text"),
        Some("SELECT name FROM sqlite_master WHERE type = ?")
    );
    assert_eq!(spans[3].attr_i64("db.response.returned_rows"), Some(1));
}

#[tokio::test(flavor = "multi_thread")]
async fn root_spans_are_opt_in() {
    let (pool, _) = connect(memory().root_spans(true)).await;
    let marker = unique("root_");
    sqlx::query(sqlx::AssertSqlSafe(format!("SELECT 1 AS {marker}")))
        .execute(&pool)
        .await
        .unwrap();
    let text = format!("SELECT ? AS {marker}");
    let span = wait_for_span(|s| s.attr_str("db.query.text") == Some(text.as_str())).await;
    assert!(span.is_root(), "{}", span.summary());
    assert_eq!(span.kind, apprunner_kit_tests::SpanKind::Client);
    assert_eq!(span.name, "SELECT");
}

#[tokio::test(flavor = "multi_thread")]
async fn unsampled_requests_record_no_statement() {
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
    };
    use tracing::Instrument as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;

    // Even with root spans on: an unsampled parent is a parent, not the absence of one.
    let (pool, _) = connect(memory().root_spans(true)).await;
    init();
    let unsampled = unique("unsampled_");
    // A request whose caller decided not to sample it (X-Ray `Sampled=0`).
    let span = tracing::info_span!("request", otel.kind = "server");
    let remote = SpanContext::new(
        TraceId::from(0x5759e988_bd862e3f_e1be46a9_94272793_u128),
        SpanId::from(0x53995c3f42cd8ad8_u64),
        TraceFlags::default(),
        true,
        TraceState::default(),
    );
    let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
    sqlx::query(sqlx::AssertSqlSafe(format!("SELECT 1 AS {unsampled}")))
        .execute(&pool)
        .instrument(span)
        .await
        .unwrap();
    let sampled = unique("sampled_");
    let req = request("sampled", async {
        sqlx::query(sqlx::AssertSqlSafe(format!("SELECT 1 AS {sampled}")))
            .execute(&pool)
            .await
            .unwrap();
    })
    .await;
    assert_eq!(req.db_spans(1).await.len(), 1);
    assert_nowhere(&[&unsampled]);
}

#[tokio::test(flavor = "multi_thread")]
async fn query_text_can_be_raw_or_off() {
    let (raw, _) = connect(memory().query_text(QueryText::Raw)).await;
    let (off, _) = connect(
        memory()
            .query_text(QueryText::Off)
            .legacy_attributes(false)
            .peer_service("local-db"),
    )
    .await;
    let req = request("text modes", async {
        sqlx::query("SELECT id FROM users WHERE email = 'raw@example.com'")
            .execute(&raw)
            .await
            .unwrap();
        sqlx::query("SELECT id FROM users WHERE email = 'off@example.com'")
            .execute(&off)
            .await
            .unwrap();
    })
    .await;
    let spans = req.db_spans(2).await;
    assert_eq!(names(&spans), ["SELECT users", "SELECT users"]);
    let (raw, off) = (&spans[0], &spans[1]);
    assert_eq!(
        raw.attr_str("db.query.text"),
        Some("SELECT id FROM users WHERE email = 'raw@example.com'")
    );
    assert_eq!(raw.attr_str("db.statement"), raw.attr_str("db.query.text"));
    assert_eq!(off.attr("db.query.text"), None, "{}", off.summary());
    assert_eq!(off.attr("db.statement"), None);
    assert_eq!(off.attr("db.system"), None, "legacy keys are off");
    assert_eq!(off.attr_str("db.system.name"), Some("sqlite"));
    assert_eq!(off.attr_str("peer.service"), Some("local-db"));
    assert_eq!(off.attr_str("db.operation.name"), Some("SELECT"));
    assert_ne!(off.status.code, StatusCode::Error);
}

#[tokio::test(flavor = "multi_thread")]
async fn connects_from_db_variables() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.db").display().to_string();
    let config = DbConfig::from_lookup(|key| match key {
        "DB_ENGINE" => Some("sqlite".into()),
        "DB_DATABASE" => Some(file.clone()),
        "DB_POOL_MAX_CONNECTIONS" => Some("2".into()),
        _ => None,
    })
    .unwrap();
    let pool = SqlitePool::connect_with(config).await.unwrap();
    sqlx::query(DDL).execute(&pool).await.unwrap();
    let req = request("file", async {
        sqlx::query("INSERT INTO users VALUES (1, 'a@example.com', 0)")
            .execute(&pool)
            .await
            .unwrap();
    })
    .await;
    let spans = req.db_spans(1).await;
    assert_eq!(spans[0].attr_str("db.namespace"), Some(file.as_str()));
    assert!(std::path::Path::new(&file).exists());
    pool.close().await;
}
