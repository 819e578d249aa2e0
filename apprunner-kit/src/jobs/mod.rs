//! Background jobs over Amazon SNS HTTP(S) push, for services that run only while requests
//! arrive (App Runner, ECS Express Mode): SNS POSTs each job to the service itself.
//!
//! - [`Jobs`] is the receiving side: one route (`POST /jobs/sns`), a typed handler per job
//!   name. Every message's signature is verified (SNS `SignatureVersion` 1 and 2, the signing
//!   certificate only from `https://sns.<region>.amazonaws.com/…`), subscriptions are confirmed
//!   only for the topics the service names, and each job runs once per `MessageId` (SNS
//!   delivers at least once) thanks to the kit's table `apprunner_jobs` in the service's own
//!   database (PostgreSQL, MySQL/MariaDB or SQLite).
//! - [`Verifier`] checks one message ([`SnsMessage`]) the way the endpoint does, for services
//!   that receive SNS messages on a route of their own: signature by a certificate fetched
//!   from `sns.<region>.amazonaws.com` only (cached), and a `Timestamp` within the accepted
//!   window (one hour, SNS's limit on retrying an HTTP(S) delivery, plus 5 minutes of clock
//!   skew). A rejection is a [`VerifyError`] whose [`status`](VerifyError::status) is the answer.
//! - [`Publisher`] is the sending side: it serialises a job into an SNS message on the topic,
//!   with the current trace carried along.
//!
//! | outcome | status | SNS then |
//! |---|---|---|
//! | the job succeeded, or it already ran for this `MessageId` | `200` | done |
//! | the job failed, or ran past its budget ([`Jobs::DEFAULT_BUDGET`]) | `500` / `504` | retries, per the subscription's delivery policy, then the dead-letter queue |
//! | another delivery of the same message is running it | `503` | retries |
//! | unsigned, badly signed or stale message; unknown topic; not a job; unknown job | `4xx`, and a log line saying why | does not run it |
//!
//! # Spans
//!
//! Each delivery is a CONSUMER span `process {topic}` (`messaging.system=aws_sns`,
//! `messaging.destination.name`, `messaging.message.id`, `messaging.operation.type=process`,
//! `apprunner.job`). CONSUMER rather than SERVER: the HTTP POST already has its SERVER span
//! (from the kit's layer), and the delivery is the *message's* continuation. Its parent is the
//! publisher's span, carried in the message's attributes by [`Publisher`] (so one trace runs
//! from the request that published the job to the job's queries; X-Ray draws the delivery as a
//! segment of the service, as it does for CONSUMER spans), with a link to the POST's SERVER
//! span. A message without a carried trace is a child of the POST's span, which continues
//! SNS's `X-Amzn-Trace-Id` when the topic has active tracing.
//!
//! # Settings
//!
//! | variable | meaning |
//! |---|---|
//! | `APPRUNNER_JOBS_TOPIC_ARN` | the topic jobs are published to and accepted from |
//! | `APPRUNNER_JOBS_BUDGET_SECS` | a job's time budget, default 50: under the server's request timeout (60 s), itself under App Runner's 120 s request limit |
//! | `APPRUNNER_JOBS_SKIP_SIGNATURE_CHECK_FOR_EMULATOR` | `true` turns signature verification off, for an emulator whose messages AWS did not sign; logs a warning at start-up. Never in production: anyone who can reach the route could run jobs |
//!
//! ```no_run
//! # async fn demo(pool: apprunner::db::Pool<sqlx::Postgres>) -> Result<(), Box<dyn std::error::Error>> {
//! #[derive(serde::Deserialize)]
//! struct Welcome { user_id: String }
//!
//! let jobs = apprunner::jobs::Jobs::from_env()?
//!     .store(pool)
//!     .handle("welcome", |job: Welcome| async move {
//!         tracing::info!(user = job.user_id, "welcome sent");
//!         Ok::<_, std::io::Error>(())
//!     })
//!     .router()
//!     .await?;
//! let app = axum::Router::new().merge(jobs);
//! # let _ = app;
//! # Ok(())
//! # }
//! ```

mod cert;
mod dedup;
mod endpoint;
mod error;
mod handlers;
mod message;
mod publish;
mod verify;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;

pub use dedup::JobStore;
pub use error::{JobsError, VerifierBuildError, VerifyError};
pub use handlers::BoxError;
pub use message::{MessageAttribute, MessageType, SnsMessage};
pub use publish::Publisher;
pub use verify::{Verifier, VerifierBuilder};

use endpoint::{Endpoint, Verification};
use handlers::Registry;

