//! sqlx pools in which every statement is a span, and that survive Aurora's realities.
//!
//! [`Pool`] wraps `sqlx::Pool` for PostgreSQL (and Aurora PostgreSQL), MySQL/MariaDB (and
//! Aurora MySQL) and SQLite. `&pool`, `&mut *tx` and `&mut *conn` are `sqlx::Executor`s, so
//! `query`, `query_as`, `query_scalar`, the `query!` macros, `fetch*`/`execute` and
//! transactions work unchanged: switching from `sqlx::PgPool` to [`PgPool`] is a change of
//! type.
//!
//! ```no_run
//! use apprunner::db::PgPool;
//!
//! #[derive(sqlx::FromRow)]
//! struct User {
//!     id: i64,
//!     email: String,
//! }
//!
//! async fn user(pool: &PgPool, id: i64) -> Result<Option<User>, sqlx::Error> {
//!     sqlx::query_as("SELECT id, email FROM users WHERE id = $1")
//!         .bind(id)
//!         .fetch_optional(pool)
//!         .await
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // DATABASE_URL, or DB_HOST/DB_PORT/DB_USER/DB_PASSWORD/DB_DATABASE; retries while the
//! // database is unreachable, up to DB_STARTUP_TIMEOUT (45 s).
//! let pool = PgPool::connect_from_env().await?;
//! let mut tx = pool.begin().await?;
//! sqlx::query("UPDATE users SET email = $1 WHERE id = $2")
//!     .bind("new@example.com")
//!     .bind(7_i64)
//!     .execute(&mut *tx)
//!     .await?;
//! tx.commit().await?;
//! if let Some(user) = user(&pool, 7).await? {
//!     tracing::info!(id = user.id, email = %user.email, "found");
//! }
//! # Ok(()) }
//! ```
//!
//! # Spans
//!
//! Every statement is a CLIENT span, child of the current span, following the stable
//! OpenTelemetry database conventions:
//!
//! | attribute | value |
//! |---|---|
//! | span name | `db.query.summary`, else `db.system.name` |
//! | `db.system.name` | `postgresql`, `mysql`, `mariadb` (detected at start-up), `sqlite` |
//! | `db.namespace` | the database (PostgreSQL: the database the connection was opened with; SQLite: the file) |
//! | `db.query.text` | the statement with every literal replaced by `?`; raw or off with [`QueryText`] |
//! | `db.query.summary` | operations and tables in order, e.g. `SELECT users`, `INSERT orders SELECT carts` |
//! | `db.operation.name`, `db.collection.name` | when the statement has one operation on one table |
//! | `db.stored_procedure.name` | for `CALL` |
//! | `server.address`, `server.port` | from the connect options |
//! | `db.response.returned_rows` | rows the statement returned |
//! | `db.client.connection.wait_time` | seconds spent waiting for a pooled connection (pool statements) |
//! | `error.type`, `db.response.status_code` | on failure: the SQLSTATE (PostgreSQL), error number (MySQL), extended result code (SQLite), or a client-side class such as `pool_timed_out` or `io`; the span status is Error with the message stripped of quoted parts and numbers |
//! | `peer.service` | the database's node name in X-Ray: `{db.namespace}@{server.address}` unless configured |
//! | `db.system`, `db.name`, `db.statement`, `db.user` | legacy keys the collector's X-Ray exporter still reads for its SQL block (on by default) |
//!
//! `BEGIN`, `COMMIT`, `ROLLBACK` (and savepoints) are spans too.
//!
//! **No span for a parentless statement** (by default): the X-Ray exporter turns a parentless
//! CLIENT span into a top-level segment named after the database, which is how the sample
//! service's App Runner node ended up named after its Aurora endpoint. Statements run inside a
//! request span (see `apprunner::http`) are traced; start-up queries outside any span are not,
//! unless [`DbConfig::root_spans`] (`DB_TRACE_ROOT_SPANS=true`). Statements of a request that
//! is not sampled get no span either (and cost no analysis).
//!
//! Spans are made with the OpenTelemetry API (the global tracer provider, which
//! `apprunner::telemetry` installs), as children of the current `tracing` span: statements are
//! the hottest path of a service, and a span that is never entered gains nothing from going
//! through the `tracing` subscriber.
//!
//! Two choices differ from the letter of the SQL conventions, which ask not to parse the
//! operation and table out of the statement text: the kit sets `db.operation.name` and
//! `db.collection.name` from its parse when the statement is unambiguous (one operation on
//! one table), and it sanitizes parameterized statements too, because their text may still
//! embed values written with `format!`.
//!
//! sqlx's own statement logging is turned off on pools built here (it logs the raw text,
//! literals included, and its events would land on these spans).
//!
//! # Connecting and surviving outages
//!
//! [`DbConfig`] lists the variables. At start-up the pool retries with backoff while the
//! database is unreachable or starting (Aurora Serverless v2 resuming from zero capacity takes
//! ~15 s, ~30 s after a long pause), up to `DB_STARTUP_TIMEOUT`, then fails with a
//! [`DbError`] naming `host:port` and the last cause — never the password.
//!
//! At run time, a database that restarts, fails over, kills sessions or resumes from a pause
//! costs no request that could have been retried:
//!
//! - **Connections are checked before reuse** with sqlx's ping (`test_before_acquire`: an
//!   empty `Sync` on PostgreSQL, `COM_PING` on MySQL; one round trip and no statement). A
//!   connection the server has closed is dropped there and a fresh one opened, so a killed
//!   idle session never reaches a statement.
//! - **A statement whose connection dies under it runs again once, on a fresh connection**,
//!   when that is safe: on the pool (not inside a transaction or on a checked-out
//!   connection), before any row reached the caller, and either read-only (`SELECT`,
//!   `VALUES`, `TABLE`, `SHOW`, `EXPLAIN`, a `WITH` without a write) or run on
//!   [`Pool::retryable`], the caller's word that it is idempotent. "Dies" means an I/O
//!   error, PostgreSQL `57P01`/`57P02`/`57P03` or class `08`, MySQL 1053/1927/2006/2013. Two
//!   kinds of failure prove the statement did not run, and any statement runs again after
//!   them (up to three attempts in all, since a server going down can end the new session
//!   too): PostgreSQL ending the session with `57P01`/`57P02` (a terminated backend aborts its
//!   transaction, and a statement that committed has had its answer sent first), and a write
//!   refused for being read-only (PostgreSQL `25006`, MySQL 1290/1836: a failover). A
//!   connection that drops without a word leaves a write in doubt (it may have committed), so
//!   an unmarked write then fails as unavailable. The second attempt runs on a new connection
//!   outside the pool, closed after; the span shows a `retry` event.
//! - **An outage is waited out, up to a budget.** When the pool cannot connect, requests
//!   wait for the database up to `DB_RESUME_BUDGET` (30 s, under App Runner's 120 s request
//!   limit) counted from the outage's start, rather than failing at the acquire timeout. One
//!   probe connects meanwhile and the requests queue on it; past the budget they fail at
//!   once until the probe gets an answer. A pool merely out of connections is no outage: the
//!   probe connects at its first attempt, and the request fails at `DB_POOL_ACQUIRE_TIMEOUT`.
//! - **What still fails is typed:** [`is_unavailable`] tells "the database is unavailable"
//!   (answer 503 with `Retry-After`) from a bad statement (500).
//!
//! Measured (2026-12-03) under steady load from the tests, against real servers started by
//! them: the users API on PostgreSQL 15 (`examples/users-api/tests/e2e_resilience.rs`: readers
//! on `GET /users/{id}`, a writer signing up; pool of 5) and a MariaDB pool
//! (`tests/db_resilience_mysql.rs`). "Back → ok" is from the database answering again to the
//! first success; the longest request includes the outage.
//!
//! | event | requests | failed | back → ok | longest request |
//! |---|---|---|---|---|
//! | PostgreSQL `pg_ctl restart -m fast` (209 ms) | 201 | 0 | 231 ms | 0.46 s |
//! | PostgreSQL stopped 5 s, then started | 117 | 0 | 366 ms | 5.6 s |
//! | `pg_terminate_backend` on 18 idle connections | 442 | 0 | — | 0.28 s |
//! | rotation, database first (`createSecret`, `setSecret`, `finishSecret`) | 797 | 0 (2 `GetSecretValue`: current, pending) | — | 0.66 s |
//! | rotation, secret first | 456 | 0 (1 `GetSecretValue`) | — | 0.50 s |
//! | Aurora-style resume: new connections held 20 s (budget 30 s) | 406 | 0 (5 connection attempts held) | 367 ms | 20.4 s |
//! | the same held 10 s with `DB_RESUME_BUDGET=3s` | 1,646 | 998 × 503, 0 × 500; past the budget each 503 in ≤ 123 ms | 323 ms | 5.0 s |
//! | MariaDB restart, stop 5 s, `KILL` of 24 idle connections, both rotations | ~5,000 | 0 (writes not marked retryable: only as unavailable while down) | 1–8 ms | 5.3 s |
//!
//! What still fails, as unavailable (503 in the users API): a write not marked retryable
//! whose connection drops without a word from the server (MySQL's `KILL` racing the pool's
//! ping does this: 1 plain `INSERT` of 222 in the MariaDB `KILL` run), and every request
//! past the resume budget.
//!
//! # Rotation
//!
//! When opening a connection fails authentication (PostgreSQL `28P01`/`28000`, MySQL 1045),
//! the pool re-reads its [`CredentialSource`]: the current credentials, then the pending ones
//! ([`CredentialSource::pending`]; `AWSPENDING` for a Secrets Manager secret, which the
//! database already holds between the rotation function's `setSecret` and `finishSecret`).
//! The first that opens a connection is installed with `sqlx::Pool::set_connect_options`, so
//! a rotation fails no request whichever of the database and the secret changes first. The
//! refresh is single flight: one read of the secret however many requests are waiting, and
//! none while the credentials work; the log line `database credentials changed` says which
//! stage won and what changed (user, password), never the values. `DB_SECRET_NAME` sets up an
//! [`RdsSecretSource`] (feature `secrets`).
//!
//! A secret injected by the platform (App Runner's `RuntimeEnvironmentSecrets`, ECS's
//! `secrets`) is read once, when the instance starts, and never refreshes: after a rotation
//! new connections fail until the service is redeployed. To follow rotations without a
//! redeploy, give the service `DB_SECRET_NAME` (the secret's name or ARN) and
//! `secretsmanager:GetSecretValue` on it, so the pool reads the secret through the API.

