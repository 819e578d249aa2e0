//! The users API's background jobs, delivered by Amazon SNS to `POST /jobs/sns` (the kit's
//! [`Jobs`]) when `APPRUNNER_JOBS_TOPIC_ARN` names the topic (the stacks in `infra/` create it
//! and its HTTPS subscription):
//!
//! | job | published by | does |
//! |---|---|---|
//! | `welcome` `{"user_id"}` | `POST /signup`, in the background (the sign-up does not wait) | records that the welcome was sent (a row in `welcomes`; no e-mail is sent) |
//! | `migrate` `null` | an operator: `aws sns publish --topic-arn … --message '{"job":"migrate","payload":null}'` | applies pending migrations under the database's migration lock |
//!
//! Each runs once per SNS message (the kit records deliveries in its `apprunner_jobs` table in
//! the same database). Without `APPRUNNER_JOBS_TOPIC_ARN` (local mode) there is no jobs route
//! and sign-up publishes nothing. For a deploy pipeline or an ECS one-off task, `users-api
//! migrate` applies the migrations and exits.

use apprunner::jobs::{Jobs, JobsError, Publisher};
use serde::{Deserialize, Serialize};

use crate::store::Store;

/// The `welcome` job's payload.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Welcome {
    /// The user who signed up.
    pub(crate) user_id: String,
}

/// Whether jobs are configured (`APPRUNNER_JOBS_TOPIC_ARN` set).
pub(crate) fn configured() -> bool {
    std::env::var_os("APPRUNNER_JOBS_TOPIC_ARN").is_some_and(|v| !v.is_empty())
}

/// The publisher, when jobs are configured.
pub(crate) async fn publisher() -> Result<Option<Publisher>, JobsError> {
    if configured() {
        Ok(Some(Publisher::from_env().await?))
    } else {
        Ok(None)
    }
}

/// The jobs route, when jobs are configured.
pub(crate) async fn router(store: &Store) -> Result<Option<axum::Router>, JobsError> {
    if !configured() {
        return Ok(None);
    }
    let welcome_store = store.clone();
    let migrate_store = store.clone();
    let router = Jobs::from_env()?
        .store(store.job_store())
        .handle("welcome", move |job: Welcome| {
            let store = welcome_store.clone();
            async move {
                store.record_welcome(&job.user_id).await?;
                tracing::info!(user.id = %job.user_id, "welcome sent");
                Ok::<_, apprunner::jobs::BoxError>(())
            }
        })
        .handle("migrate", move |(): ()| {
            let store = migrate_store.clone();
            async move {
                store.migrate().await?;
                tracing::info!("migrations applied");
                Ok::<_, apprunner::jobs::BoxError>(())
            }
        })
        .router()
        .await?;
    Ok(Some(router))
}

/// Publishes the `welcome` job for `user_id` in the background: the sign-up answers without
/// waiting for SNS; the publication stays in the sign-up's trace.
pub(crate) fn welcome(publisher: &Publisher, user_id: String) {
    publisher.publish_in_background("welcome", &Welcome { user_id });
}
