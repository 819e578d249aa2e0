//! What differs between PostgreSQL, MySQL/MariaDB and SQLite: connect options, error codes,
//! and the calls into each driver's connection executor.

use std::borrow::Cow;
use std::str::FromStr as _;

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use sqlx::error::DatabaseError;
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::mysql::{MySql, MySqlConnectOptions, MySqlDatabaseError};
use sqlx::postgres::{PgConnectOptions, Postgres};
use sqlx::sqlite::{Sqlite, SqliteConnectOptions};
use sqlx::{ConnectOptions as _, Database, Either, Execute, Executor as _, SqlStr};

use super::config::{DbEngine, Target, TlsSettings};
use super::credentials::Credentials;
use super::error::DbError;
use super::sanitize::SqlDialect;

/// One item of a statement's result stream: a query result or a row.
pub(crate) type Step<DB> = Either<<DB as Database>::QueryResult, <DB as Database>::Row>;

/// The result stream of a statement.
pub(crate) type Steps<'e, DB> = BoxStream<'e, Result<Step<DB>, sqlx::Error>>;

/// The connect options of a database.
pub(crate) type Options<DB> = <<DB as Database>::Connection as sqlx::Connection>::Options;

/// A database `apprunner::db` can trace: [`sqlx::Postgres`] (also Aurora PostgreSQL),
/// [`sqlx::MySql`] (MySQL, MariaDB, Aurora MySQL) and [`sqlx::Sqlite`]. Sealed.
///
/// # Examples
///
/// ```
/// use apprunner::db::{Driver, Pool};
///
/// fn describe<DB: Driver>(pool: &Pool<DB>) -> String {
///     format!("{pool:?}")
/// }
/// # let _ = describe::<sqlx::Postgres>;
/// ```
pub trait Driver: Database + private::Backend {}

impl Driver for Postgres {}
impl Driver for MySql {}
impl Driver for Sqlite {}

/// Who the spans say the database is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub(crate) namespace: Option<String>,
    pub(crate) address: Option<String>,
    pub(crate) port: Option<u16>,
    pub(crate) user: Option<String>,
}

impl Endpoint {
    /// `host:port`, or the namespace (SQLite file) when there is no server.
    pub(crate) fn describe(&self) -> String {
        match (&self.address, self.port) {
            (Some(host), Some(port)) if host.contains(':') => format!("[{host}]:{port}"),
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.clone(),
            (None, _) => self.namespace.clone().unwrap_or_default(),
        }
    }
}

// The sealed trait's methods mention crate-private types on purpose: nobody outside can name
// or implement it.
#[allow(private_interfaces)]
pub(crate) mod private {
    use super::*;

    /// The per-database operations behind [`Driver`]. Not part of the public API.
    #[allow(unreachable_pub, missing_docs)]
    pub trait Backend: Database<Arguments: Clone> {
        const ENGINE: DbEngine;
        const DIALECT: SqlDialect;

        /// The connect options of `target`, with the kit's TLS settings over the driver's.
        fn options(target: &Target, tls: &TlsSettings) -> Result<Options<Self>, DbError>;

        fn endpoint(options: &Options<Self>) -> Endpoint;

        fn with_credentials(options: Options<Self>, credentials: &Credentials) -> Options<Self>;

        /// The database's code for an error: SQLSTATE (PostgreSQL), error number (MySQL),
        /// extended result code (SQLite).
        fn status_code(error: &dyn DatabaseError) -> Option<Cow<'_, str>>;

        /// Whether the server says when it ends a session under a statement, in a way that
        /// proves the statement did not commit (see [`Self::rolled_back`]): then every pool
        /// statement keeps what a second attempt needs.
        const SAYS_ROLLED_BACK: bool = false;

        /// Whether `error`, ending a statement run outside a transaction, proves it did not
        /// commit, so running it again is safe whatever it does.
        fn rolled_back(_error: &sqlx::Error) -> bool {
            false
        }

        /// Whether opening a connection failed on its credentials.
        fn is_auth_failure(error: &dyn DatabaseError) -> bool;

