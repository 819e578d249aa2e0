//! What a [`Pool`](super::Pool) and the connections checked out of it share: the sqlx pool,
//! the tracer, the outage gate, and the rotation of credentials the database rejects.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sqlx::ConnectOptions as _;

use super::config::is_tls_failure;
use super::credentials::{CredentialSource, Credentials, CredentialsFuture};
use super::driver::{Driver, Endpoint};
use super::instrument::{Meta, TARGET, Tracer};
use super::outage::Outage;
use super::resilience::connection_lost;

pub(crate) struct Shared<DB: Driver> {
    pub(crate) pool: sqlx::Pool<DB>,
    pub(crate) tracer: Tracer,
    pub(crate) outage: Outage,
    rotation: Option<Rotation>,
}

struct Rotation {
    source: Arc<dyn CredentialSource>,
    /// Held while a refresh runs (single flight); holds when the last one started.
    last_refresh: tokio::sync::Mutex<Option<Instant>>,
    /// Bumped each time new credentials are installed.
    generation: AtomicU64,
    /// The credentials in use (those configured, until a refresh replaces them).
    installed: Mutex<Option<Credentials>>,
    /// How long one trial connection with candidate credentials may take.
    connect_timeout: Duration,
}

/// What a caller of [`Shared::with_rotation`] saw before its operation failed.
#[derive(Clone, Copy)]
pub(crate) struct Seen {
    generation: u64,
    at: Instant,
}

impl<DB: Driver> Shared<DB> {
    pub(crate) fn new(
        pool: sqlx::Pool<DB>,
        tracer: Tracer,
        outage: Outage,
        source: Option<(Arc<dyn CredentialSource>, Option<Credentials>, Duration)>,
    ) -> Self {
        Self {
            pool,
            tracer,
            outage,
            rotation: source.map(|(source, installed, connect_timeout)| Rotation {
                source,
                last_refresh: tokio::sync::Mutex::new(None),
                generation: AtomicU64::new(0),
                installed: Mutex::new(installed),
                connect_timeout,
            }),
        }
    }

    /// The name of the credential source, when the pool rotates credentials.
    pub(crate) fn source_name(&self) -> Option<String> {
        self.rotation.as_ref().map(|r| r.source.name())
    }

    pub(crate) fn seen(&self) -> Seen {
        Seen {
            generation: self
                .rotation
                .as_ref()
                .map_or(0, |r| r.generation.load(Ordering::Acquire)),
            at: Instant::now(),
        }
    }

    /// A connection from the pool.
    ///
    /// - During an outage, waits for the database up to the resume budget (one probe
    ///   connects meanwhile), or fails at once once the budget is spent.
    /// - When the pool cannot connect, reports the outage and waits the same way, then tries
    ///   once more; when the probe finds the database answering at once, the pool was merely
    ///   busy, and the error stands (an exhausted pool fails at the acquire timeout).
    /// - An authentication failure refreshes the credentials and tries once more.
    pub(crate) async fn acquire(
        self: &Arc<Self>,
    ) -> Result<sqlx::pool::PoolConnection<DB>, sqlx::Error> {
        self.outage.wait().await?;
        let started = Instant::now();
        match self.with_rotation(|| self.pool.acquire()).await {
            Err(e) if unreachable::<DB>(&e) => {
                self.report_outage(&e, started);
                // `None`: the probe ended before this caller looked, so it found the database
                // at once.
                let ended = self.outage.wait().await?;
                let false_alarm = ended.is_none_or(|ended| ended.false_alarm);
                if false_alarm && matches!(e, sqlx::Error::PoolTimedOut) && self.exhausted() {
                    return Err(e);
                }
                self.with_rotation(|| self.pool.acquire()).await
            }
            other => other,
        }
    }

