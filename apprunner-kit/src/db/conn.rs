//! Traced connections and transactions.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use super::driver::Driver;
use super::instrument::StatementSpan;
use super::shared::Shared;

enum Inner<'c, DB: Driver> {
    Pooled(sqlx::pool::PoolConnection<DB>),
    Transaction(sqlx::Transaction<'c, DB>),
}

/// A traced connection: what `&mut *tx` (a [`Transaction`]) and `&mut *conn` (a
/// [`PoolConnection`]) give. `&mut Connection` is a `sqlx::Executor`, and every statement run
/// on it is a span, like on the [`Pool`](super::Pool).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let pool = apprunner::db::SqlitePool::connect("sqlite::memory:").await?;
/// let mut conn = pool.acquire().await?;
/// sqlx::query("CREATE TEMP TABLE t (x INTEGER)").execute(&mut *conn).await?;
/// sqlx::query("INSERT INTO t VALUES (1)").execute(&mut *conn).await?;
/// let n: i64 = sqlx::query_scalar("SELECT count(*) FROM t").fetch_one(&mut *conn).await?;
/// assert_eq!(n, 1);
/// # Ok(()) }
/// ```
pub struct Connection<'c, DB: Driver> {
    inner: Inner<'c, DB>,
    pub(crate) shared: Arc<Shared<DB>>,
    /// Open transactions on this connection (savepoints included).
    depth: usize,
}

impl<DB: Driver> fmt::Debug for Connection<'_, DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("system", &self.shared.tracer.meta().system)
            .field("transaction_depth", &self.depth)
            .finish_non_exhaustive()
    }
}

impl<'c, DB: Driver> Connection<'c, DB> {
    /// The driver's connection, untraced: for driver-specific calls (e.g. PostgreSQL
    /// `COPY`). Statements run on it get no span.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use sqlx::Connection as _;
    ///
    /// let pool = apprunner::db::SqlitePool::connect("sqlite::memory:").await?;
    /// let mut conn = pool.acquire().await?;
    /// conn.raw().ping().await?;
    /// # Ok(()) }
    /// ```
    pub fn raw(&mut self) -> &mut DB::Connection {
        match &mut self.inner {
            Inner::Pooled(conn) => conn,
            Inner::Transaction(tx) => tx,
        }
    }

    /// Starts a transaction on this connection, or a savepoint inside the current one (a
    /// `BEGIN` or `SAVEPOINT` span).
    ///
    /// # Errors
    ///
    /// The database's error.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let pool = apprunner::db::SqlitePool::connect("sqlite::memory:").await?;
    /// let mut tx = pool.begin().await?;
    /// let mut savepoint = tx.begin().await?;
    /// sqlx::query("SELECT 1").execute(&mut *savepoint).await?;
    /// savepoint.rollback().await?;
    /// tx.commit().await?;
    /// # Ok(()) }
    /// ```
    pub async fn begin(&mut self) -> Result<Transaction<'_, DB>, sqlx::Error> {
        let command = if self.depth == 0 {
            "BEGIN"
        } else {
            "SAVEPOINT"
        };
        let mut span = self.shared.tracer.command_span(command);
        let depth = self.depth + 1;
        let shared = Arc::clone(&self.shared);
        let result = sqlx::Connection::begin(self.raw()).await;
        if let Some(span) = &mut span {
            span.finish::<DB, _>(&result);
        }
        Ok(Transaction {
            conn: Connection {
                inner: Inner::Transaction(result?),
                shared,
                depth,
            },
        })
    }
}

/// A connection checked out of a [`Pool`](super::Pool) with
/// [`acquire`](super::Pool::acquire); returned to the pool when dropped. Use `&mut *conn` (or
/// `&mut conn`) as the executor.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let pool = apprunner::db::SqlitePool::connect("sqlite::memory:").await?;
/// let mut conn = pool.acquire().await?;
/// let one: i64 = sqlx::query_scalar("SELECT 1").fetch_one(&mut *conn).await?;
/// assert_eq!(one, 1);
/// # Ok(()) }
/// ```
pub struct PoolConnection<DB: Driver> {
    conn: Connection<'static, DB>,
}

impl<DB: Driver> PoolConnection<DB> {
    pub(crate) fn new(conn: sqlx::pool::PoolConnection<DB>, shared: Arc<Shared<DB>>) -> Self {
        Self {
            conn: Connection {
                inner: Inner::Pooled(conn),
                shared,
                depth: 0,
            },
        }
    }
}

