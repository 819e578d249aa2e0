//! The server's request timeout (504) and body size limit (413), as one tower layer applied
//! inside the [`TraceLayer`](super::TraceLayer) so the span records them.
//! Not tower-http's timeout/limit: its bare 504/413 carry no JSON, `StatusMessage` or log line.

use std::{
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use axum::{body::Body, response::Response};
use http::{HeaderValue, Request, StatusCode, header};
use http_body::Body as _;
use http_body_util::Limited;
use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tower::{Layer, Service};

use super::{error::json_message, layer::StatusMessage};

#[derive(Clone, Copy, Debug)]
pub(crate) struct LimitsLayer {
    pub(crate) request_timeout: Option<Duration>,
    pub(crate) body_limit: Option<usize>,
}

impl<S> Layer<S> for LimitsLayer {
    type Service = Limits<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Limits {
            inner,
            limits: *self,
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Limits<S> {
    inner: S,
    limits: LimitsLayer,
}

impl<S> Service<Request<Body>> for Limits<S>
where
    S: Service<Request<Body>, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = LimitsFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        if let Some(limit) = self.limits.body_limit {
            let declared = request
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.parse::<u64>().ok());
            if let Some(length) = declared.filter(|length| *length > limit as u64) {
                // Answered (and logged) when polled: the request's span is attached then, so
                // the log line carries its trace id.
                return LimitsFuture::TooLarge {
                    length: Some(length),
                    limit,
                };
            }
            if !request.body().is_end_stream() {
                // A body without (or lying about) its length is cut off at the limit: axum's
                // extractors then answer 413, a handler reading the raw body gets an error.
                request = request.map(|body| Body::new(Limited::new(body, limit)));
            }
        }
        let timeout = self.limits.request_timeout;
        LimitsFuture::Running {
            future: self.inner.call(request),
            sleep: timeout.map(tokio::time::sleep),
            timeout: timeout.unwrap_or_default(),
        }
    }
}

pin_project! {
    #[project = LimitsFutureProj]
    #[derive(Debug)]
    pub(crate) enum LimitsFuture<F> {
        TooLarge { length: Option<u64>, limit: usize },
        Running {
            #[pin]
            future: F,
            #[pin]
            sleep: Option<Sleep>,
            timeout: Duration,
        },
    }
}

impl<F, E> Future for LimitsFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            LimitsFutureProj::TooLarge { length, limit } => {
                let length = length.take().expect("LimitsFuture polled after completion");
                tracing::warn!(
                    content_length = length,
                    limit_bytes = *limit as u64,
                    "request body larger than the limit: answering 413"
                );
                Poll::Ready(Ok(too_large(*limit)))
            }
            LimitsFutureProj::Running {
                future,
                sleep,
                timeout,
            } => {
                if let Poll::Ready(result) = future.poll(cx) {
                    return Poll::Ready(result);
                }
                match sleep.as_pin_mut().map(|sleep| sleep.poll(cx)) {
                    Some(Poll::Ready(())) => {
                        tracing::warn!(
                            timeout_ms = timeout.as_millis() as u64,
                            "request timed out: answering 504"
                        );
                        Poll::Ready(Ok(timed_out(*timeout)))
                    }
                    _ => Poll::Pending,
                }
            }
        }
    }
}

fn json_response(status: StatusCode, message: &str) -> Response {
    let mut response = Response::new(Body::from(json_message(message)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn too_large(limit: usize) -> Response {
    json_response(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!("request body is larger than the limit of {limit} bytes"),
    )
}

fn timed_out(timeout: Duration) -> Response {
    let mut response = json_response(
        StatusCode::GATEWAY_TIMEOUT,
        &format!("request timed out after {} ms", timeout.as_millis()),
    );
    response
        .extensions_mut()
        .insert(StatusMessage("request timed out"));
    response
}
