//! The outage gate: while the database does not answer (restarting, failing over, Aurora
//! resuming from zero capacity), requests wait for one probe instead of each trying to
//! connect, up to the resume budget.

use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sqlx::ConnectOptions as _;
use tokio::sync::watch;

use super::config::is_tls_failure;
use super::driver::Driver;
use super::instrument::TARGET;
use super::shared::Shared;

/// The longest pause between two probe attempts: one connection attempt every half second
/// costs the database nothing, and the requests waiting learn within it that it is back.
const PROBE_BACKOFF_CAP: Duration = Duration::from_millis(500);

/// A probe whose first attempt connects within this found the database answering: the
/// caller's timeout was the pool's load, not an outage.
const FALSE_ALARM: Duration = Duration::from_secs(1);

/// How an outage ended, as seen by the requests that waited on it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Ended {
    /// Outages ended so far.
    count: u64,
    /// The probe's first attempt connected: the database never was away (the pool was busy,
    /// or one session was killed).
    pub(crate) false_alarm: bool,
}

pub(crate) struct Outage {
    budget: Duration,
    /// When the current outage began; `None` while the database answers.
    down_since: Mutex<Option<Instant>>,
    ended: watch::Sender<Ended>,
}

impl Outage {
    pub(crate) fn new(budget: Duration) -> Self {
        Self {
            budget,
            down_since: Mutex::new(None),
            ended: watch::Sender::new(Ended::default()),
        }
    }

    fn since(&self) -> Option<Instant> {
        *self
            .down_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Returns at once while the database answers; during an outage, waits for its end up to
    /// the budget (counted from the outage's start), then fails as unavailable.
    pub(crate) async fn wait(&self) -> Result<Option<Ended>, sqlx::Error> {
        // Subscribe before reading the state, so an end between the two is not missed.
        let mut ended = self.ended.subscribe();
        let Some(since) = self.since() else {
            return Ok(None);
        };
        let deadline = since + self.budget;
        let waited = tokio::time::timeout_at(deadline.into(), ended.changed()).await;
        match waited {
            Ok(_) => Ok(Some(*ended.borrow())),
            Err(_) => Err(self.unavailable(since)),
        }
    }

    fn unavailable(&self, since: Instant) -> sqlx::Error {
        sqlx::Error::Io(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "the database has not answered for {:.1} s, more than the resume budget of {:?} \
                 (DB_RESUME_BUDGET)",
                since.elapsed().as_secs_f64(),
                self.budget
            ),
        ))
    }

    /// Marks the start of an outage, first seen by a caller that began waiting at `since`;
    /// true when this call started it (and must start the probe).
    fn begin(&self, since: Instant) -> bool {
        let mut down_since = self
            .down_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if down_since.is_some() {
            return false;
        }
        *down_since = Some(since);
        true
    }

    fn end(&self, false_alarm: bool) {
        *self
            .down_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
        self.ended.send_modify(|e| {
            e.count += 1;
            e.false_alarm = false_alarm;
        });
    }
}

impl<DB: Driver> Shared<DB> {
    /// Reports that the database may be away (`cause`, met by a caller that began waiting at
    /// `since`: the budget counts from there); starts the probe unless one runs.
    pub(crate) fn report_outage(self: &Arc<Self>, cause: &sqlx::Error, since: Instant) {
        if self.outage.begin(since) {
            tracing::debug!(target: TARGET, error = %cause, "database may be away: probing it");
            tokio::spawn(probe(Arc::clone(self)));
        }
    }
}

/// Connects until the database answers (or the pool closes), one attempt at a time, then ends
/// the outage.
async fn probe<DB: Driver>(shared: Arc<Shared<DB>>) {
    let outage = &shared.outage;
    let started = Instant::now();
    let mut backoff = Duration::from_millis(50);
    let mut attempts = 0u32;
    loop {
        if shared.pool.is_closed() {
            outage.end(false);
            return;
        }
        attempts += 1;
        let options = shared.pool.connect_options();
        // One attempt may take long: a resuming Aurora cluster accepts the connection and
        // answers once it runs.
        let limit = outage.budget.max(Duration::from_secs(1));
        let error = match tokio::time::timeout(limit, options.connect()).await {
            Ok(Ok(conn)) => {
                let _ = sqlx::Connection::close(conn).await;
                None
            }
            // The server answered: what it said is for the requests to meet.
            Ok(Err(sqlx::Error::Database(e))) if !DB::is_transient(e.as_ref()) => None,
            // A certificate that does not verify will not verify later either.
            Ok(Err(e)) if is_tls_failure(&e) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some(format!("no answer within {limit:?}")),
        };
        let Some(error) = error else {
            if attempts > 1 {
                tracing::info!(
                    target: TARGET,
                    endpoint = %shared.tracer.meta().endpoint.describe(),
                    attempts,
                    down_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                    "database answers again"
                );
            }
            // A database that answered the first attempt at once was never away; one that
            // held it (Aurora resuming) was.
            outage.end(attempts == 1 && started.elapsed() < FALSE_ALARM);
            return;
        };
        if attempts == 1 {
            tracing::warn!(
                target: TARGET,
                endpoint = %shared.tracer.meta().endpoint.describe(),
                error = %error,
                budget_ms = u64::try_from(outage.budget.as_millis()).unwrap_or(u64::MAX),
                "database not answering: requests wait for it up to the resume budget (DB_RESUME_BUDGET)"
            );
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(PROBE_BACKOFF_CAP);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn no_outage_no_wait() {
        let outage = Outage::new(Duration::from_secs(30));
        assert_eq!(outage.wait().await.unwrap(), None);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn waiters_wake_when_the_outage_ends_and_learn_how() {
        let outage = Arc::new(Outage::new(Duration::from_secs(30)));
        assert!(outage.begin(Instant::now()));
        assert!(!outage.begin(Instant::now()), "one outage at a time");
        let waiter = tokio::spawn({
            let outage = Arc::clone(&outage);
            async move { outage.wait().await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        outage.end(false);
        let ended = waiter.await.unwrap().unwrap().expect("ended");
        assert!(!ended.false_alarm);
        assert_eq!(outage.wait().await.unwrap(), None, "back to normal");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn past_the_budget_requests_fail_at_once() {
        let outage = Outage::new(Duration::from_millis(50));
        assert!(outage.begin(Instant::now()));
        let error = outage.wait().await.unwrap_err();
        assert!(crate::db::is_unavailable(&error), "{error}");
        assert!(error.to_string().contains("DB_RESUME_BUDGET"), "{error}");
        // Spent: the next caller does not wait again.
        let started = std::time::Instant::now();
        outage.wait().await.unwrap_err();
        assert!(started.elapsed() < Duration::from_millis(50));
    }
}
