//! Run-time reads: a cache with a TTL and forced refresh, for rotated credentials.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use aws_config::SdkConfig;

use super::error::SecretsError;
use super::fetch::{self, Fetcher};
use super::rds::RdsCredentials;
use super::secret::Secret;
use crate::client::AwsTracing;

/// A version stage of a secret.
///
/// # Examples
///
/// ```
/// use apprunner::secrets::VersionStage;
///
/// assert_eq!(VersionStage::Pending.as_str(), "AWSPENDING");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum VersionStage {
    /// `AWSCURRENT`: the version in use.
    Current,
    /// `AWSPENDING`: the version a rotation is putting in place; during the rotation window it
    /// may already be the valid one.
    Pending,
    /// `AWSPREVIOUS`: the version before the last rotation.
    Previous,
}

impl VersionStage {
    /// The stage label Secrets Manager uses.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(apprunner::secrets::VersionStage::Current.as_str(), "AWSCURRENT");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Current => "AWSCURRENT",
            Self::Pending => "AWSPENDING",
            Self::Previous => "AWSPREVIOUS",
        }
    }
}

impl fmt::Display for VersionStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

struct Entry {
    value: Secret<String>,
    fetched_at: Instant,
}

type Slot = Arc<tokio::sync::Mutex<Option<Entry>>>;

/// Reads secrets at run time, keeping each one for a TTL, so that the database layer can pick up
/// rotated credentials: [`get`](SecretCache::get) answers from the cache while the value is
/// younger than the TTL, [`refresh`](SecretCache::refresh) always asks Secrets Manager (e.g.
/// after an authentication failure).
///
/// Concurrent reads of the same secret wait for a single fetch. Each fetch is a CLIENT span
/// `SecretsManager.GetSecretValue` with `rpc.system=aws-api`, `rpc.service=SecretsManager`,
/// `rpc.method=GetSecretValue`, `cloud.region` and `aws.request_id` — never the value.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use apprunner::secrets::{SecretCache, VersionStage};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), apprunner::secrets::SecretsError> {
/// let cache = SecretCache::from_env().await?.ttl(Duration::from_secs(300));
/// let creds = cache.rds("prod/users-db").await?;
/// # let login_failed = true;
/// if login_failed {
///     // The password may have been rotated: ask Secrets Manager again.
///     let creds = cache.refresh_rds("prod/users-db").await?;
///     # let _ = creds;
///     // During a rotation window the pending version may already be the valid one.
///     let pending = cache.get_stage("prod/users-db", VersionStage::Pending).await?;
///     # let _ = pending;
/// }
/// # let _ = creds;
/// # Ok(())
/// # }
/// ```
pub struct SecretCache {
    fetcher: Fetcher,
    ttl: Duration,
    slots: Mutex<HashMap<(String, VersionStage), Slot>>,
    service_name: Option<String>,
}

