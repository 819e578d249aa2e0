//! [`App`]: what `#[apprunner::main]` expands to, usable by hand.
//!
//! The run order is the point of this module:
//!
//! 1. secrets are bootstrapped (Secrets Manager → environment) while the process has a single
//!    thread, so `set_var` is sound;
//! 2. the Tokio multi-thread runtime is built;
//! 3. telemetry is initialised;
//! 4. the service runs (parameters come from [`FromContext`], the result goes through
//!    [`IntoOutcome`], which serves a returned `axum::Router`);
//! 5. telemetry is shut down, flushing every span;
//! 6. an [`ExitCode`] is returned — `std::process::exit` is never called, so nothing skips the
//!    flush. An error at any step becomes one logged line and exit code 1.

use std::future::Future;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::error::Chain;
use crate::telemetry::{TelemetryConfig, TelemetryGuard};
use crate::{Error, Result};

/// A service's entry point: configuration, then [`run`](Self::run).
///
/// ```no_run
/// fn main() -> std::process::ExitCode {
///     apprunner::App::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
///         .service_name("worker")
///         .run(|_cx| async {
///             tracing::info!("working");
///             Ok(())
///         })
/// }
/// ```
#[derive(Debug)]
pub struct App {
    package: String,
    version: String,
    service_name: Option<String>,
    telemetry: Option<TelemetryHook>,
    secrets: Option<String>,
    #[cfg(feature = "db")]
    migrations: Option<sqlx::migrate::Migrator>,
}

/// The function given to [`App::telemetry`]. It may be called twice: when the service fails
/// before its runtime exists, telemetry is set up to log that.
#[derive(Clone)]
struct TelemetryHook(Arc<dyn Fn(TelemetryConfig) -> TelemetryConfig + Send + Sync>);

impl std::fmt::Debug for TelemetryHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TelemetryHook")
    }
}

/// What [`App::run`] hands the service and [`FromContext`] implementations: the app's identity
/// (service name, version) and the start-up configuration resources are built from (the
/// migrations for the first database pool). Cheap to clone.
///
/// Not to be confused with `opentelemetry::Context`, the trace context a span is started in.
///
/// ```
/// fn describe(cx: &apprunner::AppContext) -> String {
///     format!("{} {}", cx.service_name(), cx.version())
/// }
/// ```
#[derive(Debug, Clone)]
pub struct AppContext {
    inner: Arc<AppContextInner>,
}

#[derive(Debug)]
struct AppContextInner {
    service_name: String,
    version: String,
    /// Handed to the first database pool the service asks for.
    #[cfg(feature = "db")]
    migrations: std::sync::Mutex<Option<sqlx::migrate::Migrator>>,
}

impl AppContext {
    /// The `service.name` telemetry reports.
    ///
    /// ```
    /// # fn f(cx: &apprunner::AppContext) { let _ = cx.service_name(); }
    /// ```
    pub fn service_name(&self) -> &str {
        &self.inner.service_name
    }

    /// The service's version (the package version).
    ///
    /// ```
    /// # fn f(cx: &apprunner::AppContext) { let _ = cx.version(); }
    /// ```
    pub fn version(&self) -> &str {
        &self.inner.version
    }
}

/// A type `#[apprunner::main]` can provide as a parameter.
///
/// Implement it for your own resources to have them injected the same way.
///
/// ```
/// struct Greeting(String);
///
/// impl apprunner::FromContext for Greeting {
///     async fn from_context(cx: &apprunner::AppContext) -> apprunner::Result<Self> {
///         Ok(Greeting(format!("hello from {}", cx.service_name())))
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a parameter of `#[apprunner::main]`",
    label = "not provided by the runtime",
    note = "supported parameter types: `apprunner::AppContext`, `apprunner::db::Pool<DB>` (feature `db`), \
            `apprunner::secrets::SecretCache` (feature `secrets`), or your own type implementing `apprunner::FromContext`"
)]
pub trait FromContext: Sized {
    /// Builds the value, e.g. connects a database pool.
    fn from_context(cx: &AppContext) -> impl Future<Output = Result<Self>>;
}

impl FromContext for AppContext {
    async fn from_context(cx: &AppContext) -> Result<Self> {
        Ok(cx.clone())
    }
}

