//! Publishing a job: its payload serialised into the SNS message, the current trace carried in
//! the message's attributes so that the delivery continues it.

use std::collections::HashMap;

use aws_sdk_sns::types::MessageAttributeValue;
use opentelemetry::KeyValue;
use opentelemetry::context::FutureExt as _;
use opentelemetry::propagation::Injector;
use opentelemetry::trace::{Span as _, SpanBuilder, SpanKind};
use serde::Serialize;

use super::error::JobsError;
use super::handlers::Envelope;
use super::topic_name;
use crate::client::inject;
use crate::telemetry::{current_parent, start_kit_span_in};

/// Publishes jobs to the service's SNS topic, through an SNS client traced by
/// [`AwsTracing`](crate::client::AwsTracing).
///
/// Each [`publish`](Self::publish) is an INTERNAL span `publish {job}` whose context travels in
/// the message's attributes (`traceparent`, `X-Amzn-Trace-Id`, as the propagators write them):
/// the delivery's CONSUMER span is its child, so one trace runs from the request that
/// published the job to the job's own queries. The SNS call is a CLIENT span `SNS.Publish`
/// under it.
///
/// ```no_run
/// # async fn demo() -> Result<(), apprunner::jobs::JobsError> {
/// #[derive(serde::Serialize)]
/// struct Welcome { user_id: String }
///
/// let publisher = apprunner::jobs::Publisher::from_env().await?;
/// let message_id = publisher
///     .publish("welcome", &Welcome { user_id: "42".into() })
///     .await?;
/// # let _ = message_id;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Publisher {
    client: aws_sdk_sns::Client,
    topic_arn: String,
}

