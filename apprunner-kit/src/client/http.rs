//! Outgoing HTTP with `reqwest`: a `reqwest-middleware` middleware that makes each request a
//! CLIENT span and injects the trace headers.
//!
//! `reqwest-tracing` does this for `tracing` spans, but its newest release (0.7) supports
//! OpenTelemetry up to 0.32 and this kit is on 0.33; the span is started here like the kit's
//! own HTTP and SQL spans, through the tracer API.

use std::borrow::Cow;

use ::http::Extensions;
use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, SpanBuilder, SpanKind};
use opentelemetry_http::HeaderInjector;
use reqwest::{Request, Response, Url};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware, Middleware, Next};

use super::{inject, start_client_span};

/// What replaces a redacted part of `url.full`, as the HTTP conventions spell it.
const REDACTED: &str = "REDACTED";

/// Wraps `client` so that every request it sends is a traced CLIENT span (see
/// [`TracingMiddleware`]).
///
/// # Example
///
/// ```
/// let client = apprunner::client::traced(reqwest::Client::new());
/// // `client.get(url).send().await` as with reqwest; the span and headers come for free.
/// # let _ = client;
/// ```
pub fn traced(client: reqwest::Client) -> ClientWithMiddleware {
    ClientBuilder::new(client)
        .with(TracingMiddleware::default())
        .build()
}

/// A `reqwest-middleware` middleware making each request a CLIENT span, child of the current
/// span (the request's SERVER span inside a handler traced by the kit, or the `tracing` span
/// entered), and injecting the propagators' headers (`X-Amzn-Trace-Id`, `traceparent`) with
/// that span's context.
///
/// The span follows the stable HTTP client conventions:
///
/// | attribute | value |
/// |---|---|
/// | name | the method (`GET`), `HTTP` for a method outside the standard ones |
/// | `http.request.method` | `GET`, `POST`, … or `_OTHER` (with `http.request.method_original`) |
/// | `server.address`, `server.port` | the URL's host and port (the scheme's default when none is written) |
/// | `url.full` | the URL without user name and password, every query value replaced by `REDACTED`: signatures, tokens and keys never reach a span |
/// | `http.response.status_code` | the status received |
/// | `error.type` | the status code for 4xx and 5xx (the span's status is then ERROR), or `timeout`, `connect`, `redirect`, `body`, `decode`, `request`, `middleware`, `_OTHER` when no response came |
/// | `peer.service` | the remote node's name on the X-Ray service map (the collector's X-Ray exporter names a CLIENT subsegment by it): the host, unless [`peer_service`](Self::peer_service) names it |
///
/// No header, body or error message goes into the span (an error message may quote the URL).
///
/// # Example
///
/// ```
/// use apprunner::client::{TracingMiddleware, reqwest_middleware::ClientBuilder};
///
/// let client = ClientBuilder::new(reqwest::Client::new())
///     .with(TracingMiddleware::default().peer_service("orders"))
///     .build();
/// # let _ = client;
/// ```
#[derive(Debug, Clone, Default)]
pub struct TracingMiddleware {
    peer_service: Option<Cow<'static, str>>,
}

impl TracingMiddleware {
    /// Names the service called (`peer.service`), which becomes its node on the X-Ray service
    /// map; by default the node is named after the host.
    ///
    /// # Example
    ///
    /// ```
    /// let middleware = apprunner::client::TracingMiddleware::default().peer_service("orders");
    /// # let _ = middleware;
    /// ```
    pub fn peer_service(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.peer_service = Some(name.into());
        self
    }

    fn span_builder(&self, request: &Request) -> SpanBuilder {
        let url = request.url();
        let method = request.method().as_str();
        let (name, known) = match method {
            "GET" | "HEAD" | "POST" | "PUT" | "DELETE" | "CONNECT" | "OPTIONS" | "TRACE"
            | "PATCH" => (method.to_owned(), true),
            _ => ("HTTP".to_owned(), false),
        };
        let mut attributes = Vec::with_capacity(7);
        if known {
            attributes.push(KeyValue::new("http.request.method", name.clone()));
        } else {
            attributes.push(KeyValue::new("http.request.method", "_OTHER"));
            attributes.push(KeyValue::new(
                "http.request.method_original",
                method.to_owned(),
            ));
        }
        let host = url.host_str().unwrap_or_default().to_owned();
        if let Some(port) = url.port_or_known_default() {
            attributes.push(KeyValue::new("server.port", i64::from(port)));
        }
        attributes.push(KeyValue::new("url.full", redacted_url(url)));
        let peer = match &self.peer_service {
            Some(name) => name.clone().into_owned(),
            None => host.clone(),
        };
        attributes.push(KeyValue::new("peer.service", peer));
        attributes.push(KeyValue::new("server.address", host));
        SpanBuilder::from_name(name)
            .with_kind(SpanKind::Client)
            .with_attributes(attributes)
    }
}

