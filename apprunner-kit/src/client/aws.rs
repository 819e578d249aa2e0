//! AWS SDK for Rust calls as CLIENT spans: an interceptor on the smithy runtime
//! (`aws-smithy-runtime-api`'s [`Intercept`]) that any service client takes in one line.

use std::sync::{Arc, Mutex, PoisonError};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextMut,
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpResponse, Metadata};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use aws_types::region::Region;
use opentelemetry::propagation::Injector;
use opentelemetry::trace::{Span as _, SpanBuilder, SpanKind};
use opentelemetry::{Context, KeyValue};

use super::{inject, mark_failed, start_client_span};
use crate::telemetry::KitSpan;

/// Makes every operation of the AWS SDK client it is attached to a CLIENT span, child of the
/// current span, and injects the trace headers into the request so that AWS services that
/// continue traces (SQS, SNS, Lambda, Step Functions) link to it.
///
/// | attribute | value |
/// |---|---|
/// | name | `{Service}.{Operation}`, e.g. `SecretsManager.GetSecretValue`, `S3.PutObject` |
/// | `rpc.system` | `aws-api` (the X-Ray exporter puts the call in the `aws` namespace) |
/// | `rpc.service`, `rpc.method` | the service (`SecretsManager`: the SDK's name without spaces, which X-Ray shows as the node) and the operation |
/// | `cloud.region` | the client's region |
/// | `aws.request_id` | the request id AWS answered with |
/// | `http.response.status_code` | the last attempt's status |
/// | `error.type` | the service's error code (`ResourceNotFoundException`), or `timeout`, `io`, `_OTHER` when no answer came; the span's status is then ERROR |
///
/// Each retry is an event `retry` with `aws.attempt` (2, 3, …) on the same span, which spans
/// every attempt. Neither the request's nor the response's payload goes into the span: a
/// secret fetched from Secrets Manager or SSM never reaches it.
///
/// # Example
///
/// ```no_run
/// # async fn demo() {
/// let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
/// let secrets = aws_sdk_secretsmanager::Client::from_conf(
///     aws_sdk_secretsmanager::config::Builder::from(&config)
///         .interceptor(apprunner::client::AwsTracing::default())
///         .build(),
/// );
/// # let _ = secrets;
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct AwsTracing {
    _private: (),
}

/// The span of one operation, kept in the config bag from the first hook to the last.
#[derive(Debug, Clone)]
struct CallSpan(Arc<Mutex<CallState>>);

#[derive(Debug)]
struct CallState {
    span: Option<KitSpan>,
    /// The context whose span is the CLIENT span: what the headers carry.
    cx: Context,
    attempts: u32,
}

impl Storable for CallSpan {
    type Storer = StoreReplace<Self>;
}

impl CallSpan {
    fn with<R>(&self, f: impl FnOnce(&mut CallState) -> R) -> R {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// `Secrets Manager` → `SecretsManager`: the SDK's service name as X-Ray names the node.
fn service_name(metadata: &Metadata) -> String {
    metadata.service().split_whitespace().collect()
}

impl Intercept for AwsTracing {
    fn name(&self) -> &'static str {
        "apprunner::client::AwsTracing"
    }

    // Not `read_before_execution`: a client's interceptors run that hook before the operation's
    // configuration (its `Metadata`) is in the bag.
    fn read_before_serialization(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let (service, method) = match cfg.load::<Metadata>() {
            Some(metadata) => (service_name(metadata), metadata.name().to_owned()),
            None => ("AWS".to_owned(), "Call".to_owned()),
        };
        let mut attributes = vec![
            KeyValue::new("rpc.system", "aws-api"),
            KeyValue::new("rpc.service", service.clone()),
            KeyValue::new("rpc.method", method.clone()),
        ];
        if let Some(region) = cfg.load::<Region>() {
            attributes.push(KeyValue::new("cloud.region", region.to_string()));
        }
        let builder = SpanBuilder::from_name(format!("{service}.{method}"))
            .with_kind(SpanKind::Client)
            .with_attributes(attributes);
        let (span, cx) = start_client_span(builder);
        cfg.interceptor_state()
            .store_put(CallSpan(Arc::new(Mutex::new(CallState {
                span: Some(span),
                cx,
                attempts: 0,
            }))));
        Ok(())
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(call) = cfg.load::<CallSpan>() {
            call.with(|state| {
                state.attempts += 1;
                if state.attempts > 1
                    && let Some(span) = state.span.as_mut()
                {
                    span.add_event(
                        "retry",
                        vec![KeyValue::new("aws.attempt", i64::from(state.attempts))],
                    );
                }
            });
        }
        Ok(())
    }

    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // After signing: the trace headers are not signed, and each attempt carries them.
        if let Some(call) = cfg.load::<CallSpan>() {
            let cx = call.with(|state| state.cx.clone());
            inject(&cx, &mut SdkHeaders(context.request_mut().headers_mut()));
        }
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(call) = cfg.load::<CallSpan>() else {
            return Ok(());
        };
        let Some(mut span) = call.with(|state| state.span.take()) else {
            return Ok(());
        };
        let response = context.response();
        if let Some(response) = response {
            span.set_attribute(KeyValue::new(
                "http.response.status_code",
                i64::from(response.status().as_u16()),
            ));
            if let Some(id) = request_id(response) {
                span.set_attribute(KeyValue::new("aws.request_id", id.to_owned()));
            }
        }
        if let Some(Err(error)) = context.output_or_error() {
            let kind = if let Some(code) = response.and_then(error_code) {
                code
            } else if error.is_timeout_error() {
                "timeout".to_owned()
            } else if error.is_connector_error() {
                "io".to_owned()
            } else {
                "_OTHER".to_owned()
            };
            mark_failed(&mut span, kind);
        }
        span.end();
        Ok(())
    }
}