    /// A transaction on a connection from [`acquire`](Self::acquire); a `BEGIN` that meets a
    /// dead connection runs again once on a fresh one (it has done nothing yet).
    pub(crate) async fn begin(
        self: &Arc<Self>,
    ) -> Result<sqlx::Transaction<'static, DB>, sqlx::Error> {
        let conn = self.acquire().await?;
        match sqlx::Transaction::begin(conn, None).await {
            Err(e) if connection_lost(&e) => {
                self.report_outage(&e, Instant::now());
                let conn = self.acquire().await?;
                sqlx::Transaction::begin(conn, None).await
            }
            other => other,
        }
    }

    /// A new connection outside the pool, for a statement's second attempt: an idle pooled
    /// connection passed its ping, but after one connection died under a statement, others
    /// may be dying too. Waits out an outage first, as [`acquire`](Self::acquire) does.
    pub(crate) async fn fresh(self: &Arc<Self>) -> Result<DB::Connection, sqlx::Error> {
        self.outage.wait().await?;
        let limit = self.pool.options().get_acquire_timeout();
        self.with_rotation(|| async {
            let options = self.pool.connect_options();
            tokio::time::timeout(limit, options.connect())
                .await
                .unwrap_or(Err(sqlx::Error::PoolTimedOut))
        })
        .await
    }

    /// Every connection is open and in use: a timed-out acquire was the application's
    /// load, not the database's absence.
    fn exhausted(&self) -> bool {
        self.pool.size() >= self.pool.options().get_max_connections() && self.pool.num_idle() == 0
    }

    pub(crate) async fn with_rotation<T, F, Fut>(&self, op: F) -> Result<T, sqlx::Error>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        let seen = self.seen();
        match op().await {
            Err(sqlx::Error::Database(e))
                if self.rotation.is_some() && DB::is_auth_failure(e.as_ref()) =>
            {
                if self.rotate(seen).await {
                    op().await
                } else {
                    Err(sqlx::Error::Database(e))
                }
            }
            other => other,
        }
    }

    /// Finds credentials the database accepts after a rejection seen at `seen`: the source's
    /// current ones, then its pending ones (a rotation between `setSecret` and
    /// `finishSecret`). The first that opens a connection is installed. True when the pool's
    /// credentials changed (here or concurrently) and a retry makes sense.
    ///
    /// Single flight: callers that failed while a refresh ran share its outcome, and a refresh
    /// that started after a caller's failure answers for it too.
    pub(crate) async fn rotate(&self, seen: Seen) -> bool {
        let Some(rotation) = &self.rotation else {
            return false;
        };
        let mut last_refresh = rotation.last_refresh.lock().await;
        if rotation.generation.load(Ordering::Acquire) != seen.generation {
            return true;
        }
        if last_refresh.is_some_and(|started| started >= seen.at) {
            return false;
        }
        *last_refresh = Some(Instant::now());
        let candidates: [(&str, Option<CredentialsFuture<'_>>); 2] = [
            ("current", Some(rotation.source.refresh())),
            ("pending", rotation.source.pending()),
        ];
        let mut unverified = None;
        for (stage, future) in candidates {
            let Some(future) = future else { continue };
            let credentials = match future.await {
                Ok(credentials) => credentials,
                Err(error) if stage == "current" => {
                    tracing::warn!(
                        target: TARGET,
                        source = %rotation.source.name(),
                        stage,
                        %error,
                        "the database rejected the credentials and reading them again failed"
                    );
                    continue;
                }
                Err(error) => {
                    tracing::debug!(
                        target: TARGET,
                        source = %rotation.source.name(),
                        stage,
                        %error,
                        "no pending credentials"
                    );
                    continue;
                }
            };
            // The database just rejected these: no need to try them again.
            if rotation.is_installed(&credentials) {
                continue;
            }
            let options =
                DB::with_credentials((*self.pool.connect_options()).clone(), &credentials);
            match tokio::time::timeout(rotation.connect_timeout, options.connect()).await {
                Ok(Ok(conn)) => {
                    let _ = sqlx::Connection::close(conn).await;
                    self.install(rotation, options, credentials, stage);
                    return true;
                }
                Ok(Err(sqlx::Error::Database(e))) if DB::is_auth_failure(e.as_ref()) => {}
                // The database did not say: keep the current stage's answer in case nothing
                // better turns up.
                _ => {
                    if unverified.is_none() && stage == "current" {
                        unverified = Some((options, credentials, stage));
                    }
                }
            }
        }
        if let Some((options, credentials, stage)) = unverified {
            self.install(rotation, options, credentials, stage);
            return true;
        }
        tracing::warn!(
            target: TARGET,
            source = %rotation.source.name(),
            "the database rejected the credentials, and those the source holds now (current and pending) too"
        );
        false
    }

    fn install(
        &self,
        rotation: &Rotation,
        options: <DB::Connection as sqlx::Connection>::Options,
        credentials: Credentials,
        stage: &'static str,
    ) {
        let changed = {
            let mut installed = rotation
                .installed
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let changed = match installed.as_ref() {
                None => "credentials",
                Some(old) => match (
                    old.username() != credentials.username(),
                    old.password() != credentials.password(),
                ) {
                    (true, true) => "user and password",
                    (true, false) => "user",
                    (false, true) => "password",
                    (false, false) => "nothing",
                },
            };
            *installed = Some(credentials.clone());
            changed
        };
        self.pool.set_connect_options(options);
        self.tracer.update_meta(|m| {
            Meta::with(
                m.system,
                Endpoint {
                    user: Some(credentials.username().to_owned()),
                    ..m.endpoint.clone()
                },
                m.peer_service.clone(),
            )
        });
        rotation.generation.fetch_add(1, Ordering::AcqRel);
        tracing::info!(
            target: TARGET,
            source = %rotation.source.name(),
            stage,
            user = %credentials.username(),
            changed,
            "database credentials changed"
        );
    }
}

impl Rotation {
    fn is_installed(&self, credentials: &Credentials) -> bool {
        self.installed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|c| {
                c.username() == credentials.username() && c.password() == credentials.password()
            })
    }
}

/// Errors of connecting that say the database may be away and waiting may help (the network,
/// a server starting, resuming or full), not a wrong password, a bad configuration or a
/// certificate that does not verify.
pub(crate) fn unreachable<DB: Driver>(error: &sqlx::Error) -> bool {
    if is_tls_failure(error) {
        return false;
    }
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(e) => DB::is_transient(e.as_ref()),
        _ => false,
    }
}