/// The topic jobs are published to and accepted from.
pub(crate) const TOPIC_ARN: &str = "APPRUNNER_JOBS_TOPIC_ARN";
/// A job's time budget, in seconds.
const BUDGET_SECS: &str = "APPRUNNER_JOBS_BUDGET_SECS";
/// The largest body the route reads: an SNS message (256 KiB at most) in its JSON document.
const BODY_LIMIT: usize = 320 * 1024;
/// Turns signature verification off, for emulators.
const SKIP_SIGNATURE_CHECK: &str = "APPRUNNER_JOBS_SKIP_SIGNATURE_CHECK_FOR_EMULATOR";

/// The receiving side of SNS push jobs: handlers by job name, the topics accepted, where
/// deliveries are recorded. See the [module documentation](self).
///
/// ```no_run
/// # async fn demo() -> Result<(), apprunner::jobs::JobsError> {
/// let router = apprunner::jobs::Jobs::new()
///     .topic("arn:aws:sns:eu-west-1:123456789012:jobs")
///     .handle("ping", |(): ()| async { Ok::<_, std::io::Error>(()) })
///     .router()
///     .await?;
/// # let _ = router;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Jobs {
    registry: Registry,
    topics: Vec<String>,
    store: Option<JobStore>,
    budget: Duration,
    skip_signature_check: bool,
    verifier: Option<Verifier>,
}

impl Default for Jobs {
    fn default() -> Self {
        Self::new()
    }
}

impl Jobs {
    /// The route SNS posts to.
    pub const PATH: &'static str = "/jobs/sns";

    /// A job's default time budget: 50 s, under the server's request timeout (60 s), itself
    /// under App Runner's 120 s request limit.
    pub const DEFAULT_BUDGET: Duration = Duration::from_secs(50);

    /// No handlers, no topics, signatures verified, no deduplication store yet.
    ///
    /// ```
    /// let jobs = apprunner::jobs::Jobs::new();
    /// # let _ = jobs;
    /// ```
    pub fn new() -> Self {
        Self {
            registry: Registry::default(),
            topics: Vec::new(),
            store: None,
            budget: Self::DEFAULT_BUDGET,
            skip_signature_check: false,
            verifier: None,
        }
    }

    /// From the environment: the topic in `APPRUNNER_JOBS_TOPIC_ARN`, the budget in
    /// `APPRUNNER_JOBS_BUDGET_SECS`, and `APPRUNNER_JOBS_SKIP_SIGNATURE_CHECK_FOR_EMULATOR`.
    ///
    /// # Errors
    ///
    /// [`JobsError::Config`] naming the variable that is missing or invalid.
    ///
    /// ```no_run
    /// let jobs = apprunner::jobs::Jobs::from_env()?;
    /// # let _ = jobs;
    /// # Ok::<(), apprunner::jobs::JobsError>(())
    /// ```
    pub fn from_env() -> Result<Self, JobsError> {
        Self::from_lookup(|var| std::env::var(var).ok())
    }

    /// As [`from_env`](Self::from_env), with the variables from `lookup`.
    ///
    /// # Errors
    ///
    /// [`JobsError::Config`] naming the variable that is missing or invalid.
    ///
    /// ```
    /// let err = apprunner::jobs::Jobs::from_lookup(|var| match var {
    ///     "APPRUNNER_JOBS_TOPIC_ARN" => Some("arn:aws:sns:eu-west-1:123456789012:jobs".into()),
    ///     "APPRUNNER_JOBS_BUDGET_SECS" => Some("600".into()),
    ///     _ => None,
    /// })
    /// .unwrap_err();
    /// assert!(err.to_string().starts_with("APPRUNNER_JOBS_BUDGET_SECS: 600 s"));
    /// ```
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, JobsError> {
        let non_empty = |var: &str| lookup(var).filter(|v| !v.is_empty());
        let mut jobs = Self::new().topic(topic_arn(non_empty(TOPIC_ARN))?);
        if let Some(value) = non_empty(BUDGET_SECS) {
            let secs: u64 = value.parse().map_err(|_| JobsError::Config {
                var: BUDGET_SECS,
                reason: format!("`{value}` is not a whole number of seconds"),
            })?;
            if secs == 0 || secs >= 120 {
                return Err(JobsError::Config {
                    var: BUDGET_SECS,
                    reason: format!(
                        "{secs} s: a job's budget must be between 1 and 119 s (App Runner ends \
                         requests at 120 s; keep it under the server's request timeout)"
                    ),
                });
            }
            jobs = jobs.budget(Duration::from_secs(secs));
        }
        match non_empty(SKIP_SIGNATURE_CHECK).as_deref() {
            None | Some("false") => {}
            Some("true") => jobs = jobs.skip_signature_check_for_emulator(),
            Some(other) => {
                return Err(JobsError::Config {
                    var: SKIP_SIGNATURE_CHECK,
                    reason: format!("`{other}`: expected `true` or `false`"),
                });
            }
        }
        Ok(jobs)
    }