//! # Migrations
//!
//! [`DbConfig::migrations`] (or [`Pool::migrate`]) runs `sqlx::migrate!` migrations at
//! start-up; sqlx holds an advisory lock meanwhile, so instances starting together do not race.

mod config;
mod conn;
mod credentials;
mod driver;
mod error;
mod executor;
mod instrument;
mod outage;
mod pool;
mod resilience;
mod sanitize;
mod shared;

pub use config::{DbConfig, DbEngine, QueryText, SslMode};
pub use conn::{Connection, PoolConnection, Transaction};
#[cfg(feature = "secrets")]
pub use credentials::RdsSecretSource;
pub use credentials::{CredentialSource, Credentials, CredentialsFuture};
pub use driver::Driver;
pub use error::DbError;
pub use pool::{Pool, Retryable};
pub use resilience::is_unavailable;

/// The sqlx this module is built on, for `sqlx::query` and friends without a second
/// dependency. (The `query!` macros expand to `::sqlx::…` paths: they need `sqlx` as a direct
/// dependency of your crate, the same version.)
///
/// ```
/// use apprunner::db::sqlx;
///
/// let query = sqlx::query::<sqlx::Postgres>("SELECT 1");
/// # let _ = query;
/// ```
pub use sqlx;

/// A traced PostgreSQL pool (Aurora PostgreSQL included): `sqlx::PgPool`, traced.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let pool = apprunner::db::PgPool::connect("postgres://app@localhost/users").await?;
/// let n: i64 = sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(&pool).await?;
/// # let _ = n;
/// # Ok(()) }
/// ```
pub type PgPool = Pool<sqlx::Postgres>;

/// A traced MySQL / MariaDB pool (Aurora MySQL included): `sqlx::MySqlPool`, traced.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let pool = apprunner::db::MySqlPool::connect("mysql://app@localhost/users").await?;
/// let n: i64 = sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(&pool).await?;
/// # let _ = n;
/// # Ok(()) }
/// ```
pub type MySqlPool = Pool<sqlx::MySql>;

/// A traced SQLite pool: `sqlx::SqlitePool`, traced.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let pool = apprunner::db::SqlitePool::connect("sqlite::memory:").await?;
/// let one: i64 = sqlx::query_scalar("SELECT 1").fetch_one(&pool).await?;
/// assert_eq!(one, 1);
/// # Ok(()) }
/// ```
pub type SqlitePool = Pool<sqlx::Sqlite>;
