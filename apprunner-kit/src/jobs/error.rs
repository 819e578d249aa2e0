//! The errors of `apprunner::jobs`.

/// What went wrong setting up or publishing jobs. Each names the setting, job or topic at
/// fault and what to do.
///
/// ```
/// let err = apprunner::jobs::JobsError::Config {
///     var: "APPRUNNER_JOBS_TOPIC_ARN",
///     reason: "unset".into(),
/// };
/// assert!(err.to_string().contains("APPRUNNER_JOBS_TOPIC_ARN"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JobsError {
    /// A setting is missing or invalid.
    #[error("{var}: {reason}")]
    Config {
        /// The variable at fault.
        var: &'static str,
        /// Why, and what to do.
        reason: String,
    },
    /// A job's payload does not serialise to JSON.
    #[error("the payload of job `{job}` does not serialise to JSON: {source}")]
    Payload {
        /// The job.
        job: String,
        /// serde's error.
        #[source]
        source: serde_json::Error,
    },
    /// SNS refused the message or could not be reached (after the SDK's retries).
    #[error(
        "could not publish to {topic_arn}: {cause} (the service's role needs sns:Publish on the \
         topic, and kms:GenerateDataKey/kms:Decrypt on its key when it is encrypted)"
    )]
    Publish {
        /// The topic.
        topic_arn: String,
        /// The SDK's error, with its context.
        cause: String,
    },
    /// The kit's deduplication table could not be created.
    #[error(
        "could not create the jobs table `{table}` in the service's database: {source} (the \
         database user needs CREATE on the schema)"
    )]
    Table {
        /// The table.
        table: &'static str,
        /// The database error.
        #[source]
        source: sqlx::Error,
    },
}
