//! The users table, on PostgreSQL or SQLite, through `apprunner::db`'s traced pools.
//!
//! One [`Store`] holds either pool. Every statement is written once, in SQL both databases
//! accept (`$1` placeholders, `RETURNING`, text ids and timestamps: see the migration), and
//! `with_pool!` runs it on whichever pool is there. Each statement becomes a CLIENT span under
//! the request's SERVER span, with its literals sanitized by the kit.

use std::path::PathBuf;

use apprunner::db::{DbConfig, DbEngine, DbError, PgPool, SqlitePool};
use serde::Serialize;
use sqlx::migrate::Migrator;
use utoipa::ToSchema;

/// The migrations in `migrations/`, embedded at compile time (no database needed to build).
static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// The SQLite file used when no database is configured (`SQLITE_PATH` overrides it).
const DEFAULT_SQLITE_PATH: &str = "users.db";

/// Runs `$body` with `$pool` bound to the store's pool, whichever database it is: the body is
/// compiled once per database, so the same `sqlx::query_as` call is typed for each.
macro_rules! with_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match $store {
            Store::Postgres($pool) => $body,
            Store::Sqlite($pool) => $body,
        }
    };
}

/// A user as the API shows it. There is no password hash here, so no route can leak it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema, sqlx::FromRow)]
pub(crate) struct User {
    /// The user's id (a UUIDv7).
    #[schema(format = "uuid", example = "019a5c6e-7b1f-7c3a-9d2e-5f4a3b2c1d0e")]
    pub(crate) id: String,
    /// The email address, trimmed and lower-cased.
    #[schema(format = Email, example = "ada@example.com")]
    pub(crate) email: String,
    /// When the user was created (UTC).
    #[schema(format = DateTime, example = "2026-11-22T17:49:00.123Z")]
    pub(crate) created_at: String,
    /// When the user was last changed (UTC).
    #[schema(format = DateTime, example = "2026-11-22T17:49:00.123Z")]
    pub(crate) updated_at: String,
}

/// What login needs: the user and the stored argon2 hash. Never serialized.
#[derive(sqlx::FromRow)]
pub(crate) struct Credentials {
    #[sqlx(flatten)]
    pub(crate) user: User,
    pub(crate) password_hash: String,
}

/// A new or replaced user, validated and hashed.
pub(crate) struct UserInput {
    pub(crate) email: String,
    pub(crate) password_hash: String,
}

/// Why a statement failed, as far as the routes care.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    /// Another user has this email (unique constraint).
    #[error("a user with this email already exists")]
    DuplicateEmail,
    /// The database is unavailable for now: no connection in time, a connection that died,
    /// a server shutting down or failing over, credentials being rotated
    /// (`apprunner::db::is_unavailable`).
    #[error("the database is unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// Anything else.
    #[error("database statement failed")]
    Database(#[source] sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::DuplicateEmail,
            _ if apprunner::db::is_unavailable(&error) => StoreError::Unavailable(error),
            _ => StoreError::Database(error),
        }
    }
}

/// Why the store could not be opened at start-up.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OpenError {
    /// The kit could not connect (its message names host:port and the cause, never a password).
    #[error(transparent)]
    Db(#[from] DbError),
    /// A database the users API has no migrations for.
    #[error(
        "the users API runs on PostgreSQL or SQLite, not {0:?}: set DATABASE_URL to a postgres:// \
         URL, or unset it to use a local SQLite file"
    )]
    UnsupportedEngine(DbEngine),
}

/// The users table, on PostgreSQL (production) or SQLite (local default). Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) enum Store {
    /// PostgreSQL (or Aurora PostgreSQL): `DATABASE_URL`, the `DB_*` variables, or
    /// `DB_SECRET_NAME` / `DB_SECRET` expanded by the kit's secrets bootstrap.
    Postgres(PgPool),
    /// A local SQLite file.
    Sqlite(SqlitePool),
}