    /// Accepts messages (and subscription confirmations) from `topic_arn`.
    ///
    /// ```
    /// let jobs = apprunner::jobs::Jobs::new().topic("arn:aws:sns:eu-west-1:123456789012:jobs");
    /// # let _ = jobs;
    /// ```
    pub fn topic(mut self, topic_arn: impl Into<String>) -> Self {
        self.topics.push(topic_arn.into());
        self
    }

    /// Records deliveries in the service's database (the kit's table `apprunner_jobs`, created
    /// if missing), so that each job runs once per SNS `MessageId`.
    ///
    /// ```no_run
    /// # fn f(pool: apprunner::db::Pool<sqlx::Sqlite>) {
    /// let jobs = apprunner::jobs::Jobs::new().store(pool);
    /// # let _ = jobs;
    /// # }
    /// ```
    pub fn store(mut self, store: impl Into<JobStore>) -> Self {
        self.store = Some(store.into());
        self
    }

    /// Runs `handler` for job `name`, with the message's payload decoded into `P`. An `Err`
    /// answers 500, so SNS delivers the job again.
    ///
    /// ```
    /// #[derive(serde::Deserialize)]
    /// struct Resize { image: String, width: u32 }
    ///
    /// let jobs = apprunner::jobs::Jobs::new().handle("resize", |job: Resize| async move {
    ///     let _ = (job.image, job.width);
    ///     Ok::<_, std::io::Error>(())
    /// });
    /// # let _ = jobs;
    /// ```
    pub fn handle<P, F, Fut, E>(mut self, name: &str, handler: F) -> Self
    where
        P: DeserializeOwned + 'static,
        F: Fn(P) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        self.registry.insert(name, handler);
        self
    }

    /// A job's time budget ([`DEFAULT_BUDGET`](Self::DEFAULT_BUDGET) by default): a job still
    /// running then is stopped and answered `504`, so SNS delivers it again. Keep it under the
    /// server's request timeout.
    ///
    /// ```
    /// let jobs = apprunner::jobs::Jobs::new().budget(std::time::Duration::from_secs(20));
    /// # let _ = jobs;
    /// ```
    pub fn budget(mut self, budget: Duration) -> Self {
        self.budget = budget;
        self
    }

    /// Verifies messages with `verifier` instead of the default one ([`Verifier::builder`]
    /// with its defaults: a one-hour window, certificates only from SNS's hosts).
    ///
    /// ```
    /// # fn f() -> Result<(), apprunner::jobs::VerifierBuildError> {
    /// let verifier = apprunner::jobs::Verifier::builder()
    ///     .max_message_age(std::time::Duration::from_secs(1800))
    ///     .build()?;
    /// let jobs = apprunner::jobs::Jobs::new().verifier(verifier);
    /// # let _ = jobs;
    /// # Ok(())
    /// # }
    /// ```
    pub fn verifier(mut self, verifier: Verifier) -> Self {
        self.verifier = Some(verifier);
        self
    }

    /// Turns signature verification off, for an emulator (moto, LocalStack) whose messages AWS
    /// did not sign; subscriptions are then confirmed through the `ConfirmSubscription` API of
    /// the configured SNS endpoint (`AWS_ENDPOINT_URL_SNS` or `AWS_ENDPOINT_URL`: the
    /// emulator). [`router`](Self::router) logs a warning. Never in production.
    ///
    /// ```
    /// let jobs = apprunner::jobs::Jobs::new().skip_signature_check_for_emulator();
    /// # let _ = jobs;
    /// ```
    pub fn skip_signature_check_for_emulator(mut self) -> Self {
        self.skip_signature_check = true;
        self
    }

    /// The route, `POST` [`Jobs::PATH`], ready to merge into the service's router; creates the
    /// deduplication table first.
    ///
    /// # Errors
    ///
    /// [`JobsError::Config`] when no topic is named, [`JobsError::NoHandlers`] when no handler
    /// is registered, [`JobsError::Verifier`] when the verifier cannot be built,
    /// [`JobsError::Table`] when the table cannot be created.
    ///
    /// ```no_run
    /// # async fn demo(jobs: apprunner::jobs::Jobs) -> Result<(), apprunner::jobs::JobsError> {
    /// let app = axum::Router::new().merge(jobs.router().await?);
    /// # let _ = app;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn router(self) -> Result<axum::Router, JobsError> {
        if self.topics.is_empty() {
            return Err(JobsError::Config {
                var: TOPIC_ARN,
                reason: "no topic is named: set it, or call Jobs::topic".into(),
            });
        }
        if self.registry.is_empty() {
            return Err(JobsError::NoHandlers);
        }
        if let Some(store) = &self.store {
            store
                .ensure_table()
                .await
                .map_err(|source| JobsError::Table {
                    table: dedup::TABLE,
                    source,
                })?;
        } else {
            tracing::warn!(
                target: "apprunner::jobs",
                "jobs: no store given (Jobs::store): a message SNS delivers twice runs twice"
            );
        }
        let verification = if self.skip_signature_check {
            tracing::warn!(
                target: "apprunner::jobs",
                "jobs: SNS SIGNATURE VERIFICATION IS OFF ({SKIP_SIGNATURE_CHECK}): anyone who \
                 can reach {} can run jobs. Use this only with an emulator.",
                Self::PATH
            );
            let config = crate::client::load_aws_config().await;
            Verification::SkipForEmulator {
                sns: crate::aws_client!(aws_sdk_sns, &config),
            }
        } else {
            let verifier = match self.verifier {
                Some(verifier) => verifier,
                None => Verifier::builder().build()?,
            };
            Verification::Verify(verifier)
        };
        let endpoint = Arc::new(Endpoint {
            registry: self.registry,
            topics: self.topics,
            store: self.store,
            budget: self.budget,
            verification,
            http: reqwest::Client::new(),
        });
        Ok(axum::Router::new()
            .route(Self::PATH, axum::routing::post(endpoint::deliver))
            // SNS messages are at most 256 KiB; their JSON document a little more.
            .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
            .with_state(endpoint))
    }
}