impl<DB: Driver> fmt::Debug for PoolConnection<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PoolConnection").field(&self.conn).finish()
    }
}

impl<DB: Driver> Deref for PoolConnection<DB> {
    type Target = Connection<'static, DB>;

    fn deref(&self) -> &Self::Target {
        &self.conn
    }
}

impl<DB: Driver> DerefMut for PoolConnection<DB> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.conn
    }
}

/// A transaction (or a savepoint inside one): [`Pool::begin`](super::Pool::begin) or
/// [`Connection::begin`]. Use `&mut *tx` (or `&mut tx`) as the executor. Rolled back when
/// dropped without [`commit`](Self::commit), as in sqlx.
///
/// `BEGIN`, `COMMIT` and `ROLLBACK` (`SAVEPOINT`, `RELEASE SAVEPOINT` and
/// `ROLLBACK TO SAVEPOINT` for nested ones) are spans too, siblings of the statements run in
/// between.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let pool = apprunner::db::SqlitePool::connect("sqlite::memory:").await?;
/// sqlx::query("CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER)")
///     .execute(&pool)
///     .await?;
///
/// let mut tx = pool.begin().await?;
/// sqlx::query("INSERT INTO accounts VALUES (1, 100)").execute(&mut *tx).await?;
/// sqlx::query("UPDATE accounts SET balance = balance - 30 WHERE id = 1").execute(&mut *tx).await?;
/// tx.commit().await?;
///
/// let balance: i64 = sqlx::query_scalar("SELECT balance FROM accounts WHERE id = 1")
///     .fetch_one(&pool)
///     .await?;
/// assert_eq!(balance, 70);
/// # Ok(()) }
/// ```
pub struct Transaction<'c, DB: Driver> {
    conn: Connection<'c, DB>,
}

impl<'c, DB: Driver> Transaction<'c, DB> {
    pub(crate) fn new(tx: sqlx::Transaction<'c, DB>, shared: Arc<Shared<DB>>) -> Self {
        Self {
            conn: Connection {
                inner: Inner::Transaction(tx),
                shared,
                depth: 1,
            },
        }
    }

    /// Commits the transaction (or releases the savepoint).
    ///
    /// # Errors
    ///
    /// The database's error.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let pool = apprunner::db::SqlitePool::connect("sqlite::memory:").await?;
    /// let tx = pool.begin().await?;
    /// tx.commit().await?;
    /// # Ok(()) }
    /// ```
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        let command = if self.conn.depth > 1 {
            "RELEASE SAVEPOINT"
        } else {
            "COMMIT"
        };
        self.end(command, |tx| Box::pin(tx.commit())).await
    }

    /// Rolls the transaction back (or to the savepoint).
    ///
    /// # Errors
    ///
    /// The database's error.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let pool = apprunner::db::SqlitePool::connect("sqlite::memory:").await?;
    /// let tx = pool.begin().await?;
    /// tx.rollback().await?;
    /// # Ok(()) }
    /// ```
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        let command = if self.conn.depth > 1 {
            "ROLLBACK TO SAVEPOINT"
        } else {
            "ROLLBACK"
        };
        self.end(command, |tx| Box::pin(tx.rollback())).await
    }

    async fn end(
        self,
        command: &'static str,
        finish: impl FnOnce(
            sqlx::Transaction<'c, DB>,
        ) -> futures_util::future::BoxFuture<'c, Result<(), sqlx::Error>>,
    ) -> Result<(), sqlx::Error> {
        let tracer = &self.conn.shared.tracer;
        let mut span: Option<StatementSpan> = tracer.command_span(command);
        let Inner::Transaction(tx) = self.conn.inner else {
            unreachable!("a Transaction always holds a sqlx transaction")
        };
        let result = finish(tx).await;
        if let Some(span) = &mut span {
            span.finish::<DB, _>(&result);
        }
        result
    }
}

impl<DB: Driver> fmt::Debug for Transaction<'_, DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Transaction").field(&self.conn).finish()
    }
}

impl<'c, DB: Driver> Deref for Transaction<'c, DB> {
    type Target = Connection<'c, DB>;

    fn deref(&self) -> &Self::Target {
        &self.conn
    }
}

impl<DB: Driver> DerefMut for Transaction<'_, DB> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.conn
    }
}
