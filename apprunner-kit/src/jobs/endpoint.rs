//! The SNS push endpoint: verifies each POST, confirms subscriptions to the service's topics,
//! and runs each notification's job once, in a CONSUMER span that continues the publisher's
//! trace.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt as _;
use opentelemetry::context::FutureExt as _;
use opentelemetry::propagation::Extractor;
use opentelemetry::trace::{
    Link, Span as _, SpanBuilder, SpanContext, SpanKind, TraceContextExt as _,
};
use opentelemetry::{Context, KeyValue};

use super::dedup::{Claim, JobStore};
use super::handlers::{Envelope, Registry, StartError};
use super::message::{MessageType, SnsMessage};
use super::topic_name;
use super::verify::Verifier;
use crate::telemetry::{current_parent, start_kit_span_in};

/// How messages are checked.
#[derive(Debug)]
pub(crate) enum Verification {
    /// Every signature is verified.
    Verify(Verifier),
    /// Nothing is verified (an emulator's messages are not signed by AWS): the loudly named
    /// setting. Subscriptions are then confirmed with the `ConfirmSubscription` API of the
    /// configured SNS endpoint (the emulator), which an emulator can route, rather than by
    /// fetching the `SubscribeURL` (which names AWS's host).
    SkipForEmulator { sns: aws_sdk_sns::Client },
}

/// What the endpoint needs, shared by every delivery.
#[derive(Debug)]
pub(crate) struct Endpoint {
    pub(crate) registry: Registry,
    pub(crate) topics: Vec<String>,
    pub(crate) store: Option<JobStore>,
    pub(crate) budget: Duration,
    pub(crate) verification: Verification,
    /// Fetches `SubscribeURL`s.
    pub(crate) http: reqwest::Client,
}

/// A refusal: the status, and a short reason for the body (never the message's content).
fn refuse(status: StatusCode, reason: &'static str) -> Response {
    (status, reason).into_response()
}

/// `POST` handler.
pub(crate) async fn deliver(
    State(endpoint): State<Arc<Endpoint>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let message = match SnsMessage::from_json(&body) {
        Ok(message) => message,
        Err(e) => {
            tracing::warn!(
                target: "apprunner::jobs",
                error = %e,
                "SNS endpoint: rejected a body that is not an SNS message"
            );
            return refuse(StatusCode::BAD_REQUEST, "not an SNS message");
        }
    };
    if let Some(header) = headers.get("x-amz-sns-message-type")
        && header.as_bytes() != message.kind.as_str().as_bytes()
    {
        tracing::warn!(
            target: "apprunner::jobs",
            message_id = message.message_id.as_str(),
            "SNS endpoint: rejected a message whose x-amz-sns-message-type header contradicts its Type"
        );
        return refuse(StatusCode::BAD_REQUEST, "message type mismatch");
    }
    if let Verification::Verify(verifier) = &endpoint.verification
        && let Err(e) = verifier.verify_message(&message).await
    {
        tracing::warn!(
            target: "apprunner::jobs",
            message_id = message.message_id.as_str(),
            topic = message.topic_arn.as_str(),
            error = %e,
            "SNS endpoint: rejected a message that failed verification"
        );
        return refuse(
            StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST),
            "verification failed",
        );
    }
    if !endpoint
        .topics
        .iter()
        .any(|t| t == message.topic_arn.as_str())
    {
        tracing::warn!(
            target: "apprunner::jobs",
            message_id = message.message_id.as_str(),
            topic = message.topic_arn.as_str(),
            "SNS endpoint: rejected a message for a topic this service does not name \
             (APPRUNNER_JOBS_TOPIC_ARN)"
        );
        return refuse(StatusCode::FORBIDDEN, "unknown topic");
    }
    match message.kind {
        MessageType::SubscriptionConfirmation => confirm(&endpoint, &message).await,
        MessageType::UnsubscribeConfirmation => {
            tracing::warn!(
                target: "apprunner::jobs",
                topic = message.topic_arn.as_str(),
                "SNS endpoint: the subscription to the topic was removed; jobs will no longer arrive"
            );
            StatusCode::OK.into_response()
        }
        MessageType::Notification => run(&endpoint, &message).await,
    }
}

/// Whether `url` may be fetched to confirm a subscription: HTTPS to `sns.<region>.amazonaws.com`
/// (or `.com.cn`) on the default port, with no credentials in it.
pub(crate) fn may_confirm(url: &url::Url) -> bool {
    url.scheme() == "https"
        && url.username().is_empty()
        && url.password().is_none()
        && url.port().is_none()
        && url.host_str().is_some_and(is_sns_host)
}

