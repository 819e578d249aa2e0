//! The tower layer: one SERVER span per request.

use std::{
    any::Any,
    any::type_name,
    net::SocketAddr,
    panic::{AssertUnwindSafe, catch_unwind},
    pin::Pin,
    task::{Context, Poll, ready},
};

use axum::{
    body::Bytes,
    extract::{ConnectInfo, MatchedPath},
};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Version, header};
use http_body::{Body, Frame, SizeHint};
use opentelemetry::{
    Context as OtelContext, KeyValue,
    trace::{SpanBuilder, SpanKind, Status, TraceContextExt as _},
};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::telemetry::start_kit_span;

use super::{
    error::json_message,
    propagation::{X_AMZN_TRACE_ID, extract_context, xray_header_value},
};

const X_FORWARDED_FOR: header::HeaderName = header::HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: header::HeaderName = header::HeaderName::from_static("x-forwarded-proto");

/// A response extension set by the kit's own error responses (timeout, panic): the span status
/// message to record instead of a bare `Error`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StatusMessage(pub(crate) &'static str);

/// A [`tower::Layer`] turning each request into an OpenTelemetry SERVER span.
///
/// See the [module docs](super) for the span's name, attributes and status. Apply it with
/// [`Router::layer`](axum::Router::layer) so it sees the route template; [`Server`](super::Server)
/// does that for you.
///
/// # Example
///
/// ```
/// use axum::{Router, body::Body, routing::get};
/// use tower::ServiceExt as _;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let app = Router::new()
///     .route("/users/{id}", get(|| async { "a user" }))
///     .layer(apprunner::http::TraceLayer::new());
///
/// let request = http::Request::get("/users/7").body(Body::empty()).unwrap();
/// let response = app.oneshot(request).await.unwrap();
/// assert_eq!(response.status(), 200);
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct TraceLayer {
    record_query: bool,
}

impl TraceLayer {
    /// A layer with the defaults: the query string is not recorded.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the query string as `url.query` when `true`.
    ///
    /// Off by default: query strings often carry tokens or personal data, and span attributes
    /// end up in X-Ray, readable by everyone with access to the traces.
    ///
    /// ```
    /// let layer = apprunner::http::TraceLayer::new().record_query(true);
    /// # let _ = layer;
    /// ```
    pub fn record_query(mut self, record: bool) -> Self {
        self.record_query = record;
        self
    }
}

impl<S> Layer<S> for TraceLayer {
    type Service = Trace<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Trace {
            inner,
            layer: *self,
        }
    }
}

/// The [`tower::Service`] made by [`TraceLayer`].
///
/// ```
/// use tower::Layer as _;
///
/// let service = apprunner::http::TraceLayer::new()
///     .layer(tower::service_fn(|_request: http::Request<()>| async {
///         Ok::<_, std::convert::Infallible>(http::Response::new(axum::body::Body::empty()))
///     }));
/// # let _ = service;
/// ```
#[derive(Clone, Debug)]
pub struct Trace<S> {
    inner: S,
    layer: TraceLayer,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Trace<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Body<Data = Bytes>,
{
    type Response = Response<TracedBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let cx = start_span(&request, self.layer);
        // The context is not attached here: `call` only builds the future (the handler runs
        // when it is polled, with the context attached).
        let state = match catch_unwind(AssertUnwindSafe(|| self.inner.call(request))) {
            Ok(future) => State::Running { future },
            Err(payload) => State::Panicked {
                message: panic_message(&*payload),
            },
        };
        ResponseFuture {
            state,
            finish: Some(Finish { cx }),
        }
    }
}

/// Starts the SERVER span of `request` as a child of the context its headers carry, and returns
/// the context holding it.
fn start_span<B>(request: &Request<B>, layer: TraceLayer) -> OtelContext {
    let parent = extract_context(request.headers());
    // The name and attributes are worked out before the start, so that the sampler sees them.
    let span = start_kit_span(request_span(request, layer), &parent);
    parent.with_span(span)
}

pin_project! {
    /// The future of [`Trace`]: the inner service's response, with the span's
    /// `X-Amzn-Trace-Id` header added and its body wrapped in a [`TracedBody`].
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
        finish: Option<Finish>,
    }
}