impl Store {
    /// Connects to the configured database and applies the migrations.
    ///
    /// PostgreSQL when `DATABASE_URL` or the `DB_*` variables name one (the kit retries while it
    /// is starting up, e.g. an Aurora cluster resuming); otherwise the SQLite file at
    /// `SQLITE_PATH` (default `users.db` in the working directory), created if missing.
    pub(crate) async fn open() -> Result<Self, OpenError> {
        let config = match DbConfig::from_env() {
            Ok(config) => config,
            Err(DbError::NotConfigured) => local_sqlite_config()?,
            Err(e) => return Err(e.into()),
        };
        // Migrations run before the first request; on PostgreSQL sqlx holds an advisory lock
        // meanwhile, so instances starting together do not race.
        let store = match config.engine() {
            DbEngine::Postgres => {
                let pool = PgPool::connect_with(config).await?;
                pool.migrate(&MIGRATOR).await?;
                Store::Postgres(pool)
            }
            DbEngine::Sqlite => {
                let pool = SqlitePool::connect_with(config).await?;
                pool.migrate(&MIGRATOR).await?;
                Store::Sqlite(pool)
            }
            other => return Err(OpenError::UnsupportedEngine(other)),
        };
        Ok(store)
    }

    /// `postgresql` or `sqlite`.
    pub(crate) fn system(&self) -> &'static str {
        match self {
            Store::Postgres(_) => "postgresql",
            Store::Sqlite(_) => "sqlite",
        }
    }

    /// Inserts a user. `id` and the timestamps are made here.
    pub(crate) async fn create(&self, input: &UserInput) -> Result<User, StoreError> {
        let user = User {
            id: uuid::Uuid::now_v7().to_string(),
            email: input.email.clone(),
            created_at: now(),
            updated_at: String::new(),
        };
        let user = User {
            updated_at: user.created_at.clone(),
            ..user
        };
        let sql = "INSERT INTO users (id, email, password_hash, created_at, updated_at) \
                   VALUES ($1, $2, $3, $4, $5)";
        with_pool!(self, |pool| sqlx::query(sql)
            .bind(&user.id)
            .bind(&user.email)
            .bind(&input.password_hash)
            .bind(&user.created_at)
            .bind(&user.updated_at)
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))?;
        Ok(user)
    }

    /// One page of users, oldest first, and how many there are in all.
    pub(crate) async fn list(
        &self,
        limit: u32,
        offset: u64,
    ) -> Result<(Vec<User>, u64), StoreError> {
        let sql = "SELECT id, email, created_at, updated_at FROM users \
                   ORDER BY id LIMIT $1 OFFSET $2";
        let offset = i64::try_from(offset).unwrap_or(i64::MAX);
        let users = with_pool!(self, |pool| sqlx::query_as::<_, User>(sql)
            .bind(i64::from(limit))
            .bind(offset)
            .fetch_all(pool)
            .await)?;
        let total: i64 = with_pool!(self, |pool| sqlx::query_scalar(
            "SELECT COUNT(*) FROM users"
        )
        .fetch_one(pool)
        .await)?;
        Ok((users, u64::try_from(total).unwrap_or(0)))
    }

    /// The user with this id.
    pub(crate) async fn get(&self, id: &str) -> Result<Option<User>, StoreError> {
        let sql = "SELECT id, email, created_at, updated_at FROM users WHERE id = $1";
        Ok(with_pool!(self, |pool| sqlx::query_as::<_, User>(sql)
            .bind(id)
            .fetch_optional(pool)
            .await)?)
    }

    /// The user with this email, with the password hash (for login only).
    pub(crate) async fn credentials(&self, email: &str) -> Result<Option<Credentials>, StoreError> {
        let sql = "SELECT id, email, created_at, updated_at, password_hash FROM users \
                   WHERE email = $1";
        Ok(with_pool!(self, |pool| sqlx::query_as::<_, Credentials>(
            sql
        )
        .bind(email)
        .fetch_optional(pool)
        .await)?)
    }

    /// Replaces a user's email and password; `None` when there is no such user.
    pub(crate) async fn update(
        &self,
        id: &str,
        input: &UserInput,
    ) -> Result<Option<User>, StoreError> {
        let sql = "UPDATE users SET email = $1, password_hash = $2, updated_at = $3 \
                   WHERE id = $4 RETURNING id, email, created_at, updated_at";
        let updated_at = now();
        Ok(with_pool!(self, |pool| sqlx::query_as::<_, User>(sql)
            .bind(&input.email)
            .bind(&input.password_hash)
            .bind(&updated_at)
            .bind(id)
            .fetch_optional(pool)
            .await)?)
    }

    /// Deletes a user and returns what it was; `None` when there is no such user.
    pub(crate) async fn delete(&self, id: &str) -> Result<Option<User>, StoreError> {
        let sql = "DELETE FROM users WHERE id = $1 RETURNING id, email, created_at, updated_at";
        Ok(with_pool!(self, |pool| sqlx::query_as::<_, User>(sql)
            .bind(id)
            .fetch_optional(pool)
            .await)?)
    }

    /// Records that the welcome was sent to `user_id` (the `welcome` job).
    pub(crate) async fn record_welcome(&self, user_id: &str) -> Result<(), StoreError> {
        let sql = "INSERT INTO welcomes (user_id, sent_at) VALUES ($1, $2)";
        with_pool!(self, |pool| sqlx::query(sql)
            .bind(user_id)
            .bind(now())
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Applies the pending migrations (the `migrate` job), under the database's migration lock.
    pub(crate) async fn migrate(&self) -> Result<(), apprunner::db::DbError> {
        with_pool!(self, |pool| pool.migrate(&MIGRATOR).await)
    }

    /// Where the jobs' deliveries are recorded: this database.
    pub(crate) fn job_store(&self) -> apprunner::jobs::JobStore {
        match self {
            Store::Postgres(pool) => pool.clone().into(),
            Store::Sqlite(pool) => pool.clone().into(),
        }
    }

    /// Closes the pool, waiting for connections in use to come back.
    pub(crate) async fn close(&self) {
        with_pool!(self, |pool| pool.close().await);
    }
}

/// The local default: an SQLite file, with the pool settings still read from the environment.
/// Local mode: no database is configured (neither `DATABASE_URL` nor the `DB_*` variables), so
/// [`Store::open`] will use an SQLite file.
pub(crate) fn is_local() -> bool {
    matches!(DbConfig::from_env(), Err(DbError::NotConfigured))
}

fn local_sqlite_config() -> Result<DbConfig, DbError> {
    let path = std::env::var_os("SQLITE_PATH")
        .filter(|p| !p.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_SQLITE_PATH), PathBuf::from);
    let path = path.to_string_lossy().into_owned();
    DbConfig::from_lookup(|key| match key {
        "DB_ENGINE" => Some("sqlite".to_owned()),
        "DB_DATABASE" => Some(path.clone()),
        "DATABASE_URL" | "DB_HOST" => None,
        other => std::env::var(other).ok(),
    })
}