impl SecretCache {
    /// The default time a value is served from the cache: one hour, as in AWS's own caching
    /// clients.
    pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);

    /// A cache using the standard AWS configuration chain (`AWS_REGION`, `AWS_ENDPOINT_URL`,
    /// `AWS_ENDPOINT_URL_SECRETS_MANAGER`, the instance or task role…).
    ///
    /// # Errors
    ///
    /// [`SecretsError::NoRegion`] if no region is configured.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), apprunner::secrets::SecretsError> {
    /// let cache = apprunner::secrets::SecretCache::from_env().await?;
    /// # let _ = cache;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn from_env() -> Result<Self, SecretsError> {
        Ok(Self::with_fetcher(
            Fetcher::from_env(AwsTracing::new()).await?,
        ))
    }

    /// A cache using an AWS SDK configuration you built.
    ///
    /// # Errors
    ///
    /// [`SecretsError::NoRegion`] if the configuration has no region.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use aws_config::BehaviorVersion;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), apprunner::secrets::SecretsError> {
    /// let config = aws_config::defaults(BehaviorVersion::latest())
    ///     .endpoint_url("http://127.0.0.1:5000")
    ///     .load()
    ///     .await;
    /// let cache = apprunner::secrets::SecretCache::from_sdk_config(&config)?;
    /// # let _ = cache;
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_sdk_config(config: &SdkConfig) -> Result<Self, SecretsError> {
        Ok(Self::with_fetcher(Fetcher::from_sdk_config(
            config,
            AwsTracing::new(),
        )?))
    }

    fn with_fetcher(fetcher: Fetcher) -> Self {
        Self {
            fetcher,
            ttl: Self::DEFAULT_TTL,
            slots: Mutex::new(HashMap::new()),
            service_name: None,
        }
    }

    /// Names the service making the calls (the `service.name` of its telemetry resource), so
    /// that a read outside any span (a background refresh, a start-up read) is an X-Ray local
    /// root named after the service (`aws.span.kind=LOCAL_ROOT`, `aws.local.service`) rather
    /// than a `SecretsManager` segment of its own on the service map. `#[apprunner::main]`
    /// sets it; reads inside a request span need nothing.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), apprunner::secrets::SecretsError> {
    /// let cache = apprunner::secrets::SecretCache::from_env().await?.service_name("users-api");
    /// # let _ = cache;
    /// # Ok(())
    /// # }
    /// ```
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.fetcher = self.fetcher.with_local_service(&name);
        self.service_name = Some(name);
        self
    }

    /// Sets how long a value is served from the cache ([`DEFAULT_TTL`](Self::DEFAULT_TTL) by
    /// default). `Duration::ZERO` disables caching.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), apprunner::secrets::SecretsError> {
    /// use std::time::Duration;
    /// let cache = apprunner::secrets::SecretCache::from_env().await?.ttl(Duration::from_secs(60));
    /// assert_eq!(cache.ttl_duration(), Duration::from_secs(60));
    /// # Ok(())
    /// # }
    /// ```
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// How long a value is served from the cache.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), apprunner::secrets::SecretsError> {
    /// use apprunner::secrets::SecretCache;
    /// let cache = SecretCache::from_env().await?;
    /// assert_eq!(cache.ttl_duration(), SecretCache::DEFAULT_TTL);
    /// # Ok(())
    /// # }
    /// ```
    pub fn ttl_duration(&self) -> Duration {
        self.ttl
    }

    /// The secret's current text (`AWSCURRENT`), from the cache if younger than the TTL.
    ///
    /// # Errors
    ///
    /// A [`SecretsError`] naming the secret and the cause.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), apprunner::secrets::SecretsError> {
    /// # let cache = apprunner::secrets::SecretCache::from_env().await?;
    /// let api_key = cache.get("prod/api-key").await?;
    /// # let _ = api_key;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get(&self, secret_id: &str) -> Result<Secret<String>, SecretsError> {
        self.read(secret_id, VersionStage::Current, false).await
    }

    /// The text of a given version stage (e.g. [`VersionStage::Pending`]), from the cache if
    /// younger than the TTL.
    ///
    /// # Errors
    ///
    /// A [`SecretsError`]; [`SecretsError::NotFound`] also when no version has that stage.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use apprunner::secrets::VersionStage;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), apprunner::secrets::SecretsError> {
    /// # let cache = apprunner::secrets::SecretCache::from_env().await?;
    /// let pending = cache.get_stage("prod/users-db", VersionStage::Pending).await?;
    /// # let _ = pending;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_stage(
        &self,
        secret_id: &str,
        stage: VersionStage,
    ) -> Result<Secret<String>, SecretsError> {
        self.read(secret_id, stage, false).await
    }

    /// Fetches the secret's current text now, whatever its age, and caches it.
    ///
    /// # Errors
    ///
    /// A [`SecretsError`]; the cached value is then kept.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), apprunner::secrets::SecretsError> {
    /// # let cache = apprunner::secrets::SecretCache::from_env().await?;
    /// let fresh = cache.refresh("prod/api-key").await?;
    /// # let _ = fresh;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn refresh(&self, secret_id: &str) -> Result<Secret<String>, SecretsError> {
        self.read(secret_id, VersionStage::Current, true).await
    }

    /// Fetches a version stage now, whatever its age, and caches it.
    ///
    /// # Errors
    ///
    /// A [`SecretsError`]; the cached value is then kept.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use apprunner::secrets::VersionStage;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), apprunner::secrets::SecretsError> {
    /// # let cache = apprunner::secrets::SecretCache::from_env().await?;
    /// let pending = cache.refresh_stage("prod/users-db", VersionStage::Pending).await?;
    /// # let _ = pending;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn refresh_stage(
        &self,
        secret_id: &str,
        stage: VersionStage,
    ) -> Result<Secret<String>, SecretsError> {
        self.read(secret_id, stage, true).await
    }

    /// The current credentials of an RDS-style secret, from the cache if younger than the TTL.
    ///
    /// # Errors
    ///
    /// A [`SecretsError`], including the parse errors of [`RdsCredentials::from_json`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), apprunner::secrets::SecretsError> {
    /// # let cache = apprunner::secrets::SecretCache::from_env().await?;
    /// let url = cache.rds("prod/users-db").await?.database_url();
    /// # let _ = url;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn rds(&self, secret_id: &str) -> Result<RdsCredentials, SecretsError> {
        let text = self.get(secret_id).await?;
        RdsCredentials::parse(&fetch::describe(secret_id), text.expose())
    }

    /// The current credentials of an RDS-style secret, fetched now (after a failed login).
    ///
    /// # Errors
    ///
    /// As [`SecretCache::rds`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), apprunner::secrets::SecretsError> {
    /// # let cache = apprunner::secrets::SecretCache::from_env().await?;
    /// let creds = cache.refresh_rds("prod/users-db").await?;
    /// # let _ = creds;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn refresh_rds(&self, secret_id: &str) -> Result<RdsCredentials, SecretsError> {
        self.refresh_rds_stage(secret_id, VersionStage::Current)
            .await
    }

    /// The credentials of a version stage of an RDS-style secret, fetched now: during a
    /// rotation, [`VersionStage::Pending`] holds the password the database already takes.
    ///
    /// # Errors
    ///
    /// As [`SecretCache::rds`]; [`SecretsError::NotFound`] also when no version has that
    /// stage.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use apprunner::secrets::{SecretCache, VersionStage};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), apprunner::secrets::SecretsError> {
    /// let cache = SecretCache::from_env().await?;
    /// let pending = cache.refresh_rds_stage("prod/users-db", VersionStage::Pending).await?;
    /// # let _ = pending;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn refresh_rds_stage(
        &self,
        secret_id: &str,
        stage: VersionStage,
    ) -> Result<RdsCredentials, SecretsError> {
        let text = self.refresh_stage(secret_id, stage).await?;
        RdsCredentials::parse(&fetch::describe(secret_id), text.expose())
    }

    async fn read(
        &self,
        secret_id: &str,
        stage: VersionStage,
        force: bool,
    ) -> Result<Secret<String>, SecretsError> {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(slots.entry((secret_id.to_owned(), stage)).or_default())
        };
        // Held across the fetch: concurrent readers of this secret wait for one fetch.
        let mut entry = slot.lock().await;
        if !force && let Some(cached) = entry.as_ref().filter(|e| e.fetched_at.elapsed() < self.ttl)
        {
            return Ok(cached.value.clone());
        }
        let value = self.fetcher.get(secret_id, stage.as_str()).await?;
        *entry = Some(Entry {
            value: value.clone(),
            fetched_at: Instant::now(),
        });
        Ok(value)
    }
}

impl fmt::Debug for SecretCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let entries = self
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        f.debug_struct("SecretCache")
            .field("region", &self.fetcher.region())
            .field("ttl", &self.ttl)
            .field("entries", &entries)
            .field("service_name", &self.service_name)
            .finish_non_exhaustive()
    }
}