pin_project! {
    #[project = StateProj]
    #[derive(Debug)]
    enum State<F> {
        Running { #[pin] future: F },
        Panicked { message: String },
        Done,
    }
}

enum Outcome<T> {
    Ready(T),
    Panic(String),
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body<Data = Bytes>,
{
    type Output = Result<Response<TracedBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let outcome = {
            let finish = this
                .finish
                .as_ref()
                .expect("ResponseFuture polled after completion");
            // Attached while the handler runs: its logs carry the trace id, and its spans
            // (`tracing` ones too) and SQL statements become children of this span.
            let _attached = finish.cx.clone().attach();
            match this.state.as_mut().project() {
                StateProj::Running { future } => {
                    match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
                        Ok(Poll::Pending) => return Poll::Pending,
                        Ok(Poll::Ready(result)) => Outcome::Ready(result),
                        Err(payload) => Outcome::Panic(panic_message(&*payload)),
                    }
                }
                StateProj::Panicked { message } => Outcome::Panic(std::mem::take(message)),
                StateProj::Done => unreachable!("a finished ResponseFuture keeps no span"),
            }
        };
        this.state.set(State::Done);
        let finish = this.finish.take().expect("checked above");
        Poll::Ready(match outcome {
            Outcome::Ready(Ok(response)) => Ok(finish.respond(response.map(Kind::inner))),
            Outcome::Ready(Err(error)) => {
                finish.fail(type_name::<E>());
                Err(error)
            }
            Outcome::Panic(message) => {
                let response = finish.panic_response(&message);
                Ok(finish.respond(response))
            }
        })
    }
}

/// Owns the span until the response is over; ending it hands it to the exporter.
#[derive(Debug)]
struct Finish {
    /// The request's context, holding its SERVER span.
    cx: OtelContext,
}

impl Finish {
    /// Records the response on the span and moves the span into the response body.
    fn respond<B>(self, mut response: Response<Kind<B>>) -> Response<TracedBody<B>> {
        let span = self.cx.span();
        let status = response.status();
        if span.is_recording() {
            span.set_attribute(KeyValue::new(
                "http.response.status_code",
                i64::from(status.as_u16()),
            ));
            if status.is_server_error() {
                span.set_attribute(KeyValue::new("error.type", status.as_str().to_owned()));
                let message = response
                    .extensions()
                    .get::<StatusMessage>()
                    .map_or("", |StatusMessage(message)| message);
                span.set_status(Status::error(message));
            }
        }
        if let Some(value) = xray_header_value(span.span_context()) {
            response.headers_mut().insert(X_AMZN_TRACE_ID, value);
        }
        response.map(|kind| TracedBody {
            kind,
            finish: Some(self),
        })
    }

    /// Records a failure that left no response (or broke the body off).
    fn fail(self, error_type: &'static str) {
        let span = self.cx.span();
        span.set_attribute(KeyValue::new("error.type", error_type));
        span.set_status(Status::error(""));
    }

    /// The `500` answered for a panicking handler; the panic is recorded on the span.
    fn panic_response<B>(&self, message: &str) -> Response<Kind<B>> {
        self.cx.span().add_event(
            "exception",
            vec![
                KeyValue::new("exception.type", "panic"),
                KeyValue::new("exception.message", message.to_owned()),
            ],
        );
        let _attached = self.cx.clone().attach();
        tracing::error!(panic.message = message, "request handler panicked");
        let mut response = Response::new(Kind::Full {
            data: Some(json_message("internal server error")),
        });
        *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
            .extensions_mut()
            .insert(StatusMessage("request handler panicked"));
        response
    }
}

impl Drop for Finish {
    fn drop(&mut self) {
        // End the span first so it is queued, then ask for an export while the instance still
        // has CPU (see the module docs).
        self.cx.span().end();
        crate::telemetry::export_soon();
    }
}

pin_project! {
    /// The response body of [`Trace`]: the inner body, unchanged. The span ends when the body
    /// has been sent in full (or dropped, when the client went away).
    #[derive(Debug)]
    pub struct TracedBody<B> {
        #[pin]
        kind: Kind<B>,
        finish: Option<Finish>,
    }
}