/// A connected, instrumented database pool, configured from the environment (`DATABASE_URL`,
/// else the `DB_*` variables; see [`DbConfig`](crate::db::DbConfig)). The first pool asked for
/// runs the migrations given with `migrate = "…"` / [`App::migrations`].
#[cfg(feature = "db")]
impl<DB: crate::db::Driver> FromContext for crate::db::Pool<DB> {
    async fn from_context(cx: &AppContext) -> Result<Self> {
        let mut config = crate::db::DbConfig::from_env()?;
        let migrations = cx
            .inner
            .migrations
            .lock()
            .map(|mut m| m.take())
            .unwrap_or_default();
        if let Some(migrator) = migrations {
            config = config.migrations(migrator);
        }
        Ok(crate::db::Pool::connect_with(config).await?)
    }
}

/// A Secrets Manager cache for run-time reads (rotated credentials, API keys), built from the
/// standard AWS configuration chain and named after the service (see
/// [`SecretCache::service_name`](crate::secrets::SecretCache::service_name)).
#[cfg(feature = "secrets")]
impl FromContext for crate::secrets::SecretCache {
    async fn from_context(cx: &AppContext) -> Result<Self> {
        Ok(crate::secrets::SecretCache::from_env()
            .await?
            .service_name(cx.service_name()))
    }
}

/// What `#[apprunner::main]` does with the value the service returns.
///
/// - `()`: nothing; the service is done.
/// - `axum::Router` (feature `http`): served with [`http::Server::from_env`](crate::http::Server::from_env)
///   until SIGTERM/SIGINT.
/// - `Result<T, E>`: `T` as above; an `Err` is logged on one line and the exit code is 1.
///
/// ```
/// # async fn f(cx: apprunner::AppContext) -> apprunner::Result<()> {
/// use apprunner::IntoOutcome;
/// ().into_outcome(&cx).await
/// # }
/// ```
#[diagnostic::on_unimplemented(
    message = "`#[apprunner::main]` cannot return `{Self}`",
    label = "unsupported return type",
    note = "supported return types: `()`, `axum::Router` (feature `http`), and `Result<T, E>` of those \
            where `E` converts into `Box<dyn std::error::Error + Send + Sync>` (e.g. `apprunner::Result<axum::Router>`)"
)]
pub trait IntoOutcome {
    /// Finishes the service with this value.
    fn into_outcome(self, cx: &AppContext) -> impl Future<Output = Result<()>>;
}

impl IntoOutcome for () {
    async fn into_outcome(self, _cx: &AppContext) -> Result<()> {
        Ok(())
    }
}

#[cfg(feature = "http")]
impl IntoOutcome for axum::Router {
    async fn into_outcome(self, _cx: &AppContext) -> Result<()> {
        crate::http::Server::from_env()?.serve(self).await?;
        Ok(())
    }
}

impl<T, E> IntoOutcome for std::result::Result<T, E>
where
    T: IntoOutcome,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    async fn into_outcome(self, cx: &AppContext) -> Result<()> {
        match self {
            Ok(value) => value.into_outcome(cx).await,
            Err(e) => {
                let boxed: Box<dyn std::error::Error + Send + Sync> = e.into();
                // Keep the kit's own errors as they are (they name what to fix).
                match boxed.downcast::<Error>() {
                    Ok(kit) => Err(*kit),
                    Err(other) => Err(Error::Service(other)),
                }
            }
        }
    }
}

impl App {
    /// An app named after its package (`env!("CARGO_PKG_NAME")`, `env!("CARGO_PKG_VERSION")`).
    ///
    /// ```
    /// let app = apprunner::App::new("users-api", "1.0.0");
    /// # let _ = app;
    /// ```
    pub fn new(package: impl Into<String>, version: impl Into<String>) -> Self {
        Self {
            package: package.into(),
            version: version.into(),
            service_name: None,
            telemetry: None,
            secrets: None,
            #[cfg(feature = "db")]
            migrations: None,
        }
    }

