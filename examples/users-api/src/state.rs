//! What every request handler shares, built by `#[apprunner::main]` through `FromContext`.

use crate::auth::{Passwords, Tokens};
use crate::store::Store;

/// The service's state: the users store, the password hasher and the login token keys.
/// Cheap to clone (everything inside is shared).
#[derive(Clone, Debug)]
pub(crate) struct AppState {
    /// The users table.
    pub(crate) store: Store,
    /// Argon2id, off the async workers.
    pub(crate) passwords: Passwords,
    /// The JWT keys.
    pub(crate) tokens: Tokens,
    /// Publishes background jobs, when `APPRUNNER_JOBS_TOPIC_ARN` names their topic.
    pub(crate) jobs: Option<apprunner::jobs::Publisher>,
}

/// `#[apprunner::main]` provides an `AppState` parameter by calling this after secrets are in
/// the environment and telemetry runs: it opens the database (PostgreSQL when configured, else
/// a local SQLite file), applies the migrations and loads the JWT key (made up for the run in
/// local mode when `JWT_SECRET` is unset).
impl apprunner::FromContext for AppState {
    async fn from_context(_cx: &apprunner::AppContext) -> apprunner::Result<Self> {
        let store = Store::open().await.map_err(apprunner::Error::service)?;
        let local = matches!(store, Store::Sqlite(_));
        if local {
            tracing::info!(
                database = store.system(),
                "local mode: no DATABASE_URL or DB_* variables, using an SQLite file \
                 (SQLITE_PATH, default users.db)"
            );
        }
        let tokens = Tokens::from_env(local).map_err(apprunner::Error::service)?;
        let jobs = crate::jobs::publisher()
            .await
            .map_err(apprunner::Error::service)?;
        Ok(AppState {
            store,
            passwords: Passwords::new(),
            tokens,
            jobs,
        })
    }
}
