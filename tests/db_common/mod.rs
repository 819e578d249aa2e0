//! Shared by the `db_*` test binaries: one telemetry pipeline per process (the global subscriber
//! exports to a real OTLP receiver), request spans, span queries, and the scenarios every
//! engine runs (`scenarios!`).
//!
//! Each binary is its own process, so installing the global subscriber here touches no other
//! test. Tests of one binary run in parallel and share the receiver: each finds its spans by
//! the trace id of its own request span.

#![allow(dead_code, unreachable_pub)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use apprunner::telemetry::{TelemetryConfig, TelemetryGuard};
use apprunner_kit_tests::{OtlpReceiver, SpanKind, SpanRecord, StatusCode};
use opentelemetry::trace::TraceContextExt as _;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

pub const WAIT: Duration = Duration::from_secs(20);

struct Telemetry {
    receiver: OtlpReceiver,
    guard: Mutex<TelemetryGuard>,
}

fn telemetry() -> &'static Telemetry {
    static TELEMETRY: OnceLock<Telemetry> = OnceLock::new();
    TELEMETRY.get_or_init(|| {
        let receiver = OtlpReceiver::start_blocking();
        let guard = TelemetryConfig::from_lookup(|key| match key {
            // Quiet logs (they go to stdout, which the test harness does not capture).
            "RUST_LOG" => Some("error".to_owned()),
            "OTEL_BSP_SCHEDULE_DELAY" => Some("100".to_owned()),
            _ => None,
        })
        .expect("telemetry configuration")
        .service_name("db-tests")
        .otlp_endpoint(receiver.grpc_endpoint())
        .install_subscriber(true)
        .init()
        .expect("telemetry init");
        Telemetry {
            receiver,
            guard: Mutex::new(guard),
        }
    })
}

/// Installs telemetry (once per process).
pub fn init() {
    let _ = telemetry();
}

/// Exports every finished span now.
pub async fn flush() {
    tokio::task::spawn_blocking(|| {
        telemetry()
            .guard
            .lock()
            .unwrap()
            .force_flush()
            .expect("flush spans");
    })
    .await
    .unwrap();
}

/// Every span received so far.
pub fn all_spans() -> Vec<SpanRecord> {
    telemetry().receiver.spans()
}

/// Flushes, then waits for a span matching `predicate` and returns it.
pub async fn wait_for_span(mut predicate: impl FnMut(&SpanRecord) -> bool) -> SpanRecord {
    init();
    flush().await;
    let spans = telemetry()
        .receiver
        .wait_until(|spans| spans.iter().any(&mut predicate), WAIT)
        .await;
    spans.into_iter().find(predicate).expect("a matching span")
}

/// A request as the HTTP layer would make it: a SERVER root span around `work`.
pub struct Request<T> {
    pub output: T,
    pub trace_id: String,
    pub span_id: String,
}

/// Runs `n` requests one after the other, each made by `work`; every one must answer
/// `Ok(expected)`. Returns them, for their spans.
pub async fn all_answer<E: std::fmt::Debug, F, Fut>(
    n: usize,
    expected: &str,
    mut work: F,
) -> Vec<Request<Result<String, E>>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Request<Result<String, E>>>,
{
    let mut requests = Vec::with_capacity(n);
    for _ in 0..n {
        let req = work().await;
        assert_eq!(
            req.output.as_deref().ok(),
            Some(expected),
            "{:?}",
            req.output
        );
        requests.push(req);
    }
    requests
}

