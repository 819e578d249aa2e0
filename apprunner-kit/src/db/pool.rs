//! [`Pool`]: a traced `sqlx::Pool` that connects with retries and follows rotated credentials.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sqlx::ConnectOptions as _;
use sqlx::migrate::Migrator;

use super::config::{DbConfig, DbEngine, PoolSettings, TlsSettings, TraceSettings, is_tls_failure};
use super::conn::{PoolConnection, Transaction};
use super::credentials::{CredentialSource, Credentials};
use super::driver::Driver;
use super::error::{DbError, scrub};
use super::instrument::{Meta, TARGET, Tracer};
use super::outage::Outage;
use super::shared::{Shared, unreachable};

/// A pool of database connections in which every statement is a CLIENT span: use it wherever
/// you used `sqlx::Pool` (`&pool` is a `sqlx::Executor`), so switching from `sqlx::PgPool` to
/// [`PgPool`](super::PgPool) is a change of type.
///
/// Cloning is cheap (the clones share one pool).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use apprunner::db::SqlitePool;
///
/// let pool = SqlitePool::connect("sqlite::memory:").await?;
/// sqlx::query("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL)")
///     .execute(&pool)
///     .await?;
/// sqlx::query("INSERT INTO users (email) VALUES (?)")
///     .bind("bob@example.com")
///     .execute(&pool)
///     .await?;
/// let (id, email): (i64, String) = sqlx::query_as("SELECT id, email FROM users WHERE id = ?")
///     .bind(1_i64)
///     .fetch_one(&pool)
///     .await?;
/// assert_eq!((id, email.as_str()), (1, "bob@example.com"));
/// # Ok(()) }
/// ```
pub struct Pool<DB: Driver> {
    pub(crate) shared: Arc<Shared<DB>>,
}

/// A [`Pool`] whose statements the caller declared safe to run twice: see
/// [`Pool::retryable`]. `Retryable` is a `sqlx::Executor`.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let pool = apprunner::db::SqlitePool::connect("sqlite::memory:").await?;
/// let retryable: apprunner::db::Retryable<'_, sqlx::Sqlite> = pool.retryable();
/// sqlx::query("SELECT 1").execute(retryable).await?;
/// # Ok(()) }
/// ```
pub struct Retryable<'p, DB: Driver> {
    pub(crate) pool: &'p Pool<DB>,
}

impl<DB: Driver> Clone for Retryable<'_, DB> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<DB: Driver> Copy for Retryable<'_, DB> {}

impl<DB: Driver> fmt::Debug for Retryable<'_, DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Retryable").field(self.pool).finish()
    }
}

impl<DB: Driver> Clone for Pool<DB> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<DB: Driver> fmt::Debug for Pool<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let meta = self.shared.tracer.meta();
        f.debug_struct("Pool")
            .field("system", &meta.system)
            .field("endpoint", &meta.endpoint.describe())
            .field("size", &self.shared.pool.size())
            .field("idle", &self.shared.pool.num_idle())
            .field("closed", &self.shared.pool.is_closed())
            .field("credentials", &self.shared.source_name())
            .finish_non_exhaustive()
    }
}

impl<DB: Driver> Pool<DB> {
    /// Connects with [`DbConfig::from_env`]: `DATABASE_URL` or the `DB_*` variables, retrying
    /// while the database is unreachable (up to `DB_STARTUP_TIMEOUT`, default 45 s), with
    /// rotation from `DB_SECRET_NAME` when set.
    ///
    /// # Errors
    ///
    /// See [`connect_with`](Self::connect_with).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), apprunner::db::DbError> {
    /// let pool = apprunner::db::PgPool::connect_from_env().await?;
    /// # let _ = pool;
    /// # Ok(()) }
    /// ```
    pub async fn connect_from_env() -> Result<Self, DbError> {
        Self::connect_with(DbConfig::from_env()?).await
    }

    /// Connects to `url` with the default settings (like `sqlx::Pool::connect`, plus start-up
    /// retries and tracing).
    ///
    /// # Errors
    ///
    /// See [`connect_with`](Self::connect_with).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), apprunner::db::DbError> {
    /// let pool = apprunner::db::SqlitePool::connect("sqlite::memory:").await?;
    /// # let _ = pool;
    /// # Ok(()) }
    /// ```
    pub async fn connect(url: &str) -> Result<Self, DbError> {
        Self::connect_with(DbConfig::from_url(url)?).await
    }