/// The request id AWS answered with, from the headers its services use.
fn request_id(response: &HttpResponse) -> Option<&str> {
    let headers = response.headers();
    headers
        .get("x-amzn-requestid")
        .or_else(|| headers.get("x-amz-request-id"))
        .or_else(|| headers.get("x-amzn-request-id"))
}

/// The service's error code of an error response: the `x-amzn-ErrorType` header (JSON
/// protocols), else `__type` of a JSON body or `<Code>` of an XML one. Only the code is read:
/// an error body carries a code and a message, never the request's payload.
fn error_code(response: &HttpResponse) -> Option<String> {
    if response.status().as_u16() < 300 {
        return None;
    }
    let clean = |code: &str| {
        // `aws.protocoltests#FooError:http://…` and `FooError:http://…` → `FooError`.
        let code = code.split(':').next().unwrap_or(code);
        let code = code.rsplit('#').next().unwrap_or(code).trim();
        (!code.is_empty() && code.len() <= 128).then(|| code.to_owned())
    };
    if let Some(code) = response.headers().get("x-amzn-errortype") {
        return clean(code);
    }
    let body = std::str::from_utf8(response.body().bytes()?).ok()?;
    if let Ok(json) = serde_json::from_str::<serde_json::Value>(body) {
        let code = json.get("__type").or_else(|| json.get("code"))?.as_str()?;
        return clean(code);
    }
    let start = body.find("<Code>")? + "<Code>".len();
    let end = body[start..].find("</Code>")? + start;
    clean(&body[start..end])
}

/// The smithy request's headers, written by a propagator.
struct SdkHeaders<'a>(&'a mut aws_smithy_runtime_api::http::Headers);

impl Injector for SdkHeaders<'_> {
    fn set(&mut self, key: &str, value: String) {
        // A value a header cannot hold is left out rather than failing the call.
        let _ = self.0.try_insert(key.to_owned(), value);
    }
}

#[cfg(test)]
mod tests {
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;

    use super::*;

    fn response(status: u16, headers: &[(&str, &str)], body: &str) -> HttpResponse {
        let mut response = HttpResponse::new(
            StatusCode::try_from(status).unwrap(),
            SdkBody::from(body.to_owned()),
        );
        for (key, value) in headers {
            response
                .headers_mut()
                .insert((*key).to_owned(), (*value).to_owned());
        }
        response
    }

    #[test]
    fn error_codes_come_from_the_header_or_the_body() {
        let header = response(
            400,
            &[(
                "x-amzn-ErrorType",
                "ResourceNotFoundException:http://internal.amazon.com/",
            )],
            "",
        );
        assert_eq!(
            error_code(&header).as_deref(),
            Some("ResourceNotFoundException")
        );
        let json = response(
            400,
            &[],
            r#"{"__type":"com.amazonaws.sqs#QueueDoesNotExist","message":"m"}"#,
        );
        assert_eq!(error_code(&json).as_deref(), Some("QueueDoesNotExist"));
        let xml = response(
            404,
            &[],
            "<Error><Code>NoSuchBucket</Code><Message>m</Message></Error>",
        );
        assert_eq!(error_code(&xml).as_deref(), Some("NoSuchBucket"));
        assert_eq!(error_code(&response(200, &[], "{}")), None);
        assert_eq!(error_code(&response(500, &[], "not a code")), None);
    }

    #[test]
    fn request_ids_come_from_any_of_the_services_headers() {
        let s3 = response(200, &[("x-amz-request-id", "ABC")], "");
        assert_eq!(request_id(&s3), Some("ABC"));
        let json = response(200, &[("x-amzn-RequestId", "def")], "");
        assert_eq!(request_id(&json), Some("def"));
    }

    #[test]
    fn service_names_lose_their_spaces() {
        assert_eq!(
            service_name(&Metadata::new("GetSecretValue", "Secrets Manager")),
            "SecretsManager"
        );
        assert_eq!(service_name(&Metadata::new("PutObject", "S3")), "S3");
    }
}