/// `sns.<region>.amazonaws.com` or `sns.<region>.amazonaws.com.cn`.
fn is_sns_host(host: &str) -> bool {
    let rest = host
        .strip_suffix(".amazonaws.com")
        .or_else(|| host.strip_suffix(".amazonaws.com.cn"));
    rest.and_then(|r| r.strip_prefix("sns."))
        .is_some_and(|region| {
            !region.is_empty()
                && region
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

async fn confirm(endpoint: &Endpoint, message: &SnsMessage) -> Response {
    let Some(url) = message
        .subscribe_url
        .as_deref()
        .and_then(|u| url::Url::parse(u).ok())
    else {
        return refuse(StatusCode::BAD_REQUEST, "no SubscribeURL");
    };
    if !may_confirm(&url) {
        tracing::warn!(
            target: "apprunner::jobs",
            topic = message.topic_arn.as_str(),
            host = url.host_str().unwrap_or_default(),
            "SNS endpoint: not confirming a subscription whose SubscribeURL is not an HTTPS SNS URL"
        );
        return refuse(StatusCode::FORBIDDEN, "SubscribeURL is not SNS");
    }
    let confirmed = match &endpoint.verification {
        Verification::Verify(_) => endpoint
            .http
            .get(url)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map(drop)
            .map_err(|e| e.without_url().to_string()),
        Verification::SkipForEmulator { sns } => sns
            .confirm_subscription()
            .topic_arn(message.topic_arn.as_str())
            .token(message.token.as_deref().unwrap_or_default())
            .send()
            .await
            .map(drop)
            .map_err(|e| aws_sdk_sns::error::DisplayErrorContext(e).to_string()),
    };
    match confirmed {
        Ok(()) => {
            tracing::info!(
                target: "apprunner::jobs",
                topic = message.topic_arn.as_str(),
                "SNS endpoint: subscription confirmed"
            );
            StatusCode::OK.into_response()
        }
        Err(e) => {
            tracing::error!(
                target: "apprunner::jobs",
                topic = message.topic_arn.as_str(),
                error = %e,
                "SNS endpoint: confirming the subscription failed"
            );
            refuse(StatusCode::BAD_GATEWAY, "confirmation failed")
        }
    }
}

/// The trace context a message's attributes carry (`traceparent`, `X-Amzn-Trace-Id`).
struct Attributes<'a>(HashMap<String, &'a str>);

impl Extractor for Attributes<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(&key.to_ascii_lowercase()).copied()
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

/// The context a delivery continues, and the request's span to link to it: the publisher's
/// context, from the message (its attributes, or the copy in the envelope), when it carries one,
/// linked to the POST's span;
/// else the request's (SNS's own header, when the topic has active tracing).
fn delivery_parent(message: &SnsMessage, envelope: &Envelope) -> (Context, Option<SpanContext>) {
    let request = current_parent();
    // The message attributes, else the copy in the body.
    let mut carried: HashMap<String, &str> = envelope
        .trace
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.as_str()))
        .collect();
    carried.extend(
        message
            .message_attributes
            .iter()
            .flatten()
            .filter(|(_, a)| a.data_type == "String")
            .map(|(k, a)| (k.to_ascii_lowercase(), a.value.as_str())),
    );
    let attributes = Attributes(carried);
    let carried = opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract_with_context(&Context::new(), &attributes)
    });
    if carried.span().span_context().is_valid() {
        let server = request.span().span_context().clone();
        (carried, server.is_valid().then_some(server))
    } else {
        (request, None)
    }
}

async fn run(endpoint: &Endpoint, message: &SnsMessage) -> Response {
    let envelope: Envelope = match serde_json::from_str(&message.message) {
        Ok(envelope) => envelope,
        Err(_) => {
            tracing::warn!(
                target: "apprunner::jobs",
                message_id = message.message_id.as_str(),
                "SNS endpoint: the message is not a job (a JSON object with `job` and `payload`)"
            );
            return refuse(StatusCode::BAD_REQUEST, "not a job");
        }
    };
    let job = envelope.job.clone();
    let (parent, request) = delivery_parent(message, &envelope);
    let topic = topic_name(message.topic_arn.as_str()).to_owned();
    let mut builder = SpanBuilder::from_name(format!("process {topic}"))
        .with_kind(SpanKind::Consumer)
        .with_attributes([
            KeyValue::new("messaging.system", "aws_sns"),
            KeyValue::new("messaging.destination.name", topic),
            KeyValue::new("messaging.message.id", message.message_id.clone()),
            KeyValue::new("messaging.operation.type", "process"),
            KeyValue::new("messaging.operation.name", "process"),
            KeyValue::new("apprunner.job", job.clone()),
        ]);
    if let Some(request) = request {
        // The POST's own SERVER span, linked: the delivery is also that request.
        builder = builder.with_links(vec![Link::with_context(request)]);
    }
    let (mut span, cx) = start_kit_span_in(builder, parent);
    let (status, outcome) = run_once(endpoint, message.message_id.as_str(), envelope)
        .with_context(cx)
        .await;
    span.set_attribute(KeyValue::new("apprunner.job.outcome", outcome));
    if status.is_server_error() || status.is_client_error() {
        span.fail(outcome);
    }
    span.end();
    refuse(status, outcome)
}

