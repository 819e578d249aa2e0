//! What a [`Pool`](super::Pool) and the connections checked out of it share: the sqlx pool,
//! the tracer, and the rotation of credentials the database rejects.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::credentials::CredentialSource;
use super::driver::{Driver, Endpoint};
use super::instrument::{Meta, TARGET, Tracer};

/// The shortest time between two credential refreshes: a source that still holds the rejected
/// password is not asked again on every failing connection attempt.
const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(1);

pub(crate) struct Shared<DB: Driver> {
    pub(crate) pool: sqlx::Pool<DB>,
    pub(crate) tracer: Tracer,
    rotation: Option<Rotation>,
}

struct Rotation {
    source: Arc<dyn CredentialSource>,
    last_refresh: tokio::sync::Mutex<Option<Instant>>,
    generation: AtomicU64,
}

impl<DB: Driver> Shared<DB> {
    pub(crate) fn new(
        pool: sqlx::Pool<DB>,
        tracer: Tracer,
        source: Option<Arc<dyn CredentialSource>>,
    ) -> Self {
        Self {
            pool,
            tracer,
            rotation: source.map(|source| Rotation {
                source,
                last_refresh: tokio::sync::Mutex::new(None),
                generation: AtomicU64::new(0),
            }),
        }
    }

    /// The name of the credential source, when the pool rotates credentials.
    pub(crate) fn source_name(&self) -> Option<String> {
        self.rotation.as_ref().map(|r| r.source.name())
    }

    pub(crate) fn generation(&self) -> u64 {
        self.rotation
            .as_ref()
            .map_or(0, |r| r.generation.load(Ordering::Acquire))
    }

    /// A connection from the pool; an authentication failure refreshes the credentials and
    /// tries once more.
    pub(crate) async fn acquire(&self) -> Result<sqlx::pool::PoolConnection<DB>, sqlx::Error> {
        self.with_rotation(|| self.pool.acquire()).await
    }

    pub(crate) async fn with_rotation<T, F, Fut>(&self, op: F) -> Result<T, sqlx::Error>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        let generation = self.generation();
        match op().await {
            Err(sqlx::Error::Database(e))
                if self.rotation.is_some() && DB::is_auth_failure(e.as_ref()) =>
            {
                if self.rotate(generation).await {
                    op().await
                } else {
                    Err(sqlx::Error::Database(e))
                }
            }
            other => other,
        }
    }

    /// Refreshes the credentials after a failure seen at `seen`; true when they changed (here
    /// or concurrently) and a retry makes sense.
    pub(crate) async fn rotate(&self, seen: u64) -> bool {
        let Some(rotation) = &self.rotation else {
            return false;
        };
        let mut last_refresh = rotation.last_refresh.lock().await;
        if rotation.generation.load(Ordering::Acquire) != seen {
            return true;
        }
        if last_refresh.is_some_and(|at| at.elapsed() < MIN_REFRESH_INTERVAL) {
            return false;
        }
        *last_refresh = Some(Instant::now());
        match rotation.source.refresh().await {
            Ok(credentials) => {
                let options =
                    DB::with_credentials((*self.pool.connect_options()).clone(), &credentials);
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
                    "the database rejected the credentials: refreshed them"
                );
                true
            }
            Err(error) => {
                tracing::warn!(
                    target: TARGET,
                    source = %rotation.source.name(),
                    %error,
                    "the database rejected the credentials and refreshing them failed"
                );
                false
            }
        }
    }
}
