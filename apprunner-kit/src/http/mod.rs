//! Traced HTTP for App Runner: a tower layer turning each request into a SERVER span, and a
//! server runner with the defaults a service behind App Runner's front end needs.
//!
//! ```no_run
//! use axum::{Router, routing::get};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let telemetry = apprunner::telemetry::init()?;
//!     let app = Router::new().route("/users/{id}", get(|| async { "a user" }));
//!     // Binds $HOST:$PORT (0.0.0.0:8080 when unset), traces every request, drains on SIGTERM.
//!     let served = apprunner::serve(app).await;
//!     // Flush every finished span before the process exits.
//!     telemetry.shutdown().await?;
//!     Ok(served?)
//! }
//! ```
//!
//! # The SERVER span
//!
//! [`TraceLayer`] makes one span per request, named `{METHOD} {route}` after the route template
//! (`GET /users/{id}`), or just `{METHOD}` when no route matched (a 404): never after the raw
//! path, which would give every user id its own span name. Its attributes follow the stable
//! OpenTelemetry HTTP semantic conventions:
//!
//! | attribute | value |
//! |---|---|
//! | `http.request.method` | `GET`, `POST`, …; `_OTHER` (with `http.request.method_original`) for non-standard methods |
//! | `http.route` | the route template, from axum's [`MatchedPath`](axum::extract::MatchedPath) |
//! | `url.path`, `url.scheme` | the request path; `X-Forwarded-Proto` (App Runner terminates TLS), else the URI's scheme, else `http` |
//! | `url.query` | only with [`TraceLayer::record_query`]: query strings often carry tokens |
//! | `http.response.status_code` | the response status |
//! | `client.address` | the first `X-Forwarded-For` entry (App Runner puts a proxy in front), else the TCP peer (when served by [`Server`], or with axum's `ConnectInfo`) |
//! | `server.address`, `server.port` | from `:authority` / `Host` |
//! | `user_agent.original`, `network.protocol.version` | from the request |
//! | `error.type` | the status code on a 5xx; the error's type name when the service or the response body fails |
//!
//! The span is made with the OpenTelemetry API directly, with the tracer
//! [`telemetry::init`](crate::telemetry::init) installed (else the global provider's): no
//! `tracing` span stands for it, which keeps the cost per request low (see `benches/README.md`).
//! Its name and attributes are only worked out when the sampler records the span; behind App
//! Runner most requests arrive with `Sampled=0`. `OTEL_TRACES_SAMPLER` decides which requests
//! are traced; [`Server::trace_layer`] turns the layer off.
//!
//! The span status is `Error` on a 5xx and on failures, never on a 4xx (a client's mistake is not
//! a fault of the service). A panicking handler is answered `500` with a JSON body, its span gets
//! an `exception` event and the status `Error`, and the connection stays up.
//!
//! The span's parent is extracted from the request headers with the global propagator
//! ([`extract_context`]), so with [`telemetry::init`](crate::telemetry::init) the span
//! continues the `X-Amzn-Trace-Id` that App Runner's front end adds (or a W3C `traceparent`).
//! Every response carries `X-Amzn-Trace-Id: Root=1-…;Parent=<span id>;Sampled=1` naming the
//! span, so a caller can paste the trace id into the X-Ray console. The span's context is the
//! current [`opentelemetry::Context`] while the handler runs and while a streaming body (one of
//! unknown length) is produced, so every log line written meanwhile carries the trace id, and
//! `tracing` spans (`#[tracing::instrument]`), SQL statements and outgoing calls made meanwhile
//! are its children. The handler reaches the span with
//! `opentelemetry::Context::current().span()` (to add an attribute, say). Work spawned onto
//! other tasks takes the context along with
//! [`FutureExt::with_current_context`](opentelemetry::trace::FutureExt::with_current_context).
//!
//! # Applying the layer to an axum router: `Router::layer`, not `route_layer`
//!
//! In axum 0.8, [`Router::layer`](axum::Router::layer) wraps each route (and the fallback)
//! *after* routing: the router matches the path, inserts `MatchedPath` into the request
//! extensions and only then calls the layered route. So `router.layer(TraceLayer::new())` sees
//! the template. `route_layer` would also see it but skips the fallback, leaving 404s untraced.
//! Wrapping the whole router from outside (`ServiceBuilder::new().layer(..).service(router)`)
//! runs *before* routing: every span would be named `{METHOD}` only. Routes added after the call
//! to `.layer` are not traced. [`Server`] (and [`serve`]) applies the layer this way itself.
//!
//! The layer works with any tower/hyper service whose response body yields [`Bytes`](axum::body::Bytes); without `MatchedPath` the spans are named `{METHOD}`.
//!
//! # Spans leave the process although App Runner throttles the CPU
//!
//! App Runner gives an instance CPU only while it serves a request. A batch span exporter's timer
//! (every 5 s by default) may then not fire for minutes, and an instance may be stopped with the
//! spans of its last requests still queued. So when a response ends (its body is sent, or the
//! client goes away) the layer calls [`telemetry::export_soon`](crate::telemetry::export_soon),
//! which asks the exporter to send the queued spans now, while the instance still has CPU. On
//! SIGTERM, [`Server`] stops accepting, lets in-flight requests finish within the drain timeout
//! and returns; [`TelemetryGuard::shutdown`](crate::telemetry::TelemetryGuard::shutdown) then
//! flushes what is left, so the process exits 0 with no span lost.
//!
//! # Server defaults
//!
//! | setting | default | answer |
//! |---|---|---|
//! | [`Server::port`] | `$PORT`, else 8080 | HTTP/1.1 and h2c (HTTP/2 without TLS, as App Runner forwards) |
//! | [`Server::host`] | `$HOST`, else `0.0.0.0` (every interface, as App Runner and ECS need); `127.0.0.1` for local runs and tests | |
//! | [`Server::access_log`] | `$APPRUNNER_ACCESS_LOG`, else `problems` | [`AccessLog`]: a line for 5xx, requests slower than `$APPRUNNER_SLOW_REQUEST_MS` (1000) and rejected input; `all` for every request |
//! | [`Server::untraced_routes`] | none | routes served outside the trace layer and the access log (API docs) |
//! | [`Server::request_timeout`] | 60 s (App Runner's limit is 120 s) | `504` with `{"message": …}`, span status `Error` |
//! | [`Server::body_limit`] | 2 MiB | `413` |
//! | [`Server::drain_timeout`] | 20 s after SIGTERM / SIGINT | in-flight requests finish, then `serve` returns `Ok` |
//! | [`Server::health_route`] | none | [`HealthRoute`]: `200 {"status":"ok"}` without touching the database |
//!
//! Once bound, [`Server`] logs `listening` with the `address` and, on Linux, `startup_ms`: the
//! time since the process started (secrets, telemetry, database connection and migrations
//! included), to watch the cold starts App Runner's health check waits for.

mod access_log;
mod error;
mod health;
mod layer;
mod limits;
mod propagation;
mod serve;

pub use access_log::{
    ACCESS_LOG_TARGET, AccessLog, AccessLogFuture, AccessLogMode, AccessLogService,
};
pub use error::HttpError;
pub use health::{HealthRoute, health_route};
pub use layer::{ResponseFuture, Trace, TraceLayer, TracedBody};
pub use propagation::{X_AMZN_TRACE_ID, extract_context, inject_context, xray_header_value};
pub use serve::{Server, serve};
