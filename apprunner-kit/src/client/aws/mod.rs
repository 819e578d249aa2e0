//! AWS SDK for Rust calls as CLIENT spans: an interceptor on the smithy runtime
//! (`aws-smithy-runtime-api`'s [`Intercept`]) that any service client takes in one line.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

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
use opentelemetry::trace::{Event, Span as _, SpanBuilder, SpanKind, TraceContextExt as _};
use opentelemetry::{Context, KeyValue, Value};

use super::inject;
use crate::telemetry::{KitSpan, current_parent, local_service_name, start_kit_span_in};

mod services;

/// The X-Ray exporter's marker of a service's first span in a trace (`aws.span.kind`).
pub(crate) const AWS_SPAN_KIND: &str = "aws.span.kind";
/// The value of [`AWS_SPAN_KIND`] that makes the exporter name a segment after the service.
pub(crate) const LOCAL_ROOT: &str = "LOCAL_ROOT";
/// The service's own name, which the X-Ray exporter uses as a local root's segment name.
pub(crate) const AWS_LOCAL_SERVICE: &str = "aws.local.service";

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
/// | service-specific | `aws.s3.bucket`, `aws.dynamodb.table_names`, `messaging.*` for SQS and SNS: features `aws-s3`, `aws-dynamodb`, `aws-sqs`, `aws-sns` |
///
/// Each retry is an event `retry` with `aws.attempt` (2, 3, …) on the same span, which spans
/// every attempt. Neither the request's nor the response's payload goes into the span: a
/// secret fetched from Secrets Manager or SSM, an object's key or an item never reaches it.
///
/// A call made outside any span (at start-up, in a background task) is the first span of its
/// trace: it is marked as the service's own (`aws.span.kind=LOCAL_ROOT`,
/// `aws.local.service`), so X-Ray draws the service calling `S3`, not an `S3` segment of its
/// own. The service's name is the telemetry's `service.name`, or [`AwsTracing::local_service`].
///
/// # Example
///
/// One line per client: [`aws_client!`](crate::aws_client) builds any service's client with
/// the interceptor attached, from the configuration [`load_aws_config`] loads.
///
/// ```no_run
/// # async fn demo() {
/// let config = apprunner::client::load_aws_config().await;
/// let secrets = apprunner::aws_client!(aws_sdk_secretsmanager, &config);
/// # let _ = secrets;
/// # }
/// ```
///
/// or attached by hand to a client's configuration:
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
    local_service: Option<Arc<str>>,
    /// Set when calls are recorded for later (before telemetry exists), not traced live.
    recorder: Option<Recorder>,
}

impl AwsTracing {
    /// The interceptor, reporting calls made outside any span under the telemetry's
    /// `service.name`. The same as [`AwsTracing::default`].
    ///
    /// ```
    /// let tracing = apprunner::client::AwsTracing::new();
    /// # let _ = tracing;
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// The service name that calls made outside any span are reported under (the X-Ray
    /// segment they start), instead of the telemetry's `service.name`.
    ///
    /// ```
    /// let tracing = apprunner::client::AwsTracing::new().local_service("users-api");
    /// # let _ = tracing;
    /// ```
    pub fn local_service(mut self, name: impl Into<String>) -> Self {
        self.local_service = Some(Arc::from(name.into()));
        self
    }

    /// An interceptor that records each call (as a span to start later) rather than starting
    /// a span: for calls made before telemetry exists (secrets at start-up).
    #[cfg(feature = "secrets")]
    pub(crate) fn recording(recorder: Recorder) -> Self {
        Self {
            local_service: None,
            recorder: Some(recorder),
        }
    }
}

/// Loads the AWS configuration the standard way (`aws-config`'s chain: region and credentials
/// from the environment, the profile, the ECS task role or the instance role; endpoint
/// overrides from `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_<SERVICE>`), for clients built with
/// [`aws_client!`](crate::aws_client), which attaches [`AwsTracing`].
///
/// An `SdkConfig` cannot carry interceptors (each service's client configuration does), hence
/// the macro for the client.
///
/// ```no_run
/// # async fn demo() {
/// let config = apprunner::client::load_aws_config().await;
/// let secrets = apprunner::aws_client!(aws_sdk_secretsmanager, &config);
/// # let _ = secrets;
/// # }
/// ```
pub async fn load_aws_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

/// A traced client of any AWS SDK for Rust service: `aws_client!(aws_sdk_s3, &config)` is
/// `aws_sdk_s3::Client` built from `config` (an `aws_config::SdkConfig`) with
/// [`AwsTracing`](crate::client::AwsTracing) attached.
///
/// ```no_run
/// # async fn demo() {
/// let config = apprunner::client::load_aws_config().await;
/// let secrets: aws_sdk_secretsmanager::Client = apprunner::aws_client!(aws_sdk_secretsmanager, &config);
/// # let _ = secrets;
/// # }
/// ```
#[macro_export]
macro_rules! aws_client {
    ($service:ident, $config:expr) => {
        $service::Client::from_conf(
            $service::config::Builder::from($config)
                .interceptor($crate::client::AwsTracing::default())
                .build(),
        )
    };
}

/// Calls recorded by a recording [`AwsTracing`], to be started as spans once telemetry exists.
#[derive(Debug, Clone, Default)]
pub(crate) struct Recorder(Arc<Mutex<Vec<RecordedCall>>>);