    /// Sets `service.name` (wins over `OTEL_SERVICE_NAME`; the package name is the fallback).
    ///
    /// ```
    /// let app = apprunner::App::new("users-api", "1.0.0").service_name("users");
    /// # let _ = app;
    /// ```
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(name.into());
        self
    }

    /// Adjusts the telemetry configuration before telemetry starts. `adjust` receives the
    /// configuration read from the environment (`OTEL_*`, `RUST_LOG`, with the service's name
    /// and version filled in); what it sets wins over the environment.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let app = apprunner::App::new("users-api", "1.0.0").telemetry(|config| {
    ///     config.min_flush_interval(Duration::from_millis(50))
    /// });
    /// # let _ = app;
    /// ```
    pub fn telemetry(
        mut self,
        adjust: impl Fn(TelemetryConfig) -> TelemetryConfig + Send + Sync + 'static,
    ) -> Self {
        self.telemetry = Some(TelemetryHook(Arc::new(adjust)));
        self
    }

    /// Adds secret mappings (the syntax of `APPRUNNER_SECRETS`, see
    /// `apprunner::secrets::Plan::mappings`) to those declared in the environment.
    ///
    /// ```
    /// let app = apprunner::App::new("users-api", "1.0.0").secrets("JWT_SECRET=users/jwt#key");
    /// # let _ = app;
    /// ```
    pub fn secrets(mut self, mappings: impl Into<String>) -> Self {
        self.secrets = Some(mappings.into());
        self
    }

    /// Migrations to run (under sqlx's lock) when the first database pool is provided.
    ///
    /// `#[apprunner::main(migrate = "migrations")]` passes `sqlx::migrate!("migrations")`, which
    /// needs `sqlx` (feature `migrate`) among the service's dependencies.
    ///
    /// ```no_run
    /// # fn f(migrator: sqlx::migrate::Migrator) {
    /// let app = apprunner::App::new("users-api", "1.0.0").migrations(migrator);
    /// # let _ = app;
    /// # }
    /// ```
    #[cfg(feature = "db")]
    pub fn migrations(mut self, migrator: sqlx::migrate::Migrator) -> Self {
        self.migrations = Some(migrator);
        self
    }

    /// Placeholder so a `migrate` option without the `db` feature reports one error.
    #[cfg(not(feature = "db"))]
    #[doc(hidden)]
    pub fn migrations(self, _none: crate::__private::NoDb) -> Self {
        self
    }

    fn telemetry_config(&self) -> Result<TelemetryConfig> {
        let mut config = TelemetryConfig::from_env()?
            .default_service_name(self.package.clone())
            .service_version(self.version.clone());
        if let Some(name) = &self.service_name {
            config = config.service_name(name.clone());
        }
        if let Some(TelemetryHook(adjust)) = &self.telemetry {
            config = adjust(config);
        }
        Ok(config)
    }

    #[cfg(feature = "secrets")]
    fn bootstrap_secrets(&self) -> Result<crate::secrets::Report> {
        let mut plan = crate::secrets::Plan::from_env()?;
        if let Some(spec) = &self.secrets {
            plan = plan.mappings(spec)?;
        }
        Ok(crate::secrets::bootstrap(&plan)?)
    }

    /// Runs the service, in this order: secrets are bootstrapped (Secrets Manager → environment)
    /// while the process has a single thread; the Tokio multi-thread runtime is built;
    /// telemetry is initialised; the service runs; telemetry is shut down, flushing every span;
    /// an [`ExitCode`] is returned (`std::process::exit` is never called, so nothing skips the
    /// flush). An error at any step becomes one logged line and exit code 1.
    ///
    /// Call it from a synchronous `main`, before any thread or runtime exists. `service`
    /// receives the [`AppContext`] and returns the service's future.
    ///
    /// ```no_run
    /// fn main() -> std::process::ExitCode {
    ///     apprunner::App::new("hello", "0.1.0").run(|_cx| async { Ok(()) })
    /// }
    /// ```
    pub fn run<F, Fut>(self, service: F) -> ExitCode
    where
        F: FnOnce(AppContext) -> Fut,
        Fut: Future<Output = Result<()>>,
    {
        // 1. Secrets, while this is the only thread.
        #[cfg(feature = "secrets")]
        let report = match self.bootstrap_secrets() {
            Ok(report) => Some(report),
            Err(e) => return self.fail_before_runtime(&e),
        };
        #[cfg(not(feature = "secrets"))]
        if self.secrets.is_some() {
            return self.fail_before_runtime(&Error::service(
                "`secrets` needs the `secrets` feature of apprunner-kit",
            ));
        }

        // 2. The runtime.
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => return self.fail_before_runtime(&Error::Runtime(e)),
        };

        // 3. Telemetry.
        let started = self.telemetry_config().and_then(|config| {
            let service_name = config.resolved_service_name();
            Ok((config.init()?, service_name))
        });
        let (telemetry, service_name) = match started {
            Ok(started) => started,
            Err(e) => {
                report_without_telemetry(&e);
                return ExitCode::FAILURE;
            }
        };
        #[cfg(feature = "secrets")]
        if let Some(report) = &report {
            runtime.block_on(async { report.emit_spans(&service_name) });
        }
        let cx = AppContext {
            inner: Arc::new(AppContextInner {
                service_name,
                version: self.version.clone(),
                #[cfg(feature = "db")]
                migrations: std::sync::Mutex::new(self.migrations),
            }),
        };

        // 4. The service, or the one-off `migrate` command.
        #[cfg(feature = "db")]
        let result = if migrate_command() {
            drop(service);
            runtime.block_on(migrate(&cx))
        } else {
            runtime.block_on(service(cx))
        };
        #[cfg(not(feature = "db"))]
        let result = runtime.block_on(service(cx));
        if let Err(e) = &result {
            tracing::error!(target: "apprunner", error = %Chain(e), "service failed");
        }

        // 5. Flush.
        let flushed = runtime.block_on(telemetry.shutdown());
        if let Err(e) = &flushed {
            tracing::warn!(target: "apprunner", error = %Chain(e), "telemetry shutdown incomplete");
        }
        runtime.shutdown_timeout(Duration::from_secs(1));

        // 6. The exit code.
        if result.is_ok() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }

    /// An error before the runtime exists: now that no environment variable will be set any
    /// more, telemetry may start (it spawns threads) so the error is logged like any other.
    fn fail_before_runtime(&self, error: &Error) -> ExitCode {
        match self.telemetry_config().and_then(|c| Ok(c.init()?)) {
            Ok(guard) => {
                tracing::error!(target: "apprunner", error = %Chain(error), "service failed to start");
                finish(guard);
            }
            Err(_) => report_without_telemetry(error),
        }
        ExitCode::FAILURE
    }
}

