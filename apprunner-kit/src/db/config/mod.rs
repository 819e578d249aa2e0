//! [`DbConfig`]: where the database is, how big the pool is, how statements are traced.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use sqlx::migrate::Migrator;
use zeroize::Zeroizing;

use super::credentials::CredentialSource;
use super::error::DbError;

mod engine;
mod target;
mod tls;

pub use engine::{DbEngine, QueryText};
pub(crate) use target::Target;
use target::{url_endpoint, url_engine};
pub use tls::SslMode;
use tls::{FROM_CODE_CA, FROM_CODE_MODE, RootCert, Sourced};
pub(crate) use tls::{TlsSettings, is_tls_failure};

/// Pool sizing and timeouts.
#[derive(Clone, Debug)]
pub(crate) struct PoolSettings {
    pub(crate) max_connections: u32,
    pub(crate) min_connections: u32,
    pub(crate) acquire_timeout: Duration,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) max_lifetime: Option<Duration>,
    pub(crate) connect_timeout: Duration,
    pub(crate) startup_timeout: Duration,
    pub(crate) resume_budget: Duration,
}

/// How statements are traced.
#[derive(Clone, Debug)]
pub(crate) struct TraceSettings {
    pub(crate) query_text: QueryText,
    pub(crate) legacy_attributes: bool,
    pub(crate) root_spans: bool,
    pub(crate) peer_service: Option<String>,
    pub(crate) collapse_in_lists: bool,
}

impl Default for TraceSettings {
    fn default() -> Self {
        Self {
            query_text: QueryText::Sanitized,
            legacy_attributes: true,
            root_spans: false,
            peer_service: None,
            collapse_in_lists: true,
        }
    }
}