    /// Builds the pool, then makes sure the database answers: connection attempts are retried
    /// with exponential backoff (250 ms doubling to 5 s, with jitter) while the database is
    /// unreachable or starting up, until the start-up deadline. A rejected password is
    /// refreshed once from the credential source, if any. Then runs the migrations, if any.
    ///
    /// # Errors
    ///
    /// [`DbError::Unreachable`] after the deadline, [`DbError::Authentication`],
    /// [`DbError::Tls`] when the server's certificate does not verify (see
    /// [TLS](DbConfig#tls)), [`DbError::Connect`] for other errors retrying cannot fix,
    /// [`DbError::EngineMismatch`], [`DbError::InvalidConfig`] (a missing CA file among them),
    /// [`DbError::Migrate`]. None of them contains the password.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), apprunner::db::DbError> {
    /// use std::time::Duration;
    /// use apprunner::db::{DbConfig, PgPool};
    ///
    /// let pool = PgPool::connect_with(
    ///     DbConfig::from_env()?
    ///         .max_connections(20)
    ///         .startup_timeout(Duration::from_secs(60)),
    /// )
    /// .await?;
    /// # let _ = pool;
    /// # Ok(()) }
    /// ```
    pub async fn connect_with(config: DbConfig) -> Result<Self, DbError> {
        let options = DB::options(&config.target, &config.tls)?;
        let endpoint = DB::endpoint(&options);
        let installed = endpoint
            .user
            .clone()
            .zip(config.target.password())
            .map(|(user, password)| Credentials::new(user, password));
        let engine = match config.engine() {
            DbEngine::MariaDb => DbEngine::MariaDb,
            _ => DB::ENGINE,
        };
        let meta = Meta::new(engine, endpoint, config.tracing.peer_service.as_deref());
        let pool = pool_options::<DB>(&config.pool).connect_lazy_with(options);
        let source = config
            .credentials
            .clone()
            .or_else(|| default_source(&config));
        let source = source.map(|s| (s, installed, config.pool.connect_timeout));
        let outage = Outage::new(config.pool.resume_budget);
        let this = Self::assemble(pool, config.tracing.clone(), meta, outage, source);
        this.wait_until_reachable(
            &config.pool,
            &config.tls,
            config.target.password().as_deref(),
        )
        .await?;
        if let Some(migrator) = &config.migrator {
            this.migrate(migrator).await?;
        }
        Ok(this)
    }

    /// Wraps a pool you built with sqlx (default tracing settings; the pool's statement
    /// logging is left as configured). No connection is made.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let raw = sqlx::sqlite::SqlitePoolOptions::new()
    ///     .max_connections(1)
    ///     .connect("sqlite::memory:")
    ///     .await?;
    /// let pool = apprunner::db::SqlitePool::from_sqlx(raw);
    /// sqlx::query("SELECT 1").execute(&pool).await?;
    /// # Ok(()) }
    /// ```
    pub fn from_sqlx(pool: sqlx::Pool<DB>) -> Self {
        let meta = Meta::new(DB::ENGINE, DB::endpoint(&pool.connect_options()), None);
        let outage = Outage::new(DbConfig::DEFAULT_RESUME_BUDGET);
        Self::assemble(pool, TraceSettings::default(), meta, outage, None)
    }

    fn assemble(
        pool: sqlx::Pool<DB>,
        tracing: TraceSettings,
        meta: Meta,
        outage: Outage,
        source: Option<(Arc<dyn CredentialSource>, Option<Credentials>, Duration)>,
    ) -> Self {
        let tracer = Tracer::new::<DB>(tracing, meta);
        Self {
            shared: Arc::new(Shared::new(pool, tracer, outage, source)),
        }
    }

