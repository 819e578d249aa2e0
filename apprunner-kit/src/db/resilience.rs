//! Which errors mean "the database is unavailable", which statements may run again, and
//! when.

use sqlx::error::DatabaseError;
use sqlx::mysql::MySqlDatabaseError;

/// Whether `error` means the database is unavailable for now, rather than that the request or
/// the statement is wrong: answer it with 503 and `Retry-After`, not 500.
///
/// True for:
/// - no connection within the acquire timeout or the resume budget, a closed pool, a
///   connection that broke (I/O, a cut-off protocol exchange, a crashed worker);
/// - PostgreSQL: connection exceptions (class `08`), `57P01` admin shutdown, `57P02` crash
///   shutdown, `57P03` cannot connect now (starting up, in recovery), `53300` too many
///   connections, `25006` read-only transaction (a writer that became a reader in a
///   failover), `28P01`/`28000` rejected credentials (a rotation in progress);
/// - MySQL/MariaDB: 1040 too many connections, 1045 access denied, 1053 server shutdown,
///   1927 connection killed, 1290/1836 read-only, 2002/2003/2006/2013 server gone.
///
/// # Examples
///
/// ```
/// use apprunner::db::is_unavailable;
///
/// assert!(is_unavailable(&sqlx::Error::PoolTimedOut));
/// assert!(!is_unavailable(&sqlx::Error::RowNotFound));
/// ```
///
/// In a handler's error mapping:
///
/// ```
/// use axum::http::{HeaderValue, StatusCode, header};
/// use axum::response::{IntoResponse, Response};
///
/// fn respond(error: sqlx::Error) -> Response {
///     if apprunner::db::is_unavailable(&error) {
///         let mut response = StatusCode::SERVICE_UNAVAILABLE.into_response();
///         response
///             .headers_mut()
///             .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
///         response
///     } else {
///         StatusCode::INTERNAL_SERVER_ERROR.into_response()
///     }
/// }
/// # assert_eq!(respond(sqlx::Error::PoolTimedOut).status(), 503);
/// ```
pub fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(e) => {
            database_unavailable(e.as_ref()) || rejected_credentials(e.as_ref())
        }
        _ => false,
    }
}

/// A statement failed because its connection is gone (broken, or closed by a server shutting
/// down or killing the session): the connection must not be used again, and another one may
/// work.
pub(crate) fn connection_lost(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(e) => match mysql_number(e.as_ref()) {
            Some(n) => matches!(n, 1053 | 1927 | 2006 | 2013),
            None => e.code().is_some_and(|code| {
                matches!(code.as_ref(), "57P01" | "57P02" | "57P03") || code.starts_with("08")
            }),
        },
        _ => false,
    }
}

/// The server refused to write because it is (now) read-only: a failover in progress. The
/// statement did not run, so running it again elsewhere is safe whatever it does.
pub(crate) fn refused_write(error: &sqlx::Error) -> bool {
    let sqlx::Error::Database(e) = error else {
        return false;
    };
    match mysql_number(e.as_ref()) {
        Some(n) => matches!(n, 1290 | 1836),
        None => e.code().as_deref() == Some("25006"),
    }
}

fn database_unavailable(e: &dyn DatabaseError) -> bool {
    match mysql_number(e) {
        Some(n) => matches!(
            n,
            1040 | 1053 | 1927 | 1290 | 1836 | 2002 | 2003 | 2006 | 2013
        ),
        None => e.code().is_some_and(|code| {
            matches!(
                code.as_ref(),
                "57P01" | "57P02" | "57P03" | "53300" | "25006"
            ) || code.starts_with("08")
        }),
    }
}

fn rejected_credentials(e: &dyn DatabaseError) -> bool {
    match mysql_number(e) {
        Some(n) => n == 1045,
        None => matches!(e.code().as_deref(), Some("28P01" | "28000")),
    }
}

fn mysql_number(e: &dyn DatabaseError) -> Option<u16> {
    e.try_downcast_ref::<MySqlDatabaseError>()
        .map(MySqlDatabaseError::number)
}

/// Whether `sql` only reads, judged from its first keyword (comments and parentheses
/// skipped): `SELECT`, `VALUES`, `TABLE`, `SHOW`, `EXPLAIN` (without `ANALYZE`), and `WITH`
/// queries with no `INSERT`, `UPDATE`, `DELETE` or `MERGE` anywhere. A `SELECT` that calls a
/// function with side effects is the caller's to mark (see `Pool::retryable`): the kit does
/// not read function bodies.
pub(crate) fn is_read_only(sql: &str) -> bool {
    let mut words = Words::new(sql);
    let Some(first) = words.next() else {
        return false;
    };
    if eq(first, "select") || eq(first, "values") || eq(first, "table") || eq(first, "show") {
        return !words.any(|w| eq(w, "into")) || eq(first, "show");
    }
    if eq(first, "explain") {
        return !Words::new(sql).any(|w| eq(w, "analyze") || eq(w, "analyse"));
    }
    if eq(first, "with") {
        return !Words::new(sql).any(|w| {
            ["insert", "update", "delete", "merge", "into"]
                .iter()
                .any(|k| eq(w, k))
        });
    }
    false
}

