//! `apprunner::Error`: every module's error, plus the service's own.

/// Any error of the kit, or of the service run by [`App::run`](crate::App::run).
///
/// Module errors convert with `?`; wrap your own with [`Error::service`] (or return any
/// `Result<_, E>` whose `E` converts into `Box<dyn Error + Send + Sync>` from
/// `#[apprunner::main]`).
///
/// ```
/// let err = apprunner::Error::service(std::io::Error::other("disk full"));
/// assert_eq!(err.to_string(), "disk full");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Telemetry could not be set up or shut down.
    #[error(transparent)]
    Telemetry(#[from] crate::telemetry::TelemetryError),
    /// Secrets could not be read or put into the environment.
    #[cfg(feature = "secrets")]
    #[error(transparent)]
    Secrets(#[from] crate::secrets::SecretsError),
    /// The HTTP server could not start or run.
    #[cfg(feature = "http")]
    #[error(transparent)]
    Http(#[from] crate::http::HttpError),
    /// The database pool could not be set up.
    #[cfg(feature = "db")]
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    /// The Tokio runtime could not be built.
    #[error("cannot start the Tokio runtime: {0}")]
    Runtime(std::io::Error),
    /// An error of the service itself.
    #[error(transparent)]
    Service(Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// Wraps an error of the service.
    ///
    /// ```
    /// fn load() -> apprunner::Result<String> {
    ///     std::fs::read_to_string("/nonexistent/config").map_err(apprunner::Error::service)
    /// }
    /// assert!(load().is_err());
    /// ```
    pub fn service(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Error::Service(error.into())
    }
}

impl From<std::io::Error> for Error {
    fn from(error: std::io::Error) -> Self {
        Error::Service(Box::new(error))
    }
}

/// `Result<T, apprunner::Error>`.
///
/// ```
/// fn answer() -> apprunner::Result<u8> {
///     Ok(42)
/// }
/// # assert_eq!(answer().unwrap(), 42);
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Displays an error with its `source()` chain on one line: `a: b: c`.
pub(crate) struct Chain<'a>(pub(crate) &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut text = self.0.to_string();
        let mut source = self.0.source();
        while let Some(s) = source {
            let next = s.to_string();
            // Transparent wrappers repeat their source's text: print it once.
            if !text.ends_with(&next) {
                text.push_str(": ");
                text.push_str(&next);
            }
            source = s.source();
        }
        f.write_str(&text)
    }
}