    /// This pool as an executor whose statements the caller declares safe to run twice
    /// (idempotent, e.g. an `UPDATE … SET x = $1 WHERE id = $2` or an upsert): like a
    /// read-only statement, such a statement is run again once, on a fresh connection, when
    /// its connection died under it before any row came back. Other writes are not, and fail
    /// as unavailable ([`is_unavailable`](super::is_unavailable)).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let pool = apprunner::db::SqlitePool::connect("sqlite::memory:").await?;
    /// sqlx::query("CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT)")
    ///     .execute(&pool)
    ///     .await?;
    /// sqlx::query("INSERT INTO settings VALUES ('theme', 'dark') ON CONFLICT (key) DO UPDATE SET value = 'dark'")
    ///     .execute(pool.retryable())
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn retryable(&self) -> Retryable<'_, DB> {
        Retryable { pool: self }
    }

    /// Checks out a connection (retrying once with refreshed credentials if the database
    /// rejects them). Statements on `&mut *conn` are traced.
    ///
    /// # Errors
    ///
    /// `sqlx::Error::PoolTimedOut` after the acquire timeout, or the connection error.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let pool = apprunner::db::SqlitePool::connect("sqlite::memory:").await?;
    /// let mut conn = pool.acquire().await?;
    /// sqlx::query("SELECT 1").execute(&mut *conn).await?;
    /// # Ok(()) }
    /// ```
    pub async fn acquire(&self) -> Result<PoolConnection<DB>, sqlx::Error> {
        let conn = self.shared.acquire().await?;
        Ok(PoolConnection::new(conn, Arc::clone(&self.shared)))
    }

    /// Starts a transaction (a `BEGIN` span). Statements on `&mut *tx` are traced.
    ///
    /// # Errors
    ///
    /// As [`acquire`](Self::acquire), or the database's error.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let pool = apprunner::db::SqlitePool::connect("sqlite::memory:").await?;
    /// let mut tx = pool.begin().await?;
    /// sqlx::query("SELECT 1").execute(&mut *tx).await?;
    /// tx.commit().await?;
    /// # Ok(()) }
    /// ```
    pub async fn begin(&self) -> Result<Transaction<'static, DB>, sqlx::Error> {
        let tracer = &self.shared.tracer;
        let mut span = tracer.command_span("BEGIN");
        let result = self.shared.begin().await;
        if let Some(span) = &mut span {
            span.finish::<DB, _>(&result);
        }
        Ok(Transaction::new(result?, Arc::clone(&self.shared)))
    }

    /// Runs migrations now (PostgreSQL and MySQL hold a lock meanwhile, so instances starting
    /// together do not race).
    ///
    /// # Errors
    ///
    /// [`DbError::Migrate`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let pool = apprunner::db::SqlitePool::connect("sqlite::memory:").await?;
    /// pool.migrate(&sqlx::migrate::Migrator::DEFAULT).await?;
    /// # Ok(()) }
    /// ```
    pub async fn migrate(&self, migrator: &Migrator) -> Result<(), DbError> {
        let started = Instant::now();
        DB::migrate(migrator, &self.shared.pool)
            .await
            .map_err(|e| DbError::Migrate(e.to_string()))?;
        tracing::info!(
            target: TARGET,
            migrations = migrator.iter().count(),
            elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "database migrations applied"
        );
        Ok(())
    }

    /// Closes the pool: waits for checked-out connections to come back and closes them all.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let pool = apprunner::db::SqlitePool::connect("sqlite::memory:").await?;
    /// pool.close().await;
    /// assert!(pool.is_closed());
    /// # Ok(()) }
    /// ```
    pub async fn close(&self) {
        self.shared.pool.close().await;
    }

    /// Whether [`close`](Self::close) was called.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let pool = apprunner::db::SqlitePool::connect("sqlite::memory:").await?;
    /// assert!(!pool.is_closed());
    /// # Ok(()) }
    /// ```
    pub fn is_closed(&self) -> bool {
        self.shared.pool.is_closed()
    }

    /// Connections open (idle or in use).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let pool = apprunner::db::SqlitePool::connect("sqlite::memory:").await?;
    /// let _conn = pool.acquire().await?;
    /// assert!(pool.size() >= 1);
    /// # Ok(()) }
    /// ```
    pub fn size(&self) -> u32 {
        self.shared.pool.size()
    }

    /// Idle connections.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let pool = apprunner::db::SqlitePool::connect("sqlite::memory:").await?;
    /// assert!(pool.num_idle() <= pool.size() as usize);
    /// # Ok(()) }
    /// ```
    pub fn num_idle(&self) -> usize {
        self.shared.pool.num_idle()
    }

    /// The underlying sqlx pool, for libraries that need one. Statements run on it are not
    /// traced.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let pool = apprunner::db::SqlitePool::connect("sqlite::memory:").await?;
    /// let raw: &sqlx::SqlitePool = pool.as_sqlx();
    /// sqlx::query("SELECT 1").execute(raw).await?;
    /// # Ok(()) }
    /// ```
    pub fn as_sqlx(&self) -> &sqlx::Pool<DB> {
        &self.shared.pool
    }

    async fn wait_until_reachable(
        &self,
        settings: &PoolSettings,
        tls: &TlsSettings,
        password: Option<&str>,
    ) -> Result<(), DbError> {
        let started = Instant::now();
        let deadline = started + settings.startup_timeout;
        let mut backoff = Duration::from_millis(250);
        let mut attempts = 0u32;
        let mut refreshed = false;
        loop {
            attempts += 1;
            let seen = self.shared.seen();
            let options = self.shared.pool.connect_options();
            let remaining = deadline.saturating_duration_since(Instant::now());
            let timeout = settings
                .connect_timeout
                .min(remaining)
                .max(Duration::from_millis(100));
            let error = match tokio::time::timeout(timeout, options.connect()).await {
                Ok(Ok(mut conn)) => {
                    if let Some(engine) = DB::detect_engine(&mut conn).await {
                        self.shared.tracer.update_meta(|m| {
                            Meta::with(
                                engine.system_name(),
                                m.endpoint.clone(),
                                m.peer_service.clone(),
                            )
                        });
                    }
                    let _ = sqlx::Connection::close(conn).await;
                    // How long the database took to answer: an Aurora Serverless cluster
                    // resuming from zero capacity shows here.
                    tracing::info!(
                        target: TARGET,
                        endpoint = %self.shared.tracer.meta().endpoint.describe(),
                        attempts,
                        elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                        "database reachable"
                    );
                    return Ok(());
                }
                Ok(Err(e)) => e,
                Err(_) => sqlx::Error::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no answer within {timeout:?} (DB_CONNECT_TIMEOUT)"),
                )),
            };
            let meta = self.shared.tracer.meta();
            let endpoint = meta.endpoint.describe();
            let cause = scrub(&error.to_string(), password);
            match &error {
                sqlx::Error::Database(e) if DB::is_auth_failure(e.as_ref()) => {
                    if !refreshed && self.shared.rotate(seen).await {
                        refreshed = true;
                        continue;
                    }
                    return Err(DbError::Authentication {
                        endpoint,
                        user: meta.endpoint.user.clone().unwrap_or_default(),
                        cause,
                    });
                }
                e if is_tls_failure(e) => {
                    return Err(DbError::Tls {
                        endpoint,
                        mode: tls.describe_mode(DB::ENGINE),
                        ca_file: tls.describe_ca(),
                        cause,
                    });
                }
                e if unreachable::<DB>(e) => {}
                _ => return Err(DbError::Connect { endpoint, cause }),
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(DbError::Unreachable {
                    endpoint,
                    attempts,
                    waited: now - started,
                    deadline: settings.startup_timeout,
                    cause,
                });
            }
            let pause = jitter(backoff).min(deadline - now);
            tracing::warn!(
                target: TARGET,
                endpoint = %endpoint,
                attempt = attempts,
                error = %cause,
                retry_in_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX),
                "database not reachable yet; retrying"
            );
            tokio::time::sleep(pause).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }
}