        /// Whether a database error while connecting may go away by itself (starting up, too
        /// many connections).
        fn is_transient(error: &dyn DatabaseError) -> bool;

        /// The `db.system.name` the server reports, when it differs from [`Self::ENGINE`]
        /// (MariaDB behind a `mysql://` URL).
        fn detect_engine(_conn: &mut Self::Connection) -> BoxFuture<'_, Option<DbEngine>> {
            Box::pin(async { None })
        }

        fn fetch_many<'e, 'c: 'e, 'q: 'e, E>(
            conn: &'c mut Self::Connection,
            query: E,
        ) -> Steps<'e, Self>
        where
            E: 'q + Execute<'q, Self>;

        fn fetch_optional<'e, 'c: 'e, 'q: 'e, E>(
            conn: &'c mut Self::Connection,
            query: E,
        ) -> BoxFuture<'e, Result<Option<Self::Row>, sqlx::Error>>
        where
            E: 'q + Execute<'q, Self>;

        fn prepare_with<'e, 'c: 'e>(
            conn: &'c mut Self::Connection,
            sql: SqlStr,
            parameters: &'e [Self::TypeInfo],
        ) -> BoxFuture<'e, Result<Self::Statement, sqlx::Error>>;

        fn describe<'e, 'c: 'e>(
            conn: &'c mut Self::Connection,
            sql: SqlStr,
        ) -> BoxFuture<'e, Result<sqlx::Describe<Self>, sqlx::Error>>;

        fn migrate<'a>(
            migrator: &'a Migrator,
            pool: &'a sqlx::Pool<Self>,
        ) -> BoxFuture<'a, Result<(), MigrateError>>;
    }
}

/// The calls into the driver's own `Executor` for `&mut Connection`.
macro_rules! delegate_executor {
    () => {
        fn fetch_many<'e, 'c: 'e, 'q: 'e, E>(
            conn: &'c mut Self::Connection,
            query: E,
        ) -> Steps<'e, Self>
        where
            E: 'q + Execute<'q, Self>,
        {
            conn.fetch_many(query)
        }

        fn fetch_optional<'e, 'c: 'e, 'q: 'e, E>(
            conn: &'c mut Self::Connection,
            query: E,
        ) -> BoxFuture<'e, Result<Option<Self::Row>, sqlx::Error>>
        where
            E: 'q + Execute<'q, Self>,
        {
            conn.fetch_optional(query)
        }

        fn prepare_with<'e, 'c: 'e>(
            conn: &'c mut Self::Connection,
            sql: SqlStr,
            parameters: &'e [Self::TypeInfo],
        ) -> BoxFuture<'e, Result<Self::Statement, sqlx::Error>> {
            conn.prepare_with(sql, parameters)
        }

        fn describe<'e, 'c: 'e>(
            conn: &'c mut Self::Connection,
            sql: SqlStr,
        ) -> BoxFuture<'e, Result<sqlx::Describe<Self>, sqlx::Error>> {
            conn.describe(sql)
        }

        fn migrate<'a>(
            migrator: &'a Migrator,
            pool: &'a sqlx::Pool<Self>,
        ) -> BoxFuture<'a, Result<(), MigrateError>> {
            Box::pin(migrator.run(pool))
        }
    };
}

fn mismatch(target: &Target, expected: DbEngine) -> Result<(), DbError> {
    let configured = target.engine();
    let compatible =
        configured == expected || (expected == DbEngine::MySql && configured == DbEngine::MariaDb);
    if compatible {
        Ok(())
    } else {
        Err(DbError::EngineMismatch {
            configured: configured.to_string(),
            expected: expected.system_name(),
        })
    }
}

/// A server engine's connect options from the `DB_*` parts. PostgreSQL's and MySQL's options
/// have the same builder methods but no trait in common, hence a macro.
macro_rules! server_options {
    ($options:ty, $host:expr, $port:expr, $user:expr, $password:expr, $database:expr) => {{
        let mut options = <$options>::new().host($host);
        if let Some(port) = $port {
            options = options.port(*port);
        }
        if let Some(user) = $user {
            options = options.username(user);
        }
        if let Some(password) = $password {
            options = options.password(password);
        }
        if let Some(database) = $database {
            options = options.database(database);
        }
        options
    }};
}