/// Now, as stored: UTC RFC 3339 with milliseconds, fixed width, so text order is time order.
fn now() -> String {
    let t = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_fixed_width_rfc3339_utc() {
        let t = now();
        assert_eq!(t.len(), "2026-11-22T17:49:00.123Z".len(), "{t}");
        assert!(t.ends_with('Z') && t.as_bytes()[10] == b'T', "{t}");
    }

    async fn sqlite_store() -> Store {
        let pool = SqlitePool::connect("sqlite::memory:").await.unwrap();
        pool.migrate(&MIGRATOR).await.unwrap();
        Store::Sqlite(pool)
    }

    fn input(email: &str) -> UserInput {
        UserInput {
            email: email.to_owned(),
            password_hash: "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA".to_owned(),
        }
    }

    #[tokio::test]
    async fn the_queries_run_on_sqlite() {
        let store = sqlite_store().await;
        let ada = store.create(&input("ada@example.com")).await.unwrap();
        let bob = store.create(&input("bob@example.com")).await.unwrap();
        assert!(matches!(
            store.create(&input("ada@example.com")).await,
            Err(StoreError::DuplicateEmail)
        ));

        let (page, total) = store.list(1, 1).await.unwrap();
        assert_eq!((page, total), (vec![bob.clone()], 2));
        assert_eq!(store.get(&ada.id).await.unwrap(), Some(ada.clone()));
        let credentials = store.credentials("ada@example.com").await.unwrap().unwrap();
        assert_eq!(credentials.user, ada);
        assert!(credentials.password_hash.starts_with("$argon2id$"));

        assert!(matches!(
            store.update(&bob.id, &input("ada@example.com")).await,
            Err(StoreError::DuplicateEmail)
        ));
        let renamed = store
            .update(&bob.id, &input("robert@example.com"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(renamed.email, "robert@example.com");
        assert_eq!(renamed.created_at, bob.created_at);
        assert_eq!(
            store.update("nope", &input("x@example.com")).await.unwrap(),
            None
        );

        assert_eq!(store.delete(&ada.id).await.unwrap(), Some(ada.clone()));
        assert_eq!(store.delete(&ada.id).await.unwrap(), None);
        assert_eq!(store.get(&ada.id).await.unwrap(), None);
    }
}