/// [`is_read_only`]'s first step alone, for the hot path: whether the statement may read
/// only, so its arguments are worth keeping for a retry.
pub(crate) fn may_be_read_only(sql: &str) -> bool {
    Words::new(sql).next().is_some_and(|first| {
        ["select", "with", "values", "table", "show", "explain"]
            .iter()
            .any(|k| eq(first, k))
    })
}

fn eq(word: &str, keyword: &str) -> bool {
    word.eq_ignore_ascii_case(keyword)
}

/// The bare words of a statement, outside quotes and comments.
struct Words<'a> {
    sql: &'a str,
    at: usize,
}

impl<'a> Words<'a> {
    fn new(sql: &'a str) -> Self {
        Self { sql, at: 0 }
    }
}

impl<'a> Iterator for Words<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let bytes = self.sql.as_bytes();
        while self.at < bytes.len() {
            let c = bytes[self.at];
            match c {
                b'-' if bytes.get(self.at + 1) == Some(&b'-') => {
                    while self.at < bytes.len() && bytes[self.at] != b'\n' {
                        self.at += 1;
                    }
                }
                b'#' => {
                    while self.at < bytes.len() && bytes[self.at] != b'\n' {
                        self.at += 1;
                    }
                }
                b'/' if bytes.get(self.at + 1) == Some(&b'*') => {
                    self.at += 2;
                    while self.at < bytes.len()
                        && !(bytes[self.at] == b'*' && bytes.get(self.at + 1) == Some(&b'/'))
                    {
                        self.at += 1;
                    }
                    self.at += 2;
                }
                b'\'' | b'"' | b'`' => {
                    self.at += 1;
                    while self.at < bytes.len() && bytes[self.at] != c {
                        self.at += 1;
                    }
                    self.at += 1;
                }
                c if c.is_ascii_alphabetic() || c == b'_' => {
                    let start = self.at;
                    while self.at < bytes.len()
                        && (bytes[self.at].is_ascii_alphanumeric() || bytes[self.at] == b'_')
                    {
                        self.at += 1;
                    }
                    return Some(&self.sql[start..self.at]);
                }
                _ => self.at += 1,
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_told_from_writes_by_their_first_keyword() {
        for sql in [
            "SELECT id, email FROM users WHERE id = $1",
            "  -- by id\n select * from users",
            "/* hint */ (SELECT 1) UNION (SELECT 2)",
            "WITH recent AS (SELECT * FROM users) SELECT count(*) FROM recent",
            "VALUES (1), (2)",
            "SHOW server_version",
            "EXPLAIN SELECT 1",
            "SELECT 'insert into t' AS text",
            "SELECT * FROM users FOR UPDATE",
        ] {
            assert!(is_read_only(sql), "{sql}");
        }
        for sql in [
            "INSERT INTO users (email) VALUES ($1)",
            "UPDATE users SET email = $1",
            "DELETE FROM users",
            "WITH moved AS (DELETE FROM a RETURNING *) SELECT * FROM moved",
            "EXPLAIN ANALYZE DELETE FROM users",
            "SELECT * INTO backup FROM users",
            "CALL refresh()",
            "BEGIN",
            "",
            "   ",
        ] {
            assert!(!is_read_only(sql), "{sql}");
        }
    }

    #[test]
    fn unavailability_covers_the_pool_and_broken_connections_not_bad_requests() {
        assert!(is_unavailable(&sqlx::Error::PoolTimedOut));
        assert!(is_unavailable(&sqlx::Error::PoolClosed));
        assert!(is_unavailable(&sqlx::Error::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionReset
        ))));
        assert!(!is_unavailable(&sqlx::Error::RowNotFound));
        assert!(!is_unavailable(&sqlx::Error::ColumnNotFound("x".into())));
        assert!(connection_lost(&sqlx::Error::Io(std::io::Error::from(
            std::io::ErrorKind::UnexpectedEof
        ))));
        assert!(!connection_lost(&sqlx::Error::PoolTimedOut));
        assert!(!refused_write(&sqlx::Error::PoolTimedOut));
    }
}