/// Whether the process was started as `<service> migrate`: the one-off command that applies
/// the migrations and exits (for a deploy pipeline or an ECS one-off task).
#[cfg(feature = "db")]
fn migrate_command() -> bool {
    std::env::args_os()
        .nth(1)
        .is_some_and(|arg| arg == "migrate")
}

/// `<service> migrate`: connects to the configured database (`DATABASE_URL` or the `DB_*`
/// variables), applies the pending migrations and returns. Two at once are safe: sqlx takes
/// the database's migration lock (an advisory lock on PostgreSQL, `GET_LOCK` on MySQL), so
/// each migration is applied once.
#[cfg(feature = "db")]
async fn migrate(cx: &AppContext) -> Result<()> {
    use crate::db::{DbConfig, DbEngine, Pool};

    let migrator = cx
        .inner
        .migrations
        .lock()
        .map(|mut m| m.take())
        .unwrap_or_default()
        .ok_or_else(|| {
            Error::service(
                "`migrate`: this service has no migrations; give them with                  #[apprunner::main(migrate = \"migrations\")] or App::migrations",
            )
        })?;
    let count = migrator.iter().count();
    let config = DbConfig::from_env()?.migrations(migrator);
    let engine = config.engine();
    match engine {
        DbEngine::Postgres => {
            Pool::<sqlx::Postgres>::connect_with(config)
                .await?
                .close()
                .await;
        }
        DbEngine::MySql | DbEngine::MariaDb => {
            Pool::<sqlx::MySql>::connect_with(config)
                .await?
                .close()
                .await;
        }
        DbEngine::Sqlite => {
            Pool::<sqlx::Sqlite>::connect_with(config)
                .await?
                .close()
                .await;
        }
    }
    tracing::info!(
        target: "apprunner",
        migrations = count,
        database = ?engine,
        "migrate: the database is up to date"
    );
    Ok(())
}

fn finish(guard: TelemetryGuard) {
    let _ = guard.shutdown_blocking();
}

/// Last resort when not even logging could be set up: one line on standard error.
#[allow(clippy::print_stderr)]
fn report_without_telemetry(error: &Error) {
    eprintln!("error: {}", Chain(error));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_telemetry_hook_sees_the_app_settings_and_wins_over_them() {
        let app = App::new("users-api", "1.2.3");
        assert_eq!(
            app.telemetry_config().unwrap().resolved_service_name(),
            std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "users-api".to_owned())
        );
        let app = App::new("users-api", "1.2.3")
            .service_name("users")
            .telemetry(|config| {
                let seen = config.resolved_service_name();
                config.service_name(format!("{seen}-adjusted"))
            });
        assert_eq!(
            app.telemetry_config().unwrap().resolved_service_name(),
            "users-adjusted"
        );
        assert_eq!(format!("{:?}", app.telemetry), "Some(TelemetryHook)");
    }
}