pin_project! {
    #[project = KindProj]
    #[derive(Debug)]
    enum Kind<B> {
        Inner { #[pin] body: B },
        Full { data: Option<Bytes> },
    }
}

impl<B> Kind<B> {
    fn inner(body: B) -> Self {
        Kind::Inner { body }
    }
}

impl<B: Body<Data = Bytes>> Body for Kind<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project() {
            KindProj::Inner { body } => body.poll_frame(cx),
            KindProj::Full { data } => Poll::Ready(data.take().map(|data| Ok(Frame::data(data)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Kind::Inner { body } => body.is_end_stream(),
            Kind::Full { data } => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Kind::Inner { body } => body.size_hint(),
            Kind::Full { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |data| data.len() as u64))
            }
        }
    }
}

impl<B: Body<Data = Bytes>> Body for TracedBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let mut this = self.project();
        let polled = {
            // A body of unknown length is a stream that may run user code (and log) when
            // polled: do that inside the span. A body of known length is just bytes.
            let streaming = this.kind.size_hint().exact().is_none();
            let _attached = this
                .finish
                .as_ref()
                .filter(|_| streaming)
                .map(|finish| finish.cx.clone().attach());
            ready!(this.kind.as_mut().poll_frame(cx))
        };
        match &polled {
            None => drop(this.finish.take()),
            Some(Err(_)) => {
                if let Some(finish) = this.finish.take() {
                    finish.fail(type_name::<B::Error>());
                }
            }
            Some(Ok(_)) if this.kind.is_end_stream() => drop(this.finish.take()),
            Some(Ok(_)) => {}
        }
        Poll::Ready(polled)
    }

    fn is_end_stream(&self) -> bool {
        self.kind.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.kind.size_hint()
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "panic payload is not a string".to_owned()
    }
}

/// The span name and the request attributes of the semantic conventions (the sampler sees
/// them).
fn request_span<B>(request: &Request<B>, layer: TraceLayer) -> SpanBuilder {
    let headers = request.headers();
    let (method, method_original) = method_name(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    let name_method = if method == "_OTHER" { "HTTP" } else { method };
    let name = match route {
        Some(route) => format!("{name_method} {route}"),
        None => name_method.to_owned(),
    };
    let mut attributes = Vec::with_capacity(12);
    attributes.push(KeyValue::new("http.request.method", method));
    if let Some(original) = method_original {
        attributes.push(KeyValue::new(
            "http.request.method_original",
            original.to_owned(),
        ));
    }
    if let Some(route) = route {
        attributes.push(KeyValue::new("http.route", route.to_owned()));
    }
    attributes.push(KeyValue::new("url.path", request.uri().path().to_owned()));
    attributes.push(KeyValue::new("url.scheme", url_scheme(request).to_owned()));
    if let Some(query) = request.uri().query().filter(|_| layer.record_query) {
        attributes.push(KeyValue::new("url.query", query.to_owned()));
    }
    let (server_address, server_port) = server_address(request);
    if let Some(address) = server_address {
        attributes.push(KeyValue::new("server.address", address.to_owned()));
    }
    if let Some(port) = server_port {
        attributes.push(KeyValue::new("server.port", port));
    }
    let client_address = forwarded_for(headers).map(str::to_owned).or_else(|| {
        let ConnectInfo(peer) = request.extensions().get::<ConnectInfo<SocketAddr>>()?;
        Some(peer.ip().to_string())
    });
    if let Some(address) = client_address {
        attributes.push(KeyValue::new("client.address", address));
    }
    attributes.push(KeyValue::new(
        "network.protocol.version",
        protocol_version(request.version()),
    ));
    if let Some(agent) = header_str(headers, &header::USER_AGENT) {
        attributes.push(KeyValue::new("user_agent.original", agent.to_owned()));
    }
    SpanBuilder::from_name(name)
        .with_kind(SpanKind::Server)
        .with_attributes(attributes)
}

/// The semantic-conventions name of a method, and the original when it is not a standard one.
fn method_name(method: &Method) -> (&'static str, Option<&str>) {
    let known = match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => return ("_OTHER", Some(method.as_str())),
    };
    (known, None)
}