/// A lookup over `vars`, for `DbConfig::from_lookup`.
pub fn lookup(vars: &[(&str, String)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: std::collections::HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    move |key| map.get(key).cloned()
}

pub async fn request<T>(name: &str, work: impl Future<Output = T>) -> Request<T> {
    init();
    let span = tracing::info_span!("request", otel.name = name, otel.kind = "server");
    let cx = span.context();
    let ids = cx.span().span_context().clone();
    let output = work.instrument(span).await;
    Request {
        output,
        trace_id: ids.trace_id().to_string(),
        span_id: ids.span_id().to_string(),
    }
}

impl<T> Request<T> {
    /// The spans of this request's trace (the request span excluded), in start order, once
    /// the request span and at least `min` others have arrived.
    pub async fn spans(&self, min: usize) -> Vec<SpanRecord> {
        flush().await;
        let trace = self.trace_id.clone();
        let root = self.span_id.clone();
        let spans = telemetry()
            .receiver
            .wait_until(
                |spans| {
                    spans.iter().any(|s| s.span_id == root)
                        && spans.iter().filter(|s| s.trace_id == trace).count() > min
                },
                WAIT,
            )
            .await;
        let mut ours: Vec<SpanRecord> = spans
            .into_iter()
            .filter(|s| s.trace_id == self.trace_id && s.span_id != self.span_id)
            .collect();
        ours.sort_by_key(|s| s.start_time_unix_nano);
        ours
    }

    /// The database spans of this request, asserting each is a CLIENT child of the request.
    pub async fn db_spans(&self, min: usize) -> Vec<SpanRecord> {
        let spans: Vec<SpanRecord> = self
            .spans(min)
            .await
            .into_iter()
            .filter(|s| s.attr("db.system.name").is_some())
            .collect();
        for span in &spans {
            assert_eq!(span.kind, SpanKind::Client, "{}", span.summary());
            assert_eq!(
                span.parent_span_id.as_deref(),
                Some(self.span_id.as_str()),
                "not a child of the request: {}",
                span.summary()
            );
        }
        spans
    }
}

/// A marker unique in this process run.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}{}x{nanos}x{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Every text a span carries: name, attribute values, status message, events.
pub fn texts(span: &SpanRecord) -> Vec<String> {
    let mut out = vec![span.name.clone(), span.status.message.clone()];
    out.extend(span.attributes.iter().map(|(k, v)| format!("{k}={v}")));
    for event in &span.events {
        out.push(event.name.clone());
        out.extend(event.attributes.iter().map(|(k, v)| format!("{k}={v}")));
    }
    out
}

/// Panics if any span received so far carries any of `secrets`.
pub fn assert_nowhere(secrets: &[&str]) {
    for span in all_spans() {
        for text in texts(&span) {
            for secret in secrets {
                assert!(
                    !text.contains(secret),
                    "{secret:?} leaked into a span: {text}\n{}",
                    span.summary()
                );
            }
        }
    }
}

/// The span named `name` (exactly one).
pub fn one<'a>(spans: &'a [SpanRecord], name: &str) -> &'a SpanRecord {
    let found: Vec<_> = spans.iter().filter(|s| s.name == name).collect();
    assert_eq!(
        found.len(),
        1,
        "expected one span {name:?}, got:\n{}",
        spans
            .iter()
            .map(SpanRecord::summary)
            .collect::<Vec<_>>()
            .join("\n")
    );
    found[0]
}

pub fn names(spans: &[SpanRecord]) -> Vec<&str> {
    spans.iter().map(|s| s.name.as_str()).collect()
}

/// What a database's spans must say.
#[derive(Clone, Debug)]
pub struct Expect {
    /// `db.system.name`.
    pub system: &'static str,
    /// `db.namespace`.
    pub namespace: String,
    /// `server.address`, `server.port`.
    pub server: Option<(String, i64)>,
    /// `db.user`.
    pub user: Option<String>,
    /// The n-th (1-based) placeholder.
    pub placeholder: fn(usize) -> String,
    /// `db.response.status_code` of a unique violation.
    pub unique_violation: &'static str,
    /// `db.response.status_code` of a syntax error.
    pub syntax_error: &'static str,
}

impl Expect {
    pub fn ph(&self, n: usize) -> String {
        (self.placeholder)(n)
    }

    /// Asserts the attributes every statement span carries.
    pub fn assert_common(&self, span: &SpanRecord) {
        let s = span.summary();
        assert_eq!(span.attr_str("db.system.name"), Some(self.system), "{s}");
        assert_eq!(
            span.attr_str("db.namespace"),
            Some(self.namespace.as_str()),
            "{s}"
        );
        match &self.server {
            Some((host, port)) => {
                assert_eq!(span.attr_str("server.address"), Some(host.as_str()), "{s}");
                assert_eq!(span.attr_i64("server.port"), Some(*port), "{s}");
                let peer = format!("{}@{host}", self.namespace);
                assert_eq!(span.attr_str("peer.service"), Some(peer.as_str()), "{s}");
            }
            None => {
                assert_eq!(span.attr("server.address"), None, "{s}");
                assert_eq!(span.attr("peer.service"), None, "{s}");
            }
        }
        // Legacy keys for the X-Ray exporter.
        assert_eq!(span.attr_str("db.system"), Some(self.system), "{s}");
        assert_eq!(
            span.attr_str("db.name"),
            Some(self.namespace.as_str()),
            "{s}"
        );
        assert_eq!(span.attr_str("db.user"), self.user.as_deref(), "{s}");
        assert_eq!(
            span.attr_str("db.statement"),
            span.attr_str("db.query.text"),
            "{s}"
        );
    }
}

