//! At-least-once delivery made exactly-once processing: the kit's own table of messages
//! claimed and done, in the service's database (PostgreSQL, MySQL/MariaDB or SQLite).
//!
//! ```text
//! apprunner_jobs (message_id PK, job, state 'running' | 'done', claimed_at_ms, done_at_ms)
//! ```
//!
//! A delivery first *claims* its message id (an insert that only one delivery can win). The
//! winner runs the job, then marks the row `done`, or deletes it when the job failed so that
//! SNS's next retry runs it again. A delivery that finds the row `done` does nothing; one that
//! finds it `running` is told to come back later, unless the claim is older than the lease
//! (the job's budget and a margin: its runner died), which it then takes over.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::{MySql, Postgres, Sqlite};

use crate::db::Pool;

/// The table's name.
pub(crate) const TABLE: &str = "apprunner_jobs";

/// Where deliveries are recorded: the service's own database, through its pool (any
/// `apprunner::db::Pool` converts into one).
///
/// ```no_run
/// # async fn demo(pool: apprunner::db::Pool<sqlx::Postgres>) {
/// let jobs = apprunner::jobs::Jobs::new().store(pool);
/// # let _ = jobs;
/// # }
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum JobStore {
    /// PostgreSQL (and Aurora PostgreSQL).
    Postgres(Pool<Postgres>),
    /// MySQL, MariaDB (and Aurora MySQL).
    MySql(Pool<MySql>),
    /// SQLite.
    Sqlite(Pool<Sqlite>),
}

/// What a claim found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Claim {
    /// This delivery runs the job.
    Won,
    /// The job already ran for this message id.
    AlreadyDone,
    /// Another delivery of the same message is running it now.
    InProgress,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Runs the same statements on whichever pool: `$pool` is bound to the engine's pool and
/// `$p(n)` gives the engine's placeholder for parameter `n`.
macro_rules! on_each {
    ($store:expr, |$pool:ident, $ph:ident| $body:expr) => {
        match $store {
            JobStore::Postgres($pool) => {
                let $ph = |n: usize| format!("${n}");
                $body
            }
            JobStore::MySql($pool) => {
                let $ph = |_: usize| "?".to_owned();
                $body
            }
            JobStore::Sqlite($pool) => {
                let $ph = |n: usize| format!("?{n}");
                $body
            }
        }
    };
}

impl JobStore {
    /// Creates the table if it does not exist.
    pub(crate) async fn ensure_table(&self) -> Result<(), sqlx::Error> {
        let ddl = |id: &str, text: &str| {
            format!(
                "CREATE TABLE IF NOT EXISTS {TABLE} (\
                 message_id {id} NOT NULL PRIMARY KEY, \
                 job {text} NOT NULL, \
                 state VARCHAR(16) NOT NULL, \
                 claimed_at_ms BIGINT NOT NULL, \
                 done_at_ms BIGINT NULL)"
            )
        };
        // SQLite has no length-limited VARCHAR; the others need one for a primary key.
        let sql = match self {
            JobStore::Sqlite(_) => ddl("TEXT", "TEXT"),
            _ => ddl("VARCHAR(128)", "VARCHAR(256)"),
        };
        on_each!(self, |pool, _p| {
            sqlx::query(sqlx::AssertSqlSafe(sql)).execute(pool).await?;
        });
        Ok(())
    }

    /// Claims `message_id` for this delivery; a `running` claim older than `lease` is taken
    /// over.
    pub(crate) async fn claim(
        &self,
        message_id: &str,
        job: &str,
        lease: Duration,
    ) -> Result<Claim, sqlx::Error> {
        let now = now_ms();
        let stale_before = now.saturating_sub(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
        on_each!(self, |pool, p| {
            let insert = match self {
                JobStore::MySql(_) => format!(
                    "INSERT IGNORE INTO {TABLE} (message_id, job, state, claimed_at_ms) \
                     VALUES ({}, {}, 'running', {})",
                    p(1),
                    p(2),
                    p(3)
                ),
                _ => format!(
                    "INSERT INTO {TABLE} (message_id, job, state, claimed_at_ms) \
                     VALUES ({}, {}, 'running', {}) ON CONFLICT (message_id) DO NOTHING",
                    p(1),
                    p(2),
                    p(3)
                ),
            };
            let inserted = sqlx::query(sqlx::AssertSqlSafe(insert))
                .bind(message_id)
                .bind(job)
                .bind(now)
                .execute(pool)
                .await?
                .rows_affected();
            if inserted == 1 {
                return Ok(Claim::Won);
            }
            // Someone has it: take over a claim whose runner is gone.
            let take_over = format!(
                "UPDATE {TABLE} SET claimed_at_ms = {} \
                 WHERE message_id = {} AND state = 'running' AND claimed_at_ms < {}",
                p(1),
                p(2),
                p(3)
            );
            let taken = sqlx::query(sqlx::AssertSqlSafe(take_over))
                .bind(now)
                .bind(message_id)
                .bind(stale_before)
                .execute(pool)
                .await?
                .rows_affected();
            if taken == 1 {
                return Ok(Claim::Won);
            }
            let state: Option<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT state FROM {TABLE} WHERE message_id = {}",
                p(1)
            )))
            .bind(message_id)
            .fetch_optional(pool)
            .await?;
            Ok(match state.as_ref().map(|(s,)| s.as_str()) {
                Some("done") => Claim::AlreadyDone,
                // Released between our insert and this read: the next retry wins it.
                _ => Claim::InProgress,
            })
        })
    }

    /// Marks the job done for `message_id`.
    pub(crate) async fn complete(&self, message_id: &str) -> Result<(), sqlx::Error> {
        let now = now_ms();
        on_each!(self, |pool, p| {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE {TABLE} SET state = 'done', done_at_ms = {} WHERE message_id = {}",
                p(1),
                p(2)
            )))
            .bind(now)
            .bind(message_id)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// Gives the claim up after a failure, so that the next delivery runs the job again.
    pub(crate) async fn release(&self, message_id: &str) -> Result<(), sqlx::Error> {
        on_each!(self, |pool, p| {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {TABLE} WHERE message_id = {} AND state = 'running'",
                p(1)
            )))
            .bind(message_id)
            .execute(pool)
            .await?;
            Ok(())
        })
    }
}

impl From<Pool<Postgres>> for JobStore {
    fn from(pool: Pool<Postgres>) -> Self {
        JobStore::Postgres(pool)
    }
}

impl From<Pool<MySql>> for JobStore {
    fn from(pool: Pool<MySql>) -> Self {
        JobStore::MySql(pool)
    }
}

impl From<Pool<Sqlite>> for JobStore {
    fn from(pool: Pool<Sqlite>) -> Self {
        JobStore::Sqlite(pool)
    }
}