fn header_str<'a>(headers: &'a HeaderMap, name: &header::HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// The first `X-Forwarded-For` entry: the original client, as seen by the first proxy.
fn forwarded_for(headers: &HeaderMap) -> Option<&str> {
    let first = header_str(headers, &X_FORWARDED_FOR)?
        .split(',')
        .next()?
        .trim();
    (!first.is_empty()).then_some(first)
}

/// `url.scheme`: `X-Forwarded-Proto` (the scheme the client used, before TLS termination),
/// else the request URI's, else `http`.
fn url_scheme<B>(request: &Request<B>) -> &str {
    let forwarded = header_str(request.headers(), &X_FORWARDED_PROTO)
        .map(|proto| proto.split(',').next().unwrap_or_default().trim())
        .filter(|proto| proto.eq_ignore_ascii_case("https") || proto.eq_ignore_ascii_case("http"));
    match forwarded.or_else(|| request.uri().scheme_str()) {
        Some(scheme) if scheme.eq_ignore_ascii_case("https") => "https",
        Some(scheme) if !scheme.eq_ignore_ascii_case("http") => scheme,
        _ => "http",
    }
}

/// `server.address` and `server.port` from the `:authority` (HTTP/2) or the `Host` header.
fn server_address<B>(request: &Request<B>) -> (Option<&str>, Option<i64>) {
    let authority = request
        .uri()
        .authority()
        .map(|authority| authority.as_str());
    let Some(authority) = authority.or_else(|| header_str(request.headers(), &header::HOST)) else {
        return (None, None);
    };
    // `[v6]:port`, `host:port` or a bare host.
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => (host, port.parse::<u16>().ok()),
        _ => (authority, None),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ((!host.is_empty()).then_some(host), port.map(i64::from))
}

fn protocol_version(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_11 => "1.1",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(uri: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut builder = Request::get(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn methods_outside_the_standard_set_are_other() {
        assert_eq!(method_name(&Method::PATCH), ("PATCH", None));
        let purge = Method::from_bytes(b"PURGE").unwrap();
        assert_eq!(method_name(&purge), ("_OTHER", Some("PURGE")));
    }

    #[test]
    fn client_is_the_first_forwarded_for_entry() {
        let r = request("/", &[("x-forwarded-for", " 203.0.113.7 , 10.0.0.1")]);
        assert_eq!(forwarded_for(r.headers()), Some("203.0.113.7"));
        let r = request("/", &[("x-forwarded-for", " , 10.0.0.1")]);
        assert_eq!(forwarded_for(r.headers()), None);
    }

    #[test]
    fn scheme_prefers_forwarded_proto() {
        let r = request("/", &[("x-forwarded-proto", "https")]);
        assert_eq!(url_scheme(&r), "https");
        let r = request("/", &[("x-forwarded-proto", "javascript")]);
        assert_eq!(url_scheme(&r), "http");
        let r = request("https://example.com/", &[]);
        assert_eq!(url_scheme(&r), "https");
        let r = request("/", &[]);
        assert_eq!(url_scheme(&r), "http");
    }

    #[test]
    fn server_address_splits_host_and_port() {
        let r = request("/", &[("host", "example.com:8443")]);
        assert_eq!(server_address(&r), (Some("example.com"), Some(8443)));
        let r = request("/", &[("host", "example.com")]);
        assert_eq!(server_address(&r), (Some("example.com"), None));
        let r = request("/", &[("host", "[::1]:8080")]);
        assert_eq!(server_address(&r), (Some("::1"), Some(8080)));
        let r = request("/", &[("host", "[::1]")]);
        assert_eq!(server_address(&r), (Some("::1"), None));
        let r = request("http://h2.example:81/", &[("host", "ignored")]);
        assert_eq!(server_address(&r), (Some("h2.example"), Some(81)));
    }

    #[test]
    fn panic_messages_are_read_from_str_and_string_payloads() {
        assert_eq!(panic_message(&"boom"), "boom");
        assert_eq!(panic_message(&String::from("bang")), "bang");
        assert_eq!(panic_message(&42_u8), "panic payload is not a string");
    }
}
