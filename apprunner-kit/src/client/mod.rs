//! Calls out of the service, traced: every outgoing request is a CLIENT span, child of the span
//! that made it, and carries the trace headers so the service called continues the trace.
//!
//! | call | how | span |
//! |---|---|---|
//! | AWS SDK for Rust (any service client) | [`aws_client!`](crate::aws_client)`(aws_sdk_s3, &config)`, or `.interceptor(AwsTracing::default())` on the service's config builder (feature `aws-sdk`) | `SecretsManager.GetSecretValue` (`{Service}.{Operation}`), `rpc.system=aws-api`: one `aws` node per service on the X-Ray map |
//! | HTTP with `reqwest` | [`traced`] wraps a client in one line, or add [`TracingMiddleware`] to a `reqwest-middleware` chain | `GET` (the method), [HTTP client conventions](https://opentelemetry.io/docs/specs/semconv/http/http-spans/#http-client-span) |
//!
//! The headers injected are those of the kit's propagators (`OTEL_PROPAGATORS`, by default
//! `X-Amzn-Trace-Id`, `traceparent` and `baggage`): the called service, App Runner's front end
//! or an AWS service that continues X-Ray traces sees the caller's trace.
//!
//! ```no_run
//! # async fn demo() -> Result<(), reqwest_middleware::Error> {
//! let orders = apprunner::client::traced(reqwest::Client::new());
//! // Inside a traced handler: a CLIENT span under the request's SERVER span.
//! let response = orders.get("http://orders.internal/orders/42").send().await?;
//! # let _ = response;
//! # Ok(())
//! # }
//! ```

#[cfg(feature = "aws-sdk")]
mod aws;
mod http;

#[cfg(feature = "secrets")]
pub(crate) use self::aws::{AWS_LOCAL_SERVICE, AWS_SPAN_KIND, LOCAL_ROOT, RecordedCall, Recorder};
#[cfg(feature = "aws-sdk")]
#[cfg_attr(docsrs, doc(cfg(feature = "aws-sdk")))]
pub use self::aws::{AwsTracing, load_aws_config};
pub use self::http::{TracingMiddleware, traced};

use opentelemetry::Context;
use opentelemetry::propagation::Injector;
use opentelemetry::trace::SpanBuilder;

use crate::telemetry::{KitSpan, current_parent, start_kit_span_in};

/// A call's CLIENT span, started from `builder` under the current span, and the context its
/// trace headers carry (the current one, with the CLIENT span as its span).
fn start_client_span(builder: SpanBuilder) -> (KitSpan, Context) {
    start_kit_span_in(builder, current_parent())
}

/// Writes the propagators' headers for `cx` through `injector`.
pub(crate) fn inject(cx: &Context, injector: &mut dyn Injector) {
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(cx, injector);
    });
}

/// The `reqwest-middleware` crate the traced client is built with, for naming its types
/// (`ClientWithMiddleware`, `ClientBuilder`, `Error`) without a direct dependency.
pub use reqwest_middleware;