/// A server engine's address for spans: the Unix socket, else the host.
macro_rules! server_address {
    ($options:expr) => {
        match $options.get_socket() {
            Some(socket) => socket.display().to_string(),
            None => $options.get_host().to_owned(),
        }
    };
}

fn invalid_url(error: &sqlx::Error, password: Option<&str>) -> DbError {
    DbError::InvalidConfig {
        var: "DATABASE_URL",
        reason: super::error::scrub(&error.to_string(), password),
    }
}

#[allow(private_interfaces)]
impl private::Backend for Postgres {
    const ENGINE: DbEngine = DbEngine::Postgres;
    const DIALECT: SqlDialect = SqlDialect::Postgres;

    fn options(target: &Target, tls: &TlsSettings) -> Result<PgConnectOptions, DbError> {
        mismatch(target, Self::ENGINE)?;
        tls.check_files()?;
        let options = match target {
            Target::Url { url, .. } => PgConnectOptions::from_str(url)
                .map_err(|e| invalid_url(&e, target.password().as_deref()))?,
            Target::Parts {
                host,
                port,
                user,
                password,
                database,
                ..
            } => server_options!(PgConnectOptions, host, port, user, password, database),
        };
        Ok(tls.apply_pg(options).disable_statement_logging())
    }

    fn endpoint(options: &PgConnectOptions) -> Endpoint {
        let user = options.get_username();
        Endpoint {
            // The database defaults to the user name.
            namespace: Some(options.get_database().unwrap_or(user).to_owned()),
            address: Some(server_address!(options)),
            port: Some(options.get_port()),
            user: Some(user.to_owned()),
        }
    }

    fn with_credentials(options: PgConnectOptions, credentials: &Credentials) -> PgConnectOptions {
        options
            .username(credentials.username())
            .password(credentials.password())
    }

    fn status_code(error: &dyn DatabaseError) -> Option<Cow<'_, str>> {
        error.code()
    }

    // A backend ended by `pg_terminate_backend`, a fast or immediate shutdown or another
    // backend's crash answers the statement it runs with 57P01/57P02 and aborts its
    // transaction; once a statement has committed, its answer (CommandComplete) is sent before
    // the backend looks at the signal again, so the error never stands for a committed one.
    const SAYS_ROLLED_BACK: bool = true;

    fn rolled_back(error: &sqlx::Error) -> bool {
        matches!(
            error.as_database_error().and_then(|e| e.code()).as_deref(),
            Some("57P01" | "57P02")
        )
    }

    fn is_auth_failure(error: &dyn DatabaseError) -> bool {
        // invalid_password, invalid_authorization_specification
        matches!(error.code().as_deref(), Some("28P01" | "28000"))
    }

    fn is_transient(error: &dyn DatabaseError) -> bool {
        match error.code().as_deref() {
            // cannot_connect_now (starting up, Aurora resuming), too_many_connections,
            // admin_shutdown, crash_shutdown, connection exceptions
            Some(code) => {
                matches!(code, "57P03" | "53300" | "57P01" | "57P02") || code.starts_with("08")
            }
            None => false,
        }
    }

    delegate_executor!();
}

#[allow(private_interfaces)]
impl private::Backend for MySql {
    const ENGINE: DbEngine = DbEngine::MySql;
    const DIALECT: SqlDialect = SqlDialect::MySql;

    fn options(target: &Target, tls: &TlsSettings) -> Result<MySqlConnectOptions, DbError> {
        mismatch(target, Self::ENGINE)?;
        tls.check_files()?;
        let options = match target {
            Target::Url { url, .. } => {
                // sqlx only knows `mysql://`.
                let url = match url.strip_prefix("mariadb:") {
                    Some(rest) => format!("mysql:{rest}"),
                    None => url.to_string(),
                };
                let url = zeroize::Zeroizing::new(url);
                MySqlConnectOptions::from_str(&url)
                    .map_err(|e| invalid_url(&e, target.password().as_deref()))?
            }
            Target::Parts {
                host,
                port,
                user,
                password,
                database,
                ..
            } => server_options!(MySqlConnectOptions, host, port, user, password, database),
        };
        Ok(tls.apply_mysql(options).disable_statement_logging())
    }