/// Claims the message, runs the job within its budget, records the outcome: the status for
/// SNS (2xx done, 5xx retry later, 4xx never) and a short outcome word.
async fn run_once(
    endpoint: &Endpoint,
    message_id: &str,
    envelope: Envelope,
) -> (StatusCode, &'static str) {
    let job = envelope.job.clone();
    let lease = endpoint.budget + Duration::from_secs(30);
    if let Some(store) = &endpoint.store {
        match store.claim(message_id, &job, lease).await {
            Ok(Claim::Won) => {}
            Ok(Claim::AlreadyDone) => {
                tracing::info!(
                    target: "apprunner::jobs",
                    message_id,
                    job,
                    "job already ran for this message: duplicate delivery acknowledged"
                );
                return (StatusCode::OK, "duplicate");
            }
            Ok(Claim::InProgress) => return (StatusCode::SERVICE_UNAVAILABLE, "in_progress"),
            Err(e) => {
                tracing::error!(
                    target: "apprunner::jobs",
                    message_id,
                    job,
                    error = %e,
                    "job not started: the jobs table could not be read"
                );
                return (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable");
            }
        }
    }
    let future = match endpoint.registry.start(envelope) {
        Ok(future) => future,
        Err(e) => {
            let (what, detail) = match &e {
                StartError::UnknownJob => ("unknown_job", String::new()),
                // serde's position only: its message may quote the payload.
                StartError::BadPayload(e) => (
                    "bad_payload",
                    format!("line {} column {}", e.line(), e.column()),
                ),
            };
            tracing::error!(
                target: "apprunner::jobs",
                message_id,
                job,
                detail,
                "job not started: {what}"
            );
            release(endpoint, message_id).await;
            return (StatusCode::BAD_REQUEST, what);
        }
    };
    // A panicking job gives its claim back too, so that the next delivery runs it.
    let guarded = std::panic::AssertUnwindSafe(future).catch_unwind();
    match tokio::time::timeout(endpoint.budget, guarded).await {
        Ok(Err(_panic)) => {
            tracing::error!(
                target: "apprunner::jobs",
                message_id,
                job,
                "job panicked: SNS will deliver it again"
            );
            release(endpoint, message_id).await;
            (StatusCode::INTERNAL_SERVER_ERROR, "panicked")
        }
        Ok(Ok(Ok(()))) => {
            if let Some(store) = &endpoint.store
                && let Err(e) = store.complete(message_id).await
            {
                // It ran; the next delivery may run it again.
                tracing::error!(
                    target: "apprunner::jobs",
                    message_id,
                    job,
                    error = %e,
                    "job ran but could not be recorded as done"
                );
            }
            (StatusCode::OK, "done")
        }
        Ok(Ok(Err(e))) => {
            tracing::error!(
                target: "apprunner::jobs",
                message_id,
                job,
                error = %e,
                "job failed: SNS will deliver it again"
            );
            release(endpoint, message_id).await;
            (StatusCode::INTERNAL_SERVER_ERROR, "failed")
        }
        Err(_) => {
            tracing::error!(
                target: "apprunner::jobs",
                message_id,
                job,
                budget_ms = u64::try_from(endpoint.budget.as_millis()).unwrap_or(u64::MAX),
                "job exceeded its time budget (APPRUNNER_JOBS_BUDGET) and was stopped: SNS will \
                 deliver it again"
            );
            release(endpoint, message_id).await;
            (StatusCode::GATEWAY_TIMEOUT, "timeout")
        }
    }
}

async fn release(endpoint: &Endpoint, message_id: &str) {
    if let Some(store) = &endpoint.store
        && let Err(e) = store.release(message_id).await
    {
        tracing::error!(
            target: "apprunner::jobs",
            message_id,
            error = %e,
            "could not release the job's claim: it is retried once its lease expires"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_sns_hosts_confirm_subscriptions() {
        let ok = |u: &str| may_confirm(&url::Url::parse(u).unwrap());
        assert!(ok(
            "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&Token=x"
        ));
        assert!(ok(
            "https://sns.cn-north-1.amazonaws.com.cn/?Action=ConfirmSubscription"
        ));
        assert!(!ok(
            "http://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription"
        ));
        assert!(!ok("https://sns.eu-west-1.amazonaws.com.evil.example/"));
        assert!(!ok("https://evil.example/sns.eu-west-1.amazonaws.com"));
        assert!(!ok("https://user@sns.eu-west-1.amazonaws.com/"));
        assert!(!ok("https://sns.eu-west-1.amazonaws.com:8443/"));
        assert!(!ok("https://sqs.eu-west-1.amazonaws.com/"));
        assert!(!ok("https://sns..amazonaws.com/"));
        assert!(!ok("https://sns.EU_WEST.amazonaws.com/"));
    }
}