pub fn assert_ok(span: &SpanRecord) {
    assert_eq!(span.status.code, StatusCode::Unset, "{}", span.summary());
    assert_eq!(span.attr("error.type"), None, "{}", span.summary());
}

/// The scenarios every engine runs, for a concrete `Pool<DB>` type. Each is an `async fn`
/// taking a freshly connected pool (with table `users` created outside any span) and the
/// expectations.
macro_rules! scenarios {
    ($db:ty) => {
        use apprunner::db::Pool;
        use apprunner_kit_tests::StatusCode;
        use sqlx::AssertSqlSafe;

        /// The table every scenario uses (created outside any span).
        pub const DDL: &str = "CREATE TABLE users (id BIGINT PRIMARY KEY, \
            email VARCHAR(200) NOT NULL UNIQUE, score BIGINT NOT NULL)";

        fn q(sql: String) -> AssertSqlSafe<String> {
            AssertSqlSafe(sql)
        }

        /// One span per statement, with the conventions' attributes, under the request span.
        pub async fn spans_follow_conventions(pool: Pool<$db>, e: Expect) {
            let insert = format!(
                "INSERT INTO users (id, email, score) VALUES ({}, {}, {})",
                e.ph(1),
                e.ph(2),
                e.ph(3)
            );
            let select = format!("SELECT id, email FROM users WHERE id = {}", e.ph(1));
            let update = format!("UPDATE users SET score = score + 1 WHERE id > {}", e.ph(1));
            let req = request("spans", async {
                for (id, email) in [(1_i64, "ann@example.com"), (2, "bob@example.com")] {
                    sqlx::query(q(insert.clone()))
                        .bind(id)
                        .bind(email)
                        .bind(10_i64)
                        .execute(&pool)
                        .await
                        .unwrap();
                }
                let (id, email): (i64, String) = sqlx::query_as(q(select.clone()))
                    .bind(1_i64)
                    .fetch_one(&pool)
                    .await
                    .unwrap();
                assert_eq!((id, email.as_str()), (1, "ann@example.com"));
                let all: Vec<(i64,)> = sqlx::query_as("SELECT id FROM users ORDER BY id")
                    .fetch_all(&pool)
                    .await
                    .unwrap();
                assert_eq!(all.len(), 2);
                let updated = sqlx::query(q(update.clone()))
                    .bind(0_i64)
                    .execute(&pool)
                    .await
                    .unwrap()
                    .rows_affected();
                assert_eq!(updated, 2);
            })
            .await;

            let spans = req.db_spans(5).await;
            assert_eq!(
                names(&spans),
                ["INSERT users", "INSERT users", "SELECT users", "SELECT users", "UPDATE users"],
                "one span per statement"
            );
            for span in &spans {
                e.assert_common(span);
                assert_ok(span);
                assert_eq!(span.attr_str("db.collection.name"), Some("users"));
                assert_eq!(span.attr_str("db.query.summary"), Some(span.name.as_str()));
                let wait = span
                    .attr_f64("db.client.connection.wait_time")
                    .unwrap_or_else(|| panic!("no wait time: {}", span.summary()));
                assert!(wait >= 0.0);
            }
            assert_eq!(spans[0].attr_str("db.query.text"), Some(insert.as_str()));
            assert_eq!(spans[0].attr_str("db.operation.name"), Some("INSERT"));
            assert_eq!(spans[0].attr_i64("db.response.returned_rows"), Some(0));
            assert_eq!(spans[2].attr_str("db.query.text"), Some(select.as_str()));
            assert_eq!(spans[2].attr_str("db.operation.name"), Some("SELECT"));
            assert_eq!(spans[2].attr_i64("db.response.returned_rows"), Some(1));
            assert_eq!(
                spans[3].attr_str("db.query.text"),
                Some("SELECT id FROM users ORDER BY id")
            );
            assert_eq!(spans[3].attr_i64("db.response.returned_rows"), Some(2));
            // The literal 1 is sanitized; placeholders stay.
            let sanitized_update = update.replace("+ 1", "+ ?");
            assert_eq!(spans[4].attr_str("db.query.text"), Some(sanitized_update.as_str()));
            assert_eq!(spans[4].attr_str("db.operation.name"), Some("UPDATE"));
        }

        /// A statement outside any span makes no span (X-Ray would name a top-level segment
        /// after the database); inside a request it does.
        pub async fn parentless_statements_have_no_span(pool: Pool<$db>, e: Expect) {
            let outside = unique("outside_");
            let inside = unique("inside_");
            let _ = &e;
            sqlx::query(q(format!("SELECT 1 AS {outside}")))
                .execute(&pool)
                .await
                .unwrap();
            let mut conn = pool.acquire().await.unwrap();
            sqlx::query(q(format!("SELECT 2 AS {outside}")))
                .execute(&mut *conn)
                .await
                .unwrap();
            drop(conn);
            let req = request("parentless", async {
                sqlx::query(q(format!("SELECT 3 AS {inside}")))
                    .execute(&pool)
                    .await
                    .unwrap();
            })
            .await;
            let spans = req.db_spans(1).await;
            assert_eq!(
                spans[0].attr_str("db.query.text"),
                Some(format!("SELECT ? AS {inside}").as_str())
            );
            // Everything exported so far (the request's spans arrived after the earlier ones).
            assert_nowhere(&[&outside]);
        }

        /// No literal from a WHERE clause, a VALUES list or an error message reaches any span.
        pub async fn literals_never_reach_spans(pool: Pool<$db>, e: Expect) {
            let email = format!("{}@example.com", unique("zzsecret"));
            let other = unique("zzother");
            let name = unique("zzname");
            let numbers = ["987654321", "424242", "13579", "97531", "24681357"];
            let req = request("literals", async {
                sqlx::query(q(format!(
                    "INSERT INTO users (id, email, score) VALUES (424242, '{email}', 13579)"
                )))
                .execute(&pool)
                .await
                .unwrap();
                let found: Option<(i64,)> = sqlx::query_as(q(format!(
                    "SELECT id FROM users WHERE email = '{email}' AND score < 987654321"
                )))
                .fetch_optional(&pool)
                .await
                .unwrap();
                assert_eq!(found, Some((424242,)));
                // The same email again: a unique violation (MySQL quotes the value in its
                // error message).
                let dup = sqlx::query(q(format!(
                    "INSERT INTO users (id, email, score) VALUES (97531, '{email}', 1)"
                )))
                .execute(&pool)
                .await;
                assert!(dup.is_err());
                let mut tx = pool.begin().await.unwrap();
                sqlx::query(q(format!(
                    "UPDATE users SET email = '{other}' WHERE id IN (424242, 97531) AND email <> '{name}'"
                )))
                .execute(&mut *tx)
                .await
                .unwrap();
                tx.commit().await.unwrap();
                sqlx::raw_sql(q(format!("SELECT '{name}', 24681357")))
                    .execute(&pool)
                    .await
                    .unwrap();
                // Bound values are not literals of the text, and not recorded either.
                sqlx::query(q(format!("SELECT id FROM users WHERE email = {}", e.ph(1))))
                    .bind(&other)
                    .fetch_all(&pool)
                    .await
                    .unwrap();
            })
            .await;
            let spans = req.db_spans(8).await;
            assert!(spans.len() >= 8, "{:?}", names(&spans));
            let mut secrets: Vec<&str> = vec![&email, &other, &name];
            secrets.extend(numbers);
            assert_nowhere(&secrets);
            let error = spans
                .iter()
                .find(|s| s.status.code == StatusCode::Error)
                .expect("the failed insert's span");
            assert_eq!(
                error.attr_str("db.response.status_code"),
                Some(e.unique_violation),
                "{}",
                error.summary()
            );
        }

        /// Failures carry the database's code, `error.type` and an Error status.
        pub async fn errors_record_status_codes(pool: Pool<$db>, e: Expect) {
            let insert = format!(
                "INSERT INTO users (id, email, score) VALUES ({}, {}, {})",
                e.ph(1),
                e.ph(2),
                e.ph(3)
            );
            let req = request("errors", async {
                for id in [1_i64, 2] {
                    let result = sqlx::query(q(insert.clone()))
                        .bind(id)
                        .bind("same@example.com")
                        .bind(1_i64)
                        .execute(&pool)
                        .await;
                    assert_eq!(result.is_ok(), id == 1, "{result:?}");
                }
                let syntax = sqlx::query("SELEC id FROM users").fetch_optional(&pool).await;
                assert!(syntax.is_err());
            })
            .await;
            let spans = req.db_spans(3).await;
            assert_eq!(spans.len(), 3, "{:?}", names(&spans));
            assert_ok(&spans[0]);
            for (span, code) in [(&spans[1], e.unique_violation), (&spans[2], e.syntax_error)] {
                let s = span.summary();
                e.assert_common(span);
                assert_eq!(span.status.code, StatusCode::Error, "{s}");
                assert!(!span.status.message.is_empty(), "{s}");
                assert_eq!(span.attr_str("db.response.status_code"), Some(code), "{s}");
                assert_eq!(span.attr_str("error.type"), Some(code), "{s}");
                assert_eq!(span.attr("db.response.returned_rows"), None, "{s}");
            }
            assert!(!spans[1].status.message.contains("same@example.com"));
        }

        /// A transaction's statements (and BEGIN/SAVEPOINT/COMMIT) are children of the
        /// request, in order.
        pub async fn transactions_nest(pool: Pool<$db>, e: Expect) {
            let insert = format!(
                "INSERT INTO users (id, email, score) VALUES ({}, {}, 0)",
                e.ph(1),
                e.ph(2)
            );
            let req = request("transaction", async {
                let mut tx = pool.begin().await.unwrap();
                sqlx::query(q(insert.clone()))
                    .bind(1_i64)
                    .bind("kept@example.com")
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                let mut savepoint = tx.begin().await.unwrap();
                sqlx::query(q(insert.clone()))
                    .bind(2_i64)
                    .bind("undone@example.com")
                    .execute(&mut *savepoint)
                    .await
                    .unwrap();
                savepoint.rollback().await.unwrap();
                // `&mut tx` works as well as `&mut *tx`.
                let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM users")
                    .fetch_one(&mut tx)
                    .await
                    .unwrap();
                assert_eq!(n, 1);
                tx.commit().await.unwrap();
            })
            .await;
            let spans = req.db_spans(7).await;
            assert_eq!(
                names(&spans),
                [
                    "BEGIN",
                    "INSERT users",
                    "SAVEPOINT",
                    "INSERT users",
                    "ROLLBACK TO SAVEPOINT",
                    "SELECT users",
                    "COMMIT"
                ]
            );
            for span in &spans {
                e.assert_common(span);
                assert_ok(span);
            }
            assert_eq!(spans[0].attr_str("db.operation.name"), Some("BEGIN"));
            assert_eq!(spans[6].attr_str("db.operation.name"), Some("COMMIT"));
            assert_eq!(spans[5].attr_i64("db.response.returned_rows"), Some(1));
            // Statements on the transaction do not wait for the pool.
            assert_eq!(spans[1].attr("db.client.connection.wait_time"), None);
            for pair in spans.windows(2) {
                assert!(pair[0].end_time_unix_nano <= pair[1].start_time_unix_nano);
            }
        }

        /// `pool.acquire()` gives a traced connection.
        pub async fn connections_are_traced(pool: Pool<$db>, e: Expect) {
            let req = request("connection", async {
                let mut conn = pool.acquire().await.unwrap();
                let n: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
                    .fetch_one(&mut *conn)
                    .await
                    .unwrap();
                assert_eq!(n, 0);
                let rows: Vec<(i64,)> = sqlx::query_as("SELECT id FROM users")
                    .fetch_all(&mut conn)
                    .await
                    .unwrap();
                assert!(rows.is_empty());
            })
            .await;
            let spans = req.db_spans(2).await;
            assert_eq!(names(&spans), ["SELECT users", "SELECT users"]);
            for span in &spans {
                e.assert_common(span);
                assert_eq!(span.attr("db.client.connection.wait_time"), None);
            }
            assert_eq!(
                spans[0].attr_str("db.query.text"),
                Some("SELECT count(*) FROM users")
            );
            assert_eq!(spans[0].attr_i64("db.response.returned_rows"), Some(1));
            assert_eq!(spans[1].attr_i64("db.response.returned_rows"), Some(0));
        }
    };
}