    fn endpoint(options: &MySqlConnectOptions) -> Endpoint {
        Endpoint {
            namespace: options.get_database().map(str::to_owned),
            address: Some(server_address!(options)),
            port: Some(options.get_port()),
            user: Some(options.get_username().to_owned()),
        }
    }

    fn with_credentials(
        options: MySqlConnectOptions,
        credentials: &Credentials,
    ) -> MySqlConnectOptions {
        options
            .username(credentials.username())
            .password(credentials.password())
    }

    fn status_code(error: &dyn DatabaseError) -> Option<Cow<'_, str>> {
        // MySQL's error numbers are more specific than its SQLSTATEs (semantic conventions).
        match error.try_downcast_ref::<MySqlDatabaseError>() {
            Some(e) => Some(Cow::Owned(e.number().to_string())),
            None => error.code(),
        }
    }

    fn is_auth_failure(error: &dyn DatabaseError) -> bool {
        // ER_ACCESS_DENIED_ERROR
        error
            .try_downcast_ref::<MySqlDatabaseError>()
            .is_some_and(|e| e.number() == 1045)
    }

    fn is_transient(error: &dyn DatabaseError) -> bool {
        // too many connections, server shutdown in progress, connection killed
        error
            .try_downcast_ref::<MySqlDatabaseError>()
            .is_some_and(|e| matches!(e.number(), 1040 | 1053 | 1927))
    }

    fn detect_engine(conn: &mut sqlx::MySqlConnection) -> BoxFuture<'_, Option<DbEngine>> {
        Box::pin(async move {
            let version: String = sqlx::query_scalar("SELECT VERSION()")
                .fetch_one(conn)
                .await
                .ok()?;
            version
                .to_ascii_lowercase()
                .contains("mariadb")
                .then_some(DbEngine::MariaDb)
        })
    }

    delegate_executor!();
}

#[allow(private_interfaces)]
impl private::Backend for Sqlite {
    const ENGINE: DbEngine = DbEngine::Sqlite;
    const DIALECT: SqlDialect = SqlDialect::Sqlite;

    fn options(target: &Target, _: &TlsSettings) -> Result<SqliteConnectOptions, DbError> {
        mismatch(target, Self::ENGINE)?;
        let options = match target {
            Target::Url { url, .. } => {
                SqliteConnectOptions::from_str(url).map_err(|e| invalid_url(&e, None))?
            }
            Target::Parts { database, .. } => SqliteConnectOptions::new()
                .filename(database.as_deref().unwrap_or(":memory:"))
                .create_if_missing(true),
        };
        Ok(options.disable_statement_logging())
    }

    fn endpoint(options: &SqliteConnectOptions) -> Endpoint {
        let file = options.get_filename().display().to_string();
        let namespace = if file.starts_with("file:sqlx-in-memory-") || file == ":memory:" {
            ":memory:".to_owned()
        } else {
            file
        };
        Endpoint {
            namespace: Some(namespace),
            ..Endpoint::default()
        }
    }

    fn with_credentials(options: SqliteConnectOptions, _: &Credentials) -> SqliteConnectOptions {
        options
    }

    fn status_code(error: &dyn DatabaseError) -> Option<Cow<'_, str>> {
        error.code()
    }

    fn is_auth_failure(_: &dyn DatabaseError) -> bool {
        false
    }

    fn is_transient(error: &dyn DatabaseError) -> bool {
        // SQLITE_BUSY, SQLITE_LOCKED (and their extended codes)
        error
            .code()
            .and_then(|c| c.parse::<u32>().ok())
            .is_some_and(|c| matches!(c & 0xff, 5 | 6))
    }

    delegate_executor!();
}