impl Publisher {
    /// A publisher to the topic in `APPRUNNER_JOBS_TOPIC_ARN`, with an SNS client from the
    /// standard AWS configuration chain (`AWS_ENDPOINT_URL_SNS` for an emulator).
    ///
    /// # Errors
    ///
    /// [`JobsError::Config`] naming `APPRUNNER_JOBS_TOPIC_ARN` when it is unset or not an SNS
    /// topic ARN.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), apprunner::jobs::JobsError> {
    /// let publisher = apprunner::jobs::Publisher::from_env().await?;
    /// # let _ = publisher;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn from_env() -> Result<Self, JobsError> {
        let topic_arn = super::topic_from_env()?;
        let config = crate::client::load_aws_config().await;
        Ok(Self::new(
            crate::aws_client!(aws_sdk_sns, &config),
            topic_arn,
        ))
    }

    /// A publisher to `topic_arn` through `client` (attach
    /// [`AwsTracing`](crate::client::AwsTracing) to it for the `SNS.Publish` span).
    ///
    /// ```no_run
    /// # async fn demo() {
    /// let config = apprunner::client::load_aws_config().await;
    /// let publisher = apprunner::jobs::Publisher::new(
    ///     apprunner::aws_client!(aws_sdk_sns, &config),
    ///     "arn:aws:sns:eu-west-1:123456789012:users-api-jobs",
    /// );
    /// # let _ = publisher;
    /// # }
    /// ```
    pub fn new(client: aws_sdk_sns::Client, topic_arn: impl Into<String>) -> Self {
        Self {
            client,
            topic_arn: topic_arn.into(),
        }
    }

    /// The topic jobs are published to.
    ///
    /// ```no_run
    /// # fn f(publisher: &apprunner::jobs::Publisher) {
    /// println!("jobs go to {}", publisher.topic_arn());
    /// # }
    /// ```
    pub fn topic_arn(&self) -> &str {
        &self.topic_arn
    }

    /// Publishes job `job` with `payload` (serialised to JSON); returns SNS's message id.
    ///
    /// # Errors
    ///
    /// [`JobsError::Payload`] when the payload does not serialise, [`JobsError::Publish`]
    /// when SNS refuses or cannot be reached (after the SDK's retries).
    ///
    /// ```no_run
    /// # async fn demo(publisher: apprunner::jobs::Publisher) -> Result<(), apprunner::jobs::JobsError> {
    /// publisher.publish("migrate", &()).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn publish<P: Serialize + ?Sized>(
        &self,
        job: &str,
        payload: &P,
    ) -> Result<String, JobsError> {
        let payload = to_json(job, payload)?;
        self.send(job, payload).await
    }

    /// Publishes job `job` without waiting: the payload is serialised now, the message is
    /// sent by a background task that stays in the current trace, and a failure is logged
    /// (an ERROR line naming the job and the topic). For a request that must not wait for SNS,
    /// such as a sign-up publishing its welcome job. Needs a Tokio runtime.
    ///
    /// ```no_run
    /// # async fn demo(publisher: apprunner::jobs::Publisher) {
    /// publisher.publish_in_background("welcome", &serde_json::json!({"user_id": "42"}));
    /// # }
    /// ```
    pub fn publish_in_background<P: Serialize + ?Sized>(&self, job: &str, payload: &P) {
        let payload = match to_json(job, payload) {
            Ok(payload) => payload,
            Err(e) => {
                tracing::error!(target: "apprunner::jobs", error = %e, "job not published");
                return;
            }
        };
        let publisher = self.clone();
        let job = job.to_owned();
        let parent = current_parent();
        tokio::spawn(
            async move {
                if let Err(e) = publisher.send(&job, payload).await {
                    tracing::error!(target: "apprunner::jobs", job, error = %e, "job not published");
                }
            }
            .with_context(parent),
        );
    }

    /// Sends job `job` with `payload`, in a span `publish {job}` whose context the message
    /// carries (in its attributes and in its body).
    async fn send(&self, job: &str, payload: serde_json::Value) -> Result<String, JobsError> {
        let builder = SpanBuilder::from_name(format!("publish {job}"))
            .with_kind(SpanKind::Internal)
            .with_attributes([
                KeyValue::new("messaging.system", "aws_sns"),
                KeyValue::new(
                    "messaging.destination.name",
                    topic_name(&self.topic_arn).to_owned(),
                ),
                KeyValue::new("messaging.operation.type", "send"),
                KeyValue::new("apprunner.job", job.to_owned()),
            ]);
        let (mut span, cx) = start_kit_span_in(builder, current_parent());
        let mut attributes = Attributes::default();
        inject(&cx, &mut attributes);
        let body = serde_json::to_string(&Envelope {
            job: job.to_owned(),
            payload,
            trace: attributes.text(),
        })
        .map_err(|source| JobsError::Payload {
            job: job.to_owned(),
            source,
        })?;
        // The SNS call's CLIENT span is a child of this one.
        let result = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .message(body)
            .set_message_attributes(Some(attributes.0))
            .send()
            .with_context(cx)
            .await;
        match result {
            Ok(output) => {
                let id = output.message_id().unwrap_or_default().to_owned();
                span.set_attribute(KeyValue::new("messaging.message.id", id.clone()));
                span.end();
                Ok(id)
            }
            Err(err) => {
                span.fail("publish");
                span.end();
                Err(JobsError::Publish {
                    topic_arn: self.topic_arn.clone(),
                    cause: aws_sdk_sns::error::DisplayErrorContext(err).to_string(),
                })
            }
        }
    }
}

/// The payload as JSON.
fn to_json<P: Serialize + ?Sized>(job: &str, payload: &P) -> Result<serde_json::Value, JobsError> {
    serde_json::to_value(payload).map_err(|source| JobsError::Payload {
        job: job.to_owned(),
        source,
    })
}

/// Message attributes written by a propagator (string attributes).
#[derive(Default)]
struct Attributes(HashMap<String, MessageAttributeValue>);

impl Attributes {
    /// The same, as text.
    fn text(&self) -> HashMap<String, String> {
        self.0
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.string_value()?.to_owned())))
            .collect()
    }
}

impl Injector for Attributes {
    fn set(&mut self, key: &str, value: String) {
        if value.is_empty() {
            return;
        }
        if let Ok(attribute) = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(value)
            .build()
        {
            self.0.insert(key.to_owned(), attribute);
        }
    }
}