impl Recorder {
    /// The calls recorded so far, oldest first.
    #[cfg(feature = "secrets")]
    pub(crate) fn calls(&self) -> Vec<RecordedCall> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// One call as it happened: the span to start (name, kind, attributes, events, status and
/// start time) and when it ended.
#[derive(Debug, Clone)]
#[cfg_attr(
    not(feature = "secrets"),
    allow(dead_code, reason = "only the secrets bootstrap records calls")
)]
pub(crate) struct RecordedCall {
    pub(crate) builder: SpanBuilder,
    pub(crate) end: SystemTime,
    /// The call failed: the span's status is ERROR.
    pub(crate) failed: bool,
}

/// Where a call's span goes: a live span, or a record for later.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "one per AWS call, which is a network round trip; boxing the live span would only move the allocation"
)]
enum Sink {
    Live(KitSpan),
    Recorded {
        builder: Box<SpanBuilder>,
        recorder: Recorder,
        failed: bool,
    },
}

impl Sink {
    fn set_attribute(&mut self, attribute: KeyValue) {
        match self {
            Sink::Live(span) => span.set_attribute(attribute),
            Sink::Recorded { builder, .. } => {
                builder
                    .attributes
                    .get_or_insert_with(Vec::new)
                    .push(attribute);
            }
        }
    }

    fn add_event(&mut self, name: &'static str, attributes: Vec<KeyValue>) {
        match self {
            Sink::Live(span) => span.add_event(name, attributes),
            Sink::Recorded { builder, .. } => builder
                .events
                .get_or_insert_with(Vec::new)
                .push(Event::new(name, SystemTime::now(), attributes, 0)),
        }
    }

    fn fail(&mut self, error_type: impl Into<Value>) {
        match self {
            Sink::Live(span) => span.fail(error_type),
            Sink::Recorded {
                builder, failed, ..
            } => {
                builder
                    .attributes
                    .get_or_insert_with(Vec::new)
                    .push(KeyValue::new("error.type", error_type));
                *failed = true;
            }
        }
    }

    fn end(self) {
        match self {
            Sink::Live(mut span) => span.end(),
            Sink::Recorded {
                builder,
                recorder,
                failed,
            } => {
                recorder
                    .0
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(RecordedCall {
                        builder: *builder,
                        end: SystemTime::now(),
                        failed,
                    });
            }
        }
    }
}

/// The span of one operation, kept in the config bag from the first hook to the last.
#[derive(Debug, Clone)]
struct CallSpan(Arc<Mutex<CallState>>);

#[derive(Debug)]
struct CallState {
    sink: Option<Sink>,
    /// The service, as in the span's name (`SQS`, `SecretsManager`).
    service: String,
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
    // configuration (its `Metadata`, its endpoint parameters) is in the bag.
    fn read_before_serialization(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
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
        services::from_input(&service, &method, context.input(), &mut attributes);
        services::from_endpoint_params(&service, cfg, &mut attributes);
        let builder =
            SpanBuilder::from_name(format!("{service}.{method}")).with_kind(SpanKind::Client);
        let (sink, cx) = match &self.recorder {
            Some(recorder) => (
                Sink::Recorded {
                    builder: Box::new(
                        builder
                            .with_attributes(attributes)
                            .with_start_time(SystemTime::now()),
                    ),
                    recorder: recorder.clone(),
                    failed: false,
                },
                Context::new(),
            ),
            None => {
                let parent = current_parent();
                if !parent.has_active_span()
                    && let Some(local) = self.local_service.clone().or_else(local_service_name)
                {
                    attributes.push(KeyValue::new(AWS_SPAN_KIND, LOCAL_ROOT));
                    attributes.push(KeyValue::new(AWS_LOCAL_SERVICE, local.to_string()));
                }
                let (span, cx) = start_kit_span_in(builder.with_attributes(attributes), parent);
                (Sink::Live(span), cx)
            }
        };
        cfg.interceptor_state()
            .store_put(CallSpan(Arc::new(Mutex::new(CallState {
                sink: Some(sink),
                service,
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
                    && let Some(sink) = state.sink.as_mut()
                {
                    sink.add_event(
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
            if cx.has_active_span() {
                inject(&cx, &mut SdkHeaders(context.request_mut().headers_mut()));
            }
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
        let Some((mut sink, service)) =
            call.with(|state| Some((state.sink.take()?, std::mem::take(&mut state.service))))
        else {
            return Ok(());
        };
        let response = context.response();
        if let Some(response) = response {
            sink.set_attribute(KeyValue::new(
                "http.response.status_code",
                i64::from(response.status().as_u16()),
            ));
            if let Some(id) = request_id(response) {
                sink.set_attribute(KeyValue::new("aws.request_id", id.to_owned()));
            }
        }
        match context.output_or_error() {
            Some(Ok(output)) => {
                let mut attributes = Vec::new();
                services::from_output(&service, output, &mut attributes);
                attributes.into_iter().for_each(|a| sink.set_attribute(a));
            }
            Some(Err(error)) => {
                let kind = if let Some(code) = response.and_then(error_code) {
                    code
                } else if error.is_timeout_error() {
                    "timeout".to_owned()
                } else if error.is_connector_error() {
                    "io".to_owned()
                } else {
                    "_OTHER".to_owned()
                };
                sink.fail(kind);
            }
            None => {}
        }
        sink.end();
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