/// Everything a [`Pool`](super::Pool) needs: where the database is, pool sizing, start-up
/// retry, tracing, credential rotation and migrations. Read from the environment and refined
/// in code (code wins).
///
/// | variable | meaning | default |
/// |---|---|---|
/// | `DATABASE_URL` | `postgres://user:pass@host:5432/db`, `mysql://…`, `mariadb://…`, `sqlite:file.db` | — |
/// | `DB_HOST`, `DB_PORT`, `DB_USER`, `DB_PASSWORD`, `DB_DATABASE` | used when `DATABASE_URL` is unset (the sample's variables, and what `apprunner::secrets` expands an RDS secret into) | port of the engine |
/// | `DB_ENGINE` | `postgres`, `mysql`, `mariadb`, `sqlite` (with the `DB_*` parts) | `postgres` |
/// | `DB_SSL_MODE` | TLS: `disable`, `allow`, `prefer`, `require`, `verify-ca`, `verify-full` (MySQL: `DISABLED`, `PREFERRED`, `REQUIRED`, `VERIFY_CA`, `VERIFY_IDENTITY`, which these map to, are accepted too); see [`SslMode`]. Applies to `DATABASE_URL` too | sqlx's: `prefer` |
/// | `DB_SSL_ROOT_CERT` | PEM file of the CA certificates the server's must chain to (`verify-ca`, `verify-full`); for RDS and Aurora the [global bundle](https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem). Must exist at start-up | the built-in Mozilla roots |
/// | `PGSSLMODE`, `PGSSLROOTCERT` | PostgreSQL only: as `DB_SSL_MODE` / `DB_SSL_ROOT_CERT`, below them and below the URL's query | — |
/// | `DB_POOL_MAX_CONNECTIONS` | pool size per process (see [Pool size](#pool-size)) | `10` |
/// | `DB_POOL_MIN_CONNECTIONS` | connections kept open | `0` |
/// | `DB_POOL_ACQUIRE_TIMEOUT` | longest wait for a connection before a statement fails (keep it short: requests fail fast while the database is down) | `5s` |
/// | `DB_POOL_IDLE_TIMEOUT` | idle connections are closed after this (`off` to keep them) | `10m` |
/// | `DB_POOL_MAX_LIFETIME` | connections are replaced after this (`off` to keep them) | `30m` |
/// | `DB_CONNECT_TIMEOUT` | one connection attempt at start-up | `5s` |
/// | `DB_STARTUP_TIMEOUT` | how long start-up keeps retrying an unreachable database (Aurora Serverless v2 resumes in ~15–30 s) | `45s` |
/// | `DB_RESUME_BUDGET` | at run time, how long requests wait for a database that stopped answering (restarting, failing over, resuming from zero capacity) before they fail as unavailable; counted from the first failure, so later requests fail at once past it | `30s` |
/// | `DB_SECRET_NAME` | the RDS secret to re-read when the password is rejected (rotation; needs the `secrets` feature) | — |
/// | `DB_TRACE_QUERY_TEXT` | `sanitized`, `raw`, `off` | `sanitized` |
/// | `DB_TRACE_ROOT_SPANS` | `true`: trace statements that have no parent span | `false` |
/// | `DB_TRACE_LEGACY_ATTRIBUTES` | `false`: omit `db.system`, `db.name`, `db.statement`, `db.user` | `true` (`false` when `OTEL_SEMCONV_STABILITY_OPT_IN` lists `database` without `database/dup`) |
/// | `DB_PEER_SERVICE` | `peer.service`, the database's node name in X-Ray | `{db.namespace}@{server.address}` |
///
/// Durations are `250ms`, `5s`, `2m`, `1h` or a plain number of seconds. With the `DB_*` parts,
/// sqlx's own variables (`PGAPPNAME`, `PGOPTIONS`, …) still apply; with a URL, put such options
/// in its query string.
///
/// # Pool size
///
/// The default of 10 connections is sized for App Runner's and ECS Express's concurrency, not
/// for a benchmark. A request holds a connection only while its statement runs, so the 100
/// concurrent requests per instance of the example stack need a few connections, not 100: on
/// two vCPUs shared with PostgreSQL, pools of 2, 5, 10 and 16 served 100 concurrent `GET`s at
/// about the same rate, and 32 was the slowest (more backends compete for the database's CPU;
/// `benches/README.md`, issue 24). Each instance opens its own pool, so the database must
/// accept `instances × pool size` connections: Aurora Serverless v2 allows 189 at 0.5–1 ACU,
/// far above the example stack's 2 instances × 10. Raise the pool with the database's capacity,
/// not with the service's concurrency.
///
/// # TLS
///
/// The TLS mode and the CA file are each taken from the first of, in this order:
///
/// 1. code: [`ssl_mode`](Self::ssl_mode), [`ssl_root_cert`](Self::ssl_root_cert);
/// 2. `DB_SSL_MODE`, `DB_SSL_ROOT_CERT`, for the `DB_*` parts **and** for `DATABASE_URL` (the
///    URL an RDS secret expands into carries no TLS options, so the deployment sets these);
/// 3. the URL's query string: `sslmode`, `sslrootcert` (PostgreSQL); `ssl-mode`, `ssl-ca`
///    (MySQL/MariaDB);
/// 4. `PGSSLMODE`, `PGSSLROOTCERT` (PostgreSQL only; `PGSSLROOTCERT` may also hold the PEM text);
/// 5. sqlx's defaults: `prefer` (`PREFERRED`), no CA file (the built-in Mozilla roots).
///
/// An unknown mode is [`DbError::InvalidConfig`] naming its variable (sqlx alone would quietly
/// ignore a bad `PGSSLMODE`); a CA file that does not exist stops
/// [`Pool::connect_with`](super::Pool::connect_with) before it connects, naming the variable and
/// the path; a certificate the server presents that does not verify is [`DbError::Tls`],
/// naming the host, the mode and the CA file. For RDS and Aurora use `verify-full` with the
/// RDS global CA bundle and connect to the cluster's endpoint name (the name the certificate
/// was issued for, not an IP address or a CNAME of yours).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use apprunner::db::{DbConfig, DbEngine};
///
/// let config = DbConfig::from_lookup(|key| match key {
///     "DB_HOST" => Some("users.cluster-abc.eu-west-1.rds.amazonaws.com".into()),
///     "DB_USER" => Some("app".into()),
///     "DB_PASSWORD" => Some("s3cret".into()),
///     "DB_DATABASE" => Some("users".into()),
///     "DB_POOL_MAX_CONNECTIONS" => Some("20".into()),
///     _ => None,
/// })?
/// .acquire_timeout(Duration::from_secs(2));
/// assert_eq!(config.engine(), DbEngine::Postgres);
/// assert_eq!(config.endpoint(), "users.cluster-abc.eu-west-1.rds.amazonaws.com:5432");
/// assert!(!format!("{config:?}").contains("s3cret"));
/// # Ok::<(), apprunner::db::DbError>(())
/// ```
#[derive(Clone)]
pub struct DbConfig {
    pub(crate) target: Target,
    pub(crate) pool: PoolSettings,
    pub(crate) tracing: TraceSettings,
    pub(crate) credentials: Option<Arc<dyn CredentialSource>>,
    pub(crate) secret_name: Option<String>,
    pub(crate) migrator: Option<Arc<Migrator>>,
    pub(crate) tls: TlsSettings,
}