#[async_trait::async_trait]
impl Middleware for TracingMiddleware {
    async fn handle(
        &self,
        mut request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let (mut span, cx) = start_client_span(self.span_builder(&request));
        inject(&cx, &mut HeaderInjector(request.headers_mut()));
        let outcome = next.run(request, extensions).await;
        match &outcome {
            Ok(response) => {
                let status = response.status().as_u16();
                span.set_attribute(KeyValue::new(
                    "http.response.status_code",
                    i64::from(status),
                ));
                if status >= 400 {
                    span.fail(status.to_string());
                }
            }
            Err(error) => span.fail(error_type(error)),
        }
        span.end();
        outcome
    }
}

/// A low-cardinality name for a request that got no response.
fn error_type(error: &reqwest_middleware::Error) -> &'static str {
    match error {
        reqwest_middleware::Error::Middleware(_) => "middleware",
        reqwest_middleware::Error::Reqwest(error) if error.is_timeout() => "timeout",
        reqwest_middleware::Error::Reqwest(error) if error.is_connect() => "connect",
        reqwest_middleware::Error::Reqwest(error) if error.is_redirect() => "redirect",
        reqwest_middleware::Error::Reqwest(error) if error.is_body() => "body",
        reqwest_middleware::Error::Reqwest(error) if error.is_decode() => "decode",
        reqwest_middleware::Error::Reqwest(error) if error.is_request() => "request",
        reqwest_middleware::Error::Reqwest(_) => "_OTHER",
    }
}

/// `url` for `url.full`: user name and password replaced by `REDACTED`, every query value
/// replaced by `REDACTED` (the keys kept), no fragment.
fn redacted_url(url: &Url) -> String {
    let mut shown = url.clone();
    shown.set_fragment(None);
    if !shown.username().is_empty() || shown.password().is_some() {
        // Only a URL that cannot have credentials refuses them, and this one had some.
        let _ = shown.set_username(REDACTED);
        let _ = shown.set_password(Some(REDACTED));
    }
    if shown.query().is_some() {
        let keys: Vec<String> = url.query_pairs().map(|(key, _)| key.into_owned()).collect();
        if keys.is_empty() {
            shown.set_query(None);
        } else {
            shown
                .query_pairs_mut()
                .clear()
                .extend_pairs(keys.iter().map(|key| (key.as_str(), REDACTED)));
        }
    }
    shown.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redacted(url: &str) -> String {
        redacted_url(&Url::parse(url).unwrap())
    }

    #[test]
    fn query_values_and_credentials_are_redacted() {
        assert_eq!(
            redacted("https://user:pw@example.com:8443/a/b?token=s3cr3t&X-Amz-Signature=abc#frag"),
            "https://REDACTED:REDACTED@example.com:8443/a/b?token=REDACTED&X-Amz-Signature=REDACTED"
        );
        assert_eq!(
            redacted("http://example.com/p?flag&k=v"),
            "http://example.com/p?flag=REDACTED&k=REDACTED"
        );
        assert_eq!(redacted("http://example.com/p?"), "http://example.com/p");
        assert_eq!(
            redacted("http://example.com/users/42"),
            "http://example.com/users/42"
        );
    }

    #[test]
    fn the_span_follows_the_http_client_conventions() {
        let client = reqwest::Client::new();
        let request = client
            .request(
                reqwest::Method::from_bytes(b"PURGE").unwrap(),
                "http://cache.internal/x?key=secret",
            )
            .build()
            .unwrap();
        let builder = TracingMiddleware::default().span_builder(&request);
        assert_eq!(builder.name, "HTTP");
        assert_eq!(builder.span_kind, Some(SpanKind::Client));
        let attributes = builder.attributes.unwrap();
        let get = |key: &str| {
            attributes
                .iter()
                .find(|kv| kv.key.as_str() == key)
                .map(|kv| kv.value.to_string())
        };
        assert_eq!(get("http.request.method").as_deref(), Some("_OTHER"));
        assert_eq!(
            get("http.request.method_original").as_deref(),
            Some("PURGE")
        );
        assert_eq!(get("server.address").as_deref(), Some("cache.internal"));
        assert_eq!(get("server.port").as_deref(), Some("80"));
        assert_eq!(get("peer.service").as_deref(), Some("cache.internal"));
        assert_eq!(
            get("url.full").as_deref(),
            Some("http://cache.internal/x?key=REDACTED")
        );
        assert!(
            attributes
                .iter()
                .all(|kv| !kv.value.to_string().contains("secret"))
        );
    }
}