/// `APPRUNNER_JOBS_TOPIC_ARN` from the environment, checked to be an SNS topic ARN.
fn topic_from_env() -> Result<String, JobsError> {
    topic_arn(std::env::var(TOPIC_ARN).ok().filter(|v| !v.is_empty()))
}

/// The value of `APPRUNNER_JOBS_TOPIC_ARN`, checked to be an SNS topic ARN.
fn topic_arn(value: Option<String>) -> Result<String, JobsError> {
    let arn = value.ok_or_else(|| JobsError::Config {
        var: TOPIC_ARN,
        reason: "unset: name the SNS topic jobs are published to \
                 (arn:aws:sns:<region>:<account>:<topic>)"
            .into(),
    })?;
    let parts: Vec<&str> = arn.split(':').collect();
    if parts.len() != 6 || parts[0] != "arn" || parts[2] != "sns" || parts[5].is_empty() {
        return Err(JobsError::Config {
            var: TOPIC_ARN,
            reason: format!(
                "`{arn}` is not an SNS topic ARN (arn:aws:sns:<region>:<account>:<topic>)"
            ),
        });
    }
    Ok(arn)
}

/// `arn:aws:sns:region:account:topic` → `topic`.
pub(crate) fn topic_name(arn: &str) -> &str {
    arn.rsplit(':').next().unwrap_or(arn)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(vars: &[(&str, &str)]) -> Result<Jobs, JobsError> {
        Jobs::from_lookup(|var| {
            vars.iter()
                .find(|(k, _)| *k == var)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    const TOPIC: (&str, &str) = (TOPIC_ARN, "arn:aws:sns:eu-west-1:123456789012:jobs");

    #[test]
    fn settings_are_read_and_bad_ones_name_their_variable() {
        let jobs = from(&[TOPIC, (BUDGET_SECS, "20"), (SKIP_SIGNATURE_CHECK, "true")]).unwrap();
        assert_eq!(jobs.topics, ["arn:aws:sns:eu-west-1:123456789012:jobs"]);
        assert_eq!(jobs.budget, Duration::from_secs(20));
        assert!(jobs.skip_signature_check);
        let defaults = from(&[TOPIC]).unwrap();
        assert_eq!(defaults.budget, Jobs::DEFAULT_BUDGET);
        assert!(!defaults.skip_signature_check);

        let message = |vars: &[(&str, &str)]| from(vars).unwrap_err().to_string();
        assert!(message(&[]).starts_with("APPRUNNER_JOBS_TOPIC_ARN: unset"));
        assert!(
            message(&[(TOPIC_ARN, "arn:aws:sqs:eu-west-1:123456789012:jobs")])
                .contains("is not an SNS topic ARN")
        );
        assert!(message(&[TOPIC, (BUDGET_SECS, "ten")]).starts_with("APPRUNNER_JOBS_BUDGET_SECS"));
        assert!(message(&[TOPIC, (BUDGET_SECS, "0")]).contains("between 1 and 119 s"));
        assert!(message(&[TOPIC, (BUDGET_SECS, "120")]).contains("between 1 and 119 s"));
        assert!(
            message(&[TOPIC, (SKIP_SIGNATURE_CHECK, "yes")])
                .starts_with("APPRUNNER_JOBS_SKIP_SIGNATURE_CHECK_FOR_EMULATOR")
        );
    }

    #[test]
    fn topic_names_come_from_arns() {
        assert_eq!(
            topic_name("arn:aws:sns:eu-west-1:123456789012:users-api-jobs"),
            "users-api-jobs"
        );
    }
}