fn pool_options<DB: Driver>(settings: &PoolSettings) -> sqlx::pool::PoolOptions<DB> {
    sqlx::pool::PoolOptions::new()
        .max_connections(settings.max_connections)
        .min_connections(settings.min_connections.min(settings.max_connections))
        .acquire_timeout(settings.acquire_timeout)
        .idle_timeout(settings.idle_timeout)
        .max_lifetime(settings.max_lifetime)
        .test_before_acquire(true)
}

#[cfg(feature = "secrets")]
fn default_source(config: &DbConfig) -> Option<Arc<dyn CredentialSource>> {
    let name = config.secret_name.as_deref()?;
    Some(Arc::new(super::credentials::RdsSecretSource::from_env(
        name,
    )))
}

#[cfg(not(feature = "secrets"))]
fn default_source(_: &DbConfig) -> Option<Arc<dyn CredentialSource>> {
    None
}

/// Half the backoff plus a pseudo-random part of the other half, so that instances starting
/// together do not retry in lockstep.
fn jitter(backoff: Duration) -> Duration {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let half = backoff / 2;
    let spread = u32::try_from(half.as_millis()).unwrap_or(u32::MAX).max(1);
    half + Duration::from_millis(u64::from(nanos % spread))
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    /// Log output collected in memory.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_start_up_connection_is_logged_with_its_attempts_and_time() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_writer(move || writer.clone())
            .finish();
        let _default = tracing::subscriber::set_default(subscriber);
        let pool = crate::db::SqlitePool::connect("sqlite::memory:")
            .await
            .expect("an in-memory database");
        pool.close().await;
        let output = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let line: serde_json::Value = output
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .find(|line: &serde_json::Value| line["fields"]["message"] == "database reachable")
            .unwrap_or_else(|| panic!("no `database reachable` line in {output}"));
        assert_eq!(line["fields"]["attempts"], 1, "{line}");
        assert!(line["fields"]["elapsed_ms"].is_u64(), "{line}");
        assert_eq!(line["level"], "INFO", "{line}");
    }
}
