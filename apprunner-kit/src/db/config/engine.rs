//! The engines the kit connects to, and how statement text is recorded.

use std::fmt;

/// The database engine named by `DATABASE_URL`'s scheme or `DB_ENGINE`.
///
/// # Examples
///
/// ```
/// use apprunner::db::DbEngine;
///
/// assert_eq!(DbEngine::parse("aurora-postgresql"), Some(DbEngine::Postgres));
/// assert_eq!(DbEngine::parse("mariadb"), Some(DbEngine::MariaDb));
/// assert_eq!(DbEngine::MariaDb.system_name(), "mariadb");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DbEngine {
    /// PostgreSQL and Aurora PostgreSQL (`postgres://`, `postgresql://`).
    Postgres,
    /// MySQL and Aurora MySQL (`mysql://`).
    MySql,
    /// MariaDB (`mariadb://`, spoken to with the MySQL driver).
    MariaDb,
    /// SQLite (`sqlite:`).
    Sqlite,
}

impl DbEngine {
    /// Parses an engine name or URL scheme (case-insensitive): `postgres`, `postgresql`,
    /// `aurora-postgresql`, `mysql`, `aurora-mysql`, `aurora`, `mariadb`, `sqlite`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(apprunner::db::DbEngine::parse("oracle"), None);
    /// ```
    pub fn parse(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "postgres" | "postgresql" | "aurora-postgresql" | "pg" => Some(Self::Postgres),
            "mysql" | "aurora-mysql" | "aurora" => Some(Self::MySql),
            "mariadb" => Some(Self::MariaDb),
            "sqlite" | "sqlite3" => Some(Self::Sqlite),
            _ => None,
        }
    }

    /// The `db.system.name` of this engine: `postgresql`, `mysql`, `mariadb` or `sqlite`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(apprunner::db::DbEngine::Postgres.system_name(), "postgresql");
    /// ```
    pub fn system_name(self) -> &'static str {
        match self {
            Self::Postgres => "postgresql",
            Self::MySql => "mysql",
            Self::MariaDb => "mariadb",
            Self::Sqlite => "sqlite",
        }
    }

    /// The default port (0 for SQLite).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(apprunner::db::DbEngine::MySql.default_port(), 3306);
    /// ```
    pub fn default_port(self) -> u16 {
        match self {
            Self::Postgres => 5432,
            Self::MySql | Self::MariaDb => 3306,
            Self::Sqlite => 0,
        }
    }
}

impl fmt::Display for DbEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.system_name())
    }
}

/// How `db.query.text` (and the legacy `db.statement`) is recorded.
///
/// # Examples
///
/// ```
/// use apprunner::db::QueryText;
///
/// assert_eq!(QueryText::parse("raw"), Some(QueryText::Raw));
/// assert_eq!(QueryText::default(), QueryText::Sanitized);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum QueryText {
    /// Literals replaced by `?` (the default), parameterized statements included: a
    /// parameterized statement can still embed literals built with `format!`.
    #[default]
    Sanitized,
    /// The statement as sent. Opt in only when statements never embed values.
    Raw,
    /// Not recorded (the span name still summarises the statement).
    Off,
}

impl QueryText {
    /// Parses `sanitized`, `raw` or `off` (case-insensitive).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(apprunner::db::QueryText::parse("OFF"), Some(apprunner::db::QueryText::Off));
    /// ```
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "sanitized" | "sanitize" | "on" => Some(Self::Sanitized),
            "raw" => Some(Self::Raw),
            "off" | "none" => Some(Self::Off),
            _ => None,
        }
    }
}
