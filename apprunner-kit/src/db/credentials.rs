//! Credential rotation: where fresh credentials come from when the database rejects the
//! current ones.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use zeroize::Zeroizing;

/// A user name and password. `Debug` never shows the password, and it is wiped on drop.
///
/// # Examples
///
/// ```
/// use apprunner::db::Credentials;
///
/// let creds = Credentials::new("app", "hunter2");
/// assert_eq!(creds.username(), "app");
/// assert_eq!(creds.password(), "hunter2");
/// assert!(!format!("{creds:?}").contains("hunter2"));
/// ```
#[derive(Clone)]
pub struct Credentials {
    username: String,
    password: Zeroizing<String>,
}

impl Credentials {
    /// Credentials from a user name and a password.
    ///
    /// # Examples
    ///
    /// ```
    /// let creds = apprunner::db::Credentials::new("app", String::from("pw"));
    /// # let _ = creds;
    /// ```
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            password: Zeroizing::new(password.into()),
        }
    }

    /// The user name.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(apprunner::db::Credentials::new("app", "pw").username(), "app");
    /// ```
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The password. Do not log it.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(apprunner::db::Credentials::new("app", "pw").password(), "pw");
    /// ```
    pub fn password(&self) -> &str {
        &self.password
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"[REDACTED]")
            .finish()
    }
}

/// The boxed future a [`CredentialSource`] returns.
pub type CredentialsFuture<'a> = Pin<
    Box<
        dyn Future<Output = Result<Credentials, Box<dyn std::error::Error + Send + Sync>>>
            + Send
            + 'a,
    >,
>;

/// Where fresh credentials come from when opening a connection fails authentication
/// (PostgreSQL SQLSTATE `28P01`/`28000`, MySQL error 1045): the pool calls
/// [`refresh`](Self::refresh), puts the answer into its connect options
/// (`sqlx::Pool::set_connect_options`) and tries again, so a rotated password fails no request
/// once the source holds the new value.
///
/// [`RdsSecretSource`](super::RdsSecretSource) reads an RDS secret through
/// `apprunner::secrets::SecretCache`; `DB_SECRET_NAME` sets one up automatically.
///
/// # Examples
///
/// ```
/// use apprunner::db::{CredentialSource, Credentials, CredentialsFuture};
///
/// /// Reads the password from a file that a sidecar keeps up to date.
/// #[derive(Debug)]
/// struct PasswordFile(std::path::PathBuf);
///
/// impl CredentialSource for PasswordFile {
///     fn name(&self) -> String {
///         self.0.display().to_string()
///     }
///
///     fn refresh(&self) -> CredentialsFuture<'_> {
///         Box::pin(async move {
///             let password = tokio::fs::read_to_string(&self.0).await?;
///             Ok(Credentials::new("app", password.trim()))
///         })
///     }
/// }
///
/// let config = apprunner::db::DbConfig::from_url("postgres://app@db/users")?
///     .credentials(PasswordFile("/run/secrets/db-password".into()));
/// # let _ = config;
/// # Ok::<(), apprunner::db::DbError>(())
/// ```
pub trait CredentialSource: Send + Sync + fmt::Debug + 'static {
    /// A name for logs and errors (never a secret), e.g. the secret's name.
    fn name(&self) -> String;

    /// Fetches the current credentials, bypassing any cache.
    fn refresh(&self) -> CredentialsFuture<'_>;

    /// Credentials about to become current, tried when the database rejects the refreshed
    /// ones too: during a Secrets Manager rotation the database already holds the `AWSPENDING`
    /// password between the rotation function's `setSecret` and `finishSecret` steps. `None`
    /// (the default) when the source has no such notion.
    ///
    /// # Examples
    ///
    /// ```
    /// use apprunner::db::{CredentialSource, Credentials, CredentialsFuture};
    ///
    /// #[derive(Debug)]
    /// struct Static;
    ///
    /// impl CredentialSource for Static {
    ///     fn name(&self) -> String {
    ///         "static".into()
    ///     }
    ///
    ///     fn refresh(&self) -> CredentialsFuture<'_> {
    ///         Box::pin(async { Ok(Credentials::new("app", "old")) })
    ///     }
    ///
    ///     fn pending(&self) -> Option<CredentialsFuture<'_>> {
    ///         Some(Box::pin(async { Ok(Credentials::new("app", "new")) }))
    ///     }
    /// }
    /// # let _ = Static;
    /// ```
    fn pending(&self) -> Option<CredentialsFuture<'_>> {
        None
    }
}