impl fmt::Debug for DbConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbConfig")
            .field("engine", &self.target.engine())
            .field("endpoint", &self.endpoint())
            .field("pool", &self.pool)
            .field("tracing", &self.tracing)
            .field("credentials", &self.credentials)
            .field("secret_name", &self.secret_name)
            .field("ssl_mode", &self.tls.describe_mode(self.target.engine()))
            .field("ssl_root_cert", &self.tls.describe_ca())
            .field(
                "migrations",
                &self.migrator.as_ref().map(|m| m.iter().count()),
            )
            .finish_non_exhaustive()
    }
}

impl DbConfig {
    /// The default [`resume_budget`](Self::resume_budget): 30 s, the time Aurora Serverless v2
    /// takes at most to resume from zero capacity, well under App Runner's 120 s request limit.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(apprunner::db::DbConfig::DEFAULT_RESUME_BUDGET.as_secs(), 30);
    /// ```
    pub const DEFAULT_RESUME_BUDGET: Duration = Duration::from_secs(30);

    /// Reads the configuration from the process environment (see the table above).
    ///
    /// # Errors
    ///
    /// [`DbError::NotConfigured`] when no database is named, [`DbError::InvalidConfig`] for a
    /// malformed value.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let config = apprunner::db::DbConfig::from_env()?;
    /// # let _ = config;
    /// # Ok::<(), apprunner::db::DbError>(())
    /// ```
    pub fn from_env() -> Result<Self, DbError> {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    /// Reads the configuration through `lookup` (for tests, or another source of settings).
    ///
    /// # Errors
    ///
    /// As [`from_env`](Self::from_env).
    ///
    /// # Examples
    ///
    /// ```
    /// let config = apprunner::db::DbConfig::from_lookup(|key| {
    ///     (key == "DATABASE_URL").then(|| "sqlite::memory:".to_owned())
    /// })?;
    /// assert_eq!(config.engine(), apprunner::db::DbEngine::Sqlite);
    /// # Ok::<(), apprunner::db::DbError>(())
    /// ```
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, DbError> {
        let get = |key: &str| lookup(key).filter(|v| !v.trim().is_empty());
        let target = match get("DATABASE_URL") {
            Some(url) => Target::Url {
                engine: url_engine(&url)?,
                url: Zeroizing::new(url.trim().to_owned()),
            },
            None => {
                let engine = match get("DB_ENGINE") {
                    Some(name) => DbEngine::parse(&name).ok_or_else(|| DbError::InvalidConfig {
                        var: "DB_ENGINE",
                        reason: format!(
                            "{name:?} is not an engine: use postgres, mysql, mariadb or sqlite"
                        ),
                    })?,
                    None => DbEngine::Postgres,
                };
                let host = get("DB_HOST");
                let database = get("DB_DATABASE");
                if host.is_none() && !(engine == DbEngine::Sqlite && database.is_some()) {
                    return Err(DbError::NotConfigured);
                }
                Target::Parts {
                    engine,
                    host: host.unwrap_or_default().trim().to_owned(),
                    port: get("DB_PORT")
                        .map(|p| {
                            p.trim().parse::<u16>().map_err(|_| DbError::InvalidConfig {
                                var: "DB_PORT",
                                reason: format!("{p:?} is not a port number (1-65535)"),
                            })
                        })
                        .transpose()?,
                    user: get("DB_USER"),
                    password: lookup("DB_PASSWORD").map(Zeroizing::new),
                    database,
                }
            }
        };
        let tls = TlsSettings::resolve(
            get,
            target.engine(),
            match &target {
                Target::Url { url, .. } => Some(url.as_str()),
                Target::Parts { .. } => None,
            },
        )?;
        let count = |var: &'static str, default: u32| -> Result<u32, DbError> {
            get(var).map_or(Ok(default), |v| {
                v.trim().parse().map_err(|_| DbError::InvalidConfig {
                    var,
                    reason: format!("{v:?} is not a whole number"),
                })
            })
        };
        let duration = |var: &'static str, default: Duration| -> Result<Duration, DbError> {
            get(var).map_or(Ok(default), |v| parse_duration(var, &v))
        };
        let optional_duration =
            |var: &'static str, default: Duration| -> Result<Option<Duration>, DbError> {
                match get(var) {
                    None => Ok(Some(default)),
                    Some(v) if matches!(v.trim(), "off" | "none" | "0") => Ok(None),
                    Some(v) => parse_duration(var, &v).map(Some),
                }
            };
        let flag = |var: &'static str| -> Result<Option<bool>, DbError> {
            get(var)
                .map(|v| match v.trim().to_ascii_lowercase().as_str() {
                    "true" | "1" | "yes" | "on" => Ok(true),
                    "false" | "0" | "no" | "off" => Ok(false),
                    _ => Err(DbError::InvalidConfig {
                        var,
                        reason: format!("{v:?} is not a boolean: use true or false"),
                    }),
                })
                .transpose()
        };

        let max_connections = count("DB_POOL_MAX_CONNECTIONS", 10)?;
        if max_connections == 0 {
            return Err(DbError::InvalidConfig {
                var: "DB_POOL_MAX_CONNECTIONS",
                reason: "must be at least 1".into(),
            });
        }
        let pool = PoolSettings {
            max_connections,
            min_connections: count("DB_POOL_MIN_CONNECTIONS", 0)?,
            acquire_timeout: duration("DB_POOL_ACQUIRE_TIMEOUT", Duration::from_secs(5))?,
            idle_timeout: optional_duration("DB_POOL_IDLE_TIMEOUT", Duration::from_secs(600))?,
            max_lifetime: optional_duration("DB_POOL_MAX_LIFETIME", Duration::from_secs(1800))?,
            connect_timeout: duration("DB_CONNECT_TIMEOUT", Duration::from_secs(5))?,
            startup_timeout: duration("DB_STARTUP_TIMEOUT", Duration::from_secs(45))?,
            resume_budget: duration("DB_RESUME_BUDGET", Self::DEFAULT_RESUME_BUDGET)?,
        };

        let stable_only = get("OTEL_SEMCONV_STABILITY_OPT_IN").is_some_and(|v| {
            let values: Vec<_> = v.split(',').map(str::trim).collect();
            values.contains(&"database") && !values.contains(&"database/dup")
        });
        let tracing = TraceSettings {
            query_text: match get("DB_TRACE_QUERY_TEXT") {
                None => QueryText::Sanitized,
                Some(v) => QueryText::parse(&v).ok_or_else(|| DbError::InvalidConfig {
                    var: "DB_TRACE_QUERY_TEXT",
                    reason: format!("{v:?} is not one of sanitized, raw, off"),
                })?,
            },
            legacy_attributes: flag("DB_TRACE_LEGACY_ATTRIBUTES")?.unwrap_or(!stable_only),
            root_spans: flag("DB_TRACE_ROOT_SPANS")?.unwrap_or(false),
            peer_service: get("DB_PEER_SERVICE"),
            collapse_in_lists: true,
        };

        Ok(Self {
            target,
            pool,
            tracing,
            credentials: None,
            secret_name: get("DB_SECRET_NAME"),
            migrator: None,
            tls,
        })
    }

    /// A configuration for `url` with every other setting at its default (the environment is
    /// not read).
    ///
    /// # Errors
    ///
    /// [`DbError::InvalidConfig`] when the scheme is not a supported engine.
    ///
    /// # Examples
    ///
    /// ```
    /// let config = apprunner::db::DbConfig::from_url("postgres://app@localhost/users")?;
    /// assert_eq!(config.endpoint(), "localhost:5432");
    /// # Ok::<(), apprunner::db::DbError>(())
    /// ```
    pub fn from_url(url: impl Into<String>) -> Result<Self, DbError> {
        let url = url.into();
        Self::from_lookup(|key| (key == "DATABASE_URL").then(|| url.clone()))
    }

    /// The engine.
    ///
    /// # Examples
    ///
    /// ```
    /// let config = apprunner::db::DbConfig::from_url("mariadb://root@127.0.0.1/app")?;
    /// assert_eq!(config.engine(), apprunner::db::DbEngine::MariaDb);
    /// # Ok::<(), apprunner::db::DbError>(())
    /// ```
    pub fn engine(&self) -> DbEngine {
        self.target.engine()
    }

    /// `host:port` (or the SQLite file), as errors and logs name the database.
    ///
    /// # Examples
    ///
    /// ```
    /// let config = apprunner::db::DbConfig::from_url("sqlite:data/app.db")?;
    /// assert_eq!(config.endpoint(), "data/app.db");
    /// # Ok::<(), apprunner::db::DbError>(())
    /// ```
    pub fn endpoint(&self) -> String {
        match &self.target {
            Target::Url { url, engine } => url_endpoint(url, *engine),
            Target::Parts {
                engine: DbEngine::Sqlite,
                database,
                ..
            } => database.clone().unwrap_or_default(),
            Target::Parts {
                engine, host, port, ..
            } => format!("{host}:{}", port.unwrap_or(engine.default_port())),
        }
    }

    /// The pool size (`DB_POOL_MAX_CONNECTIONS`).
    ///
    /// # Examples
    ///
    /// ```
    /// # let config = apprunner::db::DbConfig::from_url("sqlite::memory:")?;
    /// let config = config.max_connections(4);
    /// # let _ = config;
    /// # Ok::<(), apprunner::db::DbError>(())
    /// ```
    pub fn max_connections(mut self, max: u32) -> Self {
        self.pool.max_connections = max.max(1);
        self
    }

    /// Connections kept open (`DB_POOL_MIN_CONNECTIONS`).
    ///
    /// # Examples
    ///
    /// ```
    /// # let config = apprunner::db::DbConfig::from_url("sqlite::memory:")?;
    /// let config = config.min_connections(1);
    /// # let _ = config;
    /// # Ok::<(), apprunner::db::DbError>(())
    /// ```
    pub fn min_connections(mut self, min: u32) -> Self {
        self.pool.min_connections = min;
        self
    }

    /// Longest wait for a connection before a statement fails with
    /// `sqlx::Error::PoolTimedOut` (`DB_POOL_ACQUIRE_TIMEOUT`).
    ///
    /// # Examples
    ///
    /// ```
    /// # let config = apprunner::db::DbConfig::from_url("sqlite::memory:")?;
    /// let config = config.acquire_timeout(std::time::Duration::from_secs(2));
    /// # let _ = config;
    /// # Ok::<(), apprunner::db::DbError>(())
    /// ```
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.pool.acquire_timeout = timeout;
        self
    }

    /// Idle connections are closed after this (`DB_POOL_IDLE_TIMEOUT`; `None` keeps them).
    ///
    /// # Examples
    ///
    /// ```
    /// # let config = apprunner::db::DbConfig::from_url("sqlite::memory:")?;
    /// let config = config.idle_timeout(Some(std::time::Duration::from_secs(60)));
    /// # let _ = config;
    /// # Ok::<(), apprunner::db::DbError>(())
    /// ```
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.pool.idle_timeout = timeout;
        self
    }

    /// Connections are replaced after this (`DB_POOL_MAX_LIFETIME`; `None` keeps them).
    ///
    /// # Examples
    ///
    /// ```
    /// # let config = apprunner::db::DbConfig::from_url("sqlite::memory:")?;
    /// let config = config.max_lifetime(None);
    /// # let _ = config;
    /// # Ok::<(), apprunner::db::DbError>(())
    /// ```
    pub fn max_lifetime(mut self, lifetime: Option<Duration>) -> Self {
        self.pool.max_lifetime = lifetime;
        self
    }

    /// One connection attempt at start-up (`DB_CONNECT_TIMEOUT`).
    ///
    /// # Examples
    ///
    /// ```
    /// # let config = apprunner::db::DbConfig::from_url("sqlite::memory:")?;
    /// let config = config.connect_timeout(std::time::Duration::from_secs(3));
    /// # let _ = config;
    /// # Ok::<(), apprunner::db::DbError>(())
    /// ```
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.pool.connect_timeout = timeout;
        self
    }

    /// How long start-up keeps retrying an unreachable database (`DB_STARTUP_TIMEOUT`).
    ///
    /// # Examples
    ///
    /// ```
    /// # let config = apprunner::db::DbConfig::from_url("sqlite::memory:")?;
    /// let config = config.startup_timeout(std::time::Duration::from_secs(60));
    /// # let _ = config;
    /// # Ok::<(), apprunner::db::DbError>(())
    /// ```
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.pool.startup_timeout = timeout;
        self
    }

    /// At run time, how long requests wait for a database that stopped answering before they
    /// fail as unavailable (`DB_RESUME_BUDGET`, default [`DbConfig::DEFAULT_RESUME_BUDGET`]).
    ///
    /// The budget is counted from the first failure of the outage: requests that arrive later
    /// wait for what is left of it, and once it is spent they fail at once (503 in a service)
    /// until the database answers again. One connection attempt probes the database
    /// meanwhile; the requests queue on it. Keep it under the platform's request limit (App
    /// Runner: 120 s). A pool that is merely out of connections is not an outage: it still
    /// fails after `DB_POOL_ACQUIRE_TIMEOUT`.
    ///
    /// # Examples
    ///
    /// ```
    /// # let config = apprunner::db::DbConfig::from_url("sqlite::memory:")?;
    /// // Aurora Serverless v2 at 0 ACU takes 15–30 s to resume.
    /// let config = config.resume_budget(std::time::Duration::from_secs(45));
    /// # let _ = config;
    /// # Ok::<(), apprunner::db::DbError>(())
    /// ```
    pub fn resume_budget(mut self, budget: Duration) -> Self {
        self.pool.resume_budget = budget;
        self
    }

    /// How `db.query.text` is recorded (`DB_TRACE_QUERY_TEXT`).
    ///
    /// # Examples
    ///
    /// ```
    /// # let config = apprunner::db::DbConfig::from_url("sqlite::memory:")?;
    /// let config = config.query_text(apprunner::db::QueryText::Off);
    /// # let _ = config;
    /// # Ok::<(), apprunner::db::DbError>(())
    /// ```
    pub fn query_text(mut self, mode: QueryText) -> Self {
        self.tracing.query_text = mode;
        self
    }

    /// Whether `IN (?, ?, …)` is shortened to `IN (?)` in `db.query.text` (default `true`).
    ///
    /// # Examples
    ///
    /// ```
    /// # let config = apprunner::db::DbConfig::from_url("sqlite::memory:")?;
    /// let config = config.collapse_in_lists(false);
    /// # let _ = config;
    /// # Ok::<(), apprunner::db::DbError>(())
    /// ```
    pub fn collapse_in_lists(mut self, collapse: bool) -> Self {
        self.tracing.collapse_in_lists = collapse;
        self
    }

    /// Whether the legacy keys the X-Ray exporter reads (`db.system`, `db.name`,
    /// `db.statement`, `db.user`) are recorded too (`DB_TRACE_LEGACY_ATTRIBUTES`, default
    /// `true`).
    ///
    /// # Examples
    ///
    /// ```
    /// # let config = apprunner::db::DbConfig::from_url("sqlite::memory:")?;
    /// let config = config.legacy_attributes(false);
    /// # let _ = config;
    /// # Ok::<(), apprunner::db::DbError>(())
    /// ```
    pub fn legacy_attributes(mut self, on: bool) -> Self {
        self.tracing.legacy_attributes = on;
        self
    }

    /// Whether a statement with no parent span gets a (root) span (`DB_TRACE_ROOT_SPANS`,
    /// default `false`: X-Ray would show each as a top-level segment named after the
    /// database).
    ///
    /// # Examples
    ///
    /// ```
    /// # let config = apprunner::db::DbConfig::from_url("sqlite::memory:")?;
    /// let config = config.root_spans(true);
    /// # let _ = config;
    /// # Ok::<(), apprunner::db::DbError>(())
    /// ```
    pub fn root_spans(mut self, on: bool) -> Self {
        self.tracing.root_spans = on;
        self
    }

    /// Sets `peer.service`, the database's node name in the X-Ray service map
    /// (`DB_PEER_SERVICE`; default `{db.namespace}@{server.address}`).
    ///
    /// # Examples
    ///
    /// ```
    /// # let config = apprunner::db::DbConfig::from_url("sqlite::memory:")?;
    /// let config = config.peer_service("users-db");
    /// # let _ = config;
    /// # Ok::<(), apprunner::db::DbError>(())
    /// ```
    pub fn peer_service(mut self, name: impl Into<String>) -> Self {
        self.tracing.peer_service = Some(name.into());
        self
    }

    /// The TLS mode (wins over `DB_SSL_MODE`, the URL's `sslmode` / `ssl-mode` and
    /// `PGSSLMODE`; see [TLS](Self#tls)).
    ///
    /// # Examples
    ///
    /// ```
    /// use apprunner::db::{DbConfig, SslMode};
    ///
    /// let config = DbConfig::from_url("postgres://app@users.cluster-abc.eu-west-1.rds.amazonaws.com/users")?
    ///     .ssl_mode(SslMode::VerifyFull)
    ///     .ssl_root_cert("/etc/ssl/certs/rds-global-bundle.pem");
    /// assert!(format!("{config:?}").contains("verify-full (DbConfig::ssl_mode)"));
    /// # Ok::<(), apprunner::db::DbError>(())
    /// ```
    pub fn ssl_mode(mut self, mode: SslMode) -> Self {
        self.tls.mode = Some(Sourced {
            value: mode,
            source: FROM_CODE_MODE,
        });
        self
    }

    /// The PEM file of CA certificates the server's certificate must chain to under
    /// `verify-ca` and `verify-full` (wins over `DB_SSL_ROOT_CERT`, the URL's `sslrootcert` /
    /// `ssl-ca` and `PGSSLROOTCERT`). The file must exist when the pool connects.
    ///
    /// # Examples
    ///
    /// ```
    /// use apprunner::db::DbConfig;
    ///
    /// let config = DbConfig::from_lookup(|key| match key {
    ///     "DB_HOST" => Some("users.cluster-abc.eu-west-1.rds.amazonaws.com".into()),
    ///     "DB_SSL_MODE" => Some("verify-full".into()),
    ///     _ => None,
    /// })?
    /// .ssl_root_cert("/etc/ssl/certs/rds-global-bundle.pem");
    /// assert!(format!("{config:?}").contains("rds-global-bundle.pem (DbConfig::ssl_root_cert)"));
    /// # Ok::<(), apprunner::db::DbError>(())
    /// ```
    pub fn ssl_root_cert(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.tls.root_cert = Some(Sourced {
            value: RootCert::File(path.into()),
            source: FROM_CODE_CA,
        });
        self
    }

    /// Where fresh credentials come from when the database rejects the current ones (wins over
    /// `DB_SECRET_NAME`).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::sync::Arc;
    /// use apprunner::db::{DbConfig, RdsSecretSource};
    /// use apprunner::secrets::SecretCache;
    ///
    /// let cache = Arc::new(SecretCache::from_env().await?);
    /// let config = DbConfig::from_env()?.credentials(RdsSecretSource::new(cache, "prod/users-db"));
    /// # let _ = config;
    /// # Ok(()) }
    /// ```
    pub fn credentials(mut self, source: impl CredentialSource) -> Self {
        self.credentials = Some(Arc::new(source));
        self
    }

    /// Runs these migrations once connected (PostgreSQL and MySQL take a lock first, so
    /// instances starting together do not race). Usually `sqlx::migrate!()`, which embeds
    /// `./migrations` at compile time; or loaded at run time as below.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use sqlx::migrate::Migrator;
    ///
    /// let migrator = Migrator::new(std::path::Path::new("./migrations")).await?;
    /// let config = apprunner::db::DbConfig::from_env()?.migrations(migrator);
    /// # let _ = config;
    /// # Ok(()) }
    /// ```
    pub fn migrations(mut self, migrator: Migrator) -> Self {
        self.migrator = Some(Arc::new(migrator));
        self
    }
}

fn parse_duration(var: &'static str, value: &str) -> Result<Duration, DbError> {
    let v = value.trim();
    let (number, unit) = match v.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => (&v[..i], v[i..].trim()),
        None => (v, "s"),
    };
    let n: f64 = number.parse().map_err(|_| DbError::InvalidConfig {
        var,
        reason: format!(
            "{value:?} is not a duration: use e.g. 500ms, 5s, 2m or a number of seconds"
        ),
    })?;
    let seconds = match unit {
        "ms" => n / 1000.0,
        "s" | "" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        _ => {
            return Err(DbError::InvalidConfig {
                var,
                reason: format!("{value:?} has an unknown unit: use ms, s, m or h"),
            });
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| DbError::InvalidConfig {
        var,
        reason: format!("{value:?} is out of range"),
    })
}

#[cfg(test)]
mod tests;