#[cfg(feature = "secrets")]
pub use rds::RdsSecretSource;

#[cfg(feature = "secrets")]
mod rds {
    use std::sync::Arc;

    use tokio::sync::OnceCell;

    use super::{CredentialSource, Credentials, CredentialsFuture};
    use crate::secrets::{SecretCache, VersionStage};

    /// Credentials from an RDS-style secret in AWS Secrets Manager (`username` and `password`
    /// keys, as RDS, Aurora and the CDK generate them), read through
    /// [`SecretCache::refresh_rds`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::sync::Arc;
    /// use apprunner::db::{DbConfig, PgPool, RdsSecretSource};
    /// use apprunner::secrets::SecretCache;
    ///
    /// let cache = Arc::new(SecretCache::from_env().await?);
    /// let pool = PgPool::connect_with(
    ///     DbConfig::from_env()?.credentials(RdsSecretSource::new(cache, "prod/users-db")),
    /// )
    /// .await?;
    /// # let _ = pool;
    /// # Ok(()) }
    /// ```
    #[derive(Debug)]
    pub struct RdsSecretSource {
        cache: OnceCell<Arc<SecretCache>>,
        secret_id: String,
    }

    impl RdsSecretSource {
        /// Reads `secret_id` (a name or ARN) through `cache`.
        ///
        /// # Examples
        ///
        /// ```no_run
        /// # #[tokio::main(flavor = "current_thread")]
        /// # async fn main() -> Result<(), apprunner::secrets::SecretsError> {
        /// let cache = std::sync::Arc::new(apprunner::secrets::SecretCache::from_env().await?);
        /// let source = apprunner::db::RdsSecretSource::new(cache, "prod/users-db");
        /// # let _ = source;
        /// # Ok(()) }
        /// ```
        pub fn new(cache: Arc<SecretCache>, secret_id: impl Into<String>) -> Self {
            Self {
                cache: OnceCell::new_with(Some(cache)),
                secret_id: secret_id.into(),
            }
        }

        /// Reads `secret_id` through a [`SecretCache`] built from the environment on first use
        /// (so a service whose password never rotates never loads the AWS configuration).
        ///
        /// # Examples
        ///
        /// ```
        /// let source = apprunner::db::RdsSecretSource::from_env("prod/users-db");
        /// # let _ = source;
        /// ```
        pub fn from_env(secret_id: impl Into<String>) -> Self {
            Self {
                cache: OnceCell::new(),
                secret_id: secret_id.into(),
            }
        }
    }

    impl CredentialSource for RdsSecretSource {
        fn name(&self) -> String {
            format!("secret {}", self.secret_id)
        }

        fn refresh(&self) -> CredentialsFuture<'_> {
            Box::pin(self.read(VersionStage::Current))
        }

        /// The `AWSPENDING` version, which a rotation function's `setSecret` step has
        /// already set on the database.
        fn pending(&self) -> Option<CredentialsFuture<'_>> {
            Some(Box::pin(self.read(VersionStage::Pending)))
        }
    }

    impl RdsSecretSource {
        async fn read(
            &self,
            stage: VersionStage,
        ) -> Result<Credentials, Box<dyn std::error::Error + Send + Sync>> {
            let cache = self
                .cache
                .get_or_try_init(|| async { SecretCache::from_env().await.map(Arc::new) })
                .await?;
            let creds = cache.refresh_rds_stage(&self.secret_id, stage).await?;
            Ok(Credentials::new(
                creds.username().expose().as_str(),
                creds.password().expose().as_str(),
            ))
        }
    }
}
