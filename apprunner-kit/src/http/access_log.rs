//! The access log: one line for the requests worth a line, not one per request.

use std::{
    pin::Pin,
    task::{Context, Poll, ready},
    time::{Duration, Instant},
};

use axum::extract::MatchedPath;
use http::{Method, Request, Response, StatusCode, Uri};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use super::error::HttpError;

/// The `tracing` target of the access log lines (filter them with `RUST_LOG`, e.g.
/// `RUST_LOG=info,apprunner::http::access=off`).
pub const ACCESS_LOG_TARGET: &str = "apprunner::http::access";

/// Which requests get an access log line: see [`AccessLog`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AccessLogMode {
    /// Server errors, slow requests and rejected input only (`APPRUNNER_ACCESS_LOG=problems`,
    /// the default).
    #[default]
    Problems,
    /// Every request (`APPRUNNER_ACCESS_LOG=all`).
    All,
    /// No access log line at all (`APPRUNNER_ACCESS_LOG=off`); the layer is not applied.
    Off,
}

/// The access log: a [`tower::Layer`] writing one log line for the requests worth one.
///
/// Every traced request already has a SERVER span holding its method, route, status and
/// duration, so a line per request would only repeat the span, at one CloudWatch Logs ingestion
/// each (a load run of 564 k requests wrote 564 k lines). By default
/// ([`AccessLogMode::Problems`]) a line is written only for:
///
/// | request | level | message |
/// |---|---|---|
/// | answered 5xx | `ERROR` | `request failed` |
/// | slower than the [slow threshold](Self::slow_threshold) (default [`AccessLog::DEFAULT_SLOW_THRESHOLD`], 1 s) | `WARN` | `slow request` |
/// | rejected input: `400`, `413`, `414`, `415`, `422`, `431` | `INFO` | `request rejected` |
///
/// Rejected input is the client's mistake, not a fault of the service, so it stays at `INFO`:
/// visible to whoever debugs a client, never an alarm. Other 4xx (401, 403, 404, 409, …) are
/// ordinary answers and write nothing. [`AccessLogMode::All`] adds `request served` at `INFO`
/// for every other request.
///
/// Each line has `http.request.method`, `http.route` (or `url.path` when no route matched),
/// `http.response.status_code` and `duration_ms` (until the response head), under the
/// [`ACCESS_LOG_TARGET`] target. Inside the [`TraceLayer`](super::TraceLayer) (as
/// [`Server`](super::Server) applies it) the line also carries the request's `trace_id`.
///
/// | variable | values | default |
/// |---|---|---|
/// | `APPRUNNER_ACCESS_LOG` | `problems`, `all`, `off` | `problems` |
/// | `APPRUNNER_SLOW_REQUEST_MS` | milliseconds; `0` turns the slow line off | `1000` |
///
/// ```
/// use std::time::Duration;
/// use apprunner::http::{AccessLog, AccessLogMode};
/// use axum::{Router, routing::get};
///
/// let access_log = AccessLog::new()
///     .mode(AccessLogMode::All)
///     .slow_threshold(Duration::from_millis(500));
/// let app: Router = Router::new()
///     .route("/", get(|| async { "hello" }))
///     .layer(access_log);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccessLog {
    mode: AccessLogMode,
    slow: Option<Duration>,
}

impl Default for AccessLog {
    fn default() -> Self {
        Self::new()
    }
}

impl AccessLog {
    /// The default slow threshold: 1 s. App Runner's front end allows 120 s and the kit's
    /// request timeout 60 s; a request taking a second already shows a problem worth a line.
    pub const DEFAULT_SLOW_THRESHOLD: Duration = Duration::from_secs(1);

    /// [`AccessLogMode::Problems`] with the default slow threshold.
    ///
    /// ```
    /// let access_log = apprunner::http::AccessLog::new();
    /// # let _ = access_log;
    /// ```
    pub fn new() -> Self {
        Self {
            mode: AccessLogMode::Problems,
            slow: Some(Self::DEFAULT_SLOW_THRESHOLD),
        }
    }

    /// Configured from the process environment: `APPRUNNER_ACCESS_LOG`,
    /// `APPRUNNER_SLOW_REQUEST_MS`.
    ///
    /// ```
    /// let access_log = apprunner::http::AccessLog::from_env().expect("valid settings");
    /// # let _ = access_log;
    /// ```
    pub fn from_env() -> Result<Self, HttpError> {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    /// Configured from `lookup` instead of the process environment (for tests).
    ///
    /// ```
    /// use apprunner::http::{AccessLog, AccessLogMode};
    ///
    /// let access_log = AccessLog::from_lookup(|key| {
    ///     (key == "APPRUNNER_ACCESS_LOG").then(|| "all".to_owned())
    /// })
    /// .unwrap();
    /// assert_eq!(access_log.access_log_mode(), AccessLogMode::All);
    /// ```
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, HttpError> {
        let mut log = Self::new();
        if let Some(value) = lookup("APPRUNNER_ACCESS_LOG").filter(|v| !v.trim().is_empty()) {
            log.mode = match value.trim().to_ascii_lowercase().as_str() {
                "problems" => AccessLogMode::Problems,
                "all" => AccessLogMode::All,
                "off" | "none" => AccessLogMode::Off,
                _ => {
                    return Err(HttpError::InvalidVar {
                        var: "APPRUNNER_ACCESS_LOG",
                        value,
                        expected: "problems (the default), all or off",
                    });
                }
            };
        }
        if let Some(value) = lookup("APPRUNNER_SLOW_REQUEST_MS").filter(|v| !v.trim().is_empty()) {
            let ms = value
                .trim()
                .parse::<u64>()
                .map_err(|_| HttpError::InvalidVar {
                    var: "APPRUNNER_SLOW_REQUEST_MS",
                    value: value.clone(),
                    expected: "a number of milliseconds (0 turns the slow request line off)",
                })?;
            log.slow = (ms > 0).then(|| Duration::from_millis(ms));
        }
        Ok(log)
    }

    /// Which requests get a line.
    ///
    /// ```
    /// use apprunner::http::{AccessLog, AccessLogMode};
    ///
    /// let every_request = AccessLog::new().mode(AccessLogMode::All);
    /// # let _ = every_request;
    /// ```
    pub fn mode(mut self, mode: AccessLogMode) -> Self {
        self.mode = mode;
        self
    }

    /// Requests taking at least this long (until the response head) get a `WARN` line; `None`
    /// for no slow line.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let access_log = apprunner::http::AccessLog::new().slow_threshold(Duration::from_millis(250));
    /// let never_slow = apprunner::http::AccessLog::new().slow_threshold(None);
    /// # let _ = (access_log, never_slow);
    /// ```
    pub fn slow_threshold(mut self, threshold: impl Into<Option<Duration>>) -> Self {
        self.slow = threshold.into();
        self
    }

    /// The configured mode.
    ///
    /// ```
    /// use apprunner::http::{AccessLog, AccessLogMode};
    ///
    /// assert_eq!(AccessLog::new().access_log_mode(), AccessLogMode::Problems);
    /// ```
    pub fn access_log_mode(&self) -> AccessLogMode {
        self.mode
    }

    /// The configured slow threshold.
    ///
    /// ```
    /// use apprunner::http::AccessLog;
    ///
    /// assert_eq!(AccessLog::new().slow(), Some(AccessLog::DEFAULT_SLOW_THRESHOLD));
    /// ```
    pub fn slow(&self) -> Option<Duration> {
        self.slow
    }

    /// `true` when the layer would write nothing.
    pub(crate) fn is_off(&self) -> bool {
        self.mode == AccessLogMode::Off
    }

    /// What is logged for a request answered `status` after `elapsed`, if anything.
    fn verdict(&self, status: StatusCode, elapsed: Duration) -> Option<Verdict> {
        if self.mode == AccessLogMode::Off {
            return None;
        }
        if status.is_server_error() {
            return Some(Verdict::Failed);
        }
        if self.slow.is_some_and(|slow| elapsed >= slow) {
            return Some(Verdict::Slow);
        }
        if is_rejected_input(status) {
            return Some(Verdict::Rejected);
        }
        (self.mode == AccessLogMode::All).then_some(Verdict::Served)
    }
}

/// The statuses that say the request itself was unacceptable.
fn is_rejected_input(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::BAD_REQUEST
            | StatusCode::PAYLOAD_TOO_LARGE
            | StatusCode::URI_TOO_LONG
            | StatusCode::UNSUPPORTED_MEDIA_TYPE
            | StatusCode::UNPROCESSABLE_ENTITY
            | StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    )
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Failed,
    Slow,
    Rejected,
    Served,
}

impl<S> Layer<S> for AccessLog {
    type Service = AccessLogService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AccessLogService { inner, log: *self }
    }
}

/// The [`tower::Service`] made by [`AccessLog`].
///
/// ```
/// use tower::Layer as _;
///
/// let service = apprunner::http::AccessLog::new()
///     .layer(tower::service_fn(|_request: http::Request<()>| async {
///         Ok::<_, std::convert::Infallible>(http::Response::new(()))
///     }));
/// # let _ = service;
/// ```
#[derive(Clone, Debug)]
pub struct AccessLogService<S> {
    inner: S,
    log: AccessLog,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for AccessLogService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = AccessLogFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let seen = Seen {
            started: Instant::now(),
            method: request.method().clone(),
            route: request.extensions().get::<MatchedPath>().cloned(),
            uri: request.uri().clone(),
        };
        AccessLogFuture {
            future: self.inner.call(request),
            seen: Some(seen),
            log: self.log,
        }
    }
}

/// What the line needs from the request.
#[derive(Debug)]
struct Seen {
    started: Instant,
    method: Method,
    route: Option<MatchedPath>,
    uri: Uri,
}

pin_project! {
    /// The future of [`AccessLogService`]: the inner response, unchanged, logged when it is
    /// ready.
    #[derive(Debug)]
    pub struct AccessLogFuture<F> {
        #[pin]
        future: F,
        seen: Option<Seen>,
        log: AccessLog,
    }
}

impl<F, B, E> Future for AccessLogFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.future.poll(cx));
        if let (Ok(response), Some(seen)) = (&result, this.seen.take()) {
            let elapsed = seen.started.elapsed();
            if let Some(verdict) = this.log.verdict(response.status(), elapsed) {
                write_line(verdict, &seen, response.status(), elapsed);
            }
        }
        Poll::Ready(result)
    }
}

fn write_line(verdict: Verdict, seen: &Seen, status: StatusCode, elapsed: Duration) {
    let method = seen.method.as_str();
    let route = seen.route.as_ref().map(MatchedPath::as_str);
    // The path only when no route matched: the template is what groups requests.
    let path = route.is_none().then(|| seen.uri.path());
    let status = status.as_u16();
    let duration_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
    // `tracing` needs each line's level and message at compile time: one call per verdict.
    macro_rules! line {
        ($level:ident, $message:literal) => {
            tracing::event!(
                target: ACCESS_LOG_TARGET,
                tracing::Level::$level,
                http.request.method = method,
                http.route = route,
                url.path = path,
                http.response.status_code = status,
                duration_ms,
                $message
            )
        };
    }
    match verdict {
        Verdict::Failed => line!(ERROR, "request failed"),
        Verdict::Slow => line!(WARN, "slow request"),
        Verdict::Rejected => line!(INFO, "request rejected"),
        Verdict::Served => line!(INFO, "request served"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |key| {
            pairs
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn defaults_log_problems_only() {
        let log = AccessLog::from_lookup(lookup(&[])).unwrap();
        assert_eq!(log, AccessLog::new());
        let fast = Duration::from_millis(3);
        let slow = Duration::from_millis(1500);
        assert_eq!(log.verdict(StatusCode::OK, fast), None);
        assert_eq!(log.verdict(StatusCode::NOT_FOUND, fast), None);
        assert_eq!(log.verdict(StatusCode::UNAUTHORIZED, fast), None);
        assert_eq!(
            log.verdict(StatusCode::SERVICE_UNAVAILABLE, fast),
            Some(Verdict::Failed)
        );
        assert_eq!(
            log.verdict(StatusCode::INTERNAL_SERVER_ERROR, slow),
            Some(Verdict::Failed)
        );
        assert_eq!(log.verdict(StatusCode::OK, slow), Some(Verdict::Slow));
        assert_eq!(
            log.verdict(StatusCode::UNPROCESSABLE_ENTITY, fast),
            Some(Verdict::Rejected)
        );
        assert_eq!(
            log.verdict(StatusCode::PAYLOAD_TOO_LARGE, fast),
            Some(Verdict::Rejected)
        );
    }

    #[test]
    fn all_and_off_come_from_the_environment() {
        let all = AccessLog::from_lookup(lookup(&[("APPRUNNER_ACCESS_LOG", " ALL ")])).unwrap();
        assert_eq!(
            all.verdict(StatusCode::OK, Duration::ZERO),
            Some(Verdict::Served)
        );
        let off = AccessLog::from_lookup(lookup(&[("APPRUNNER_ACCESS_LOG", "off")])).unwrap();
        assert!(off.is_off());
        assert_eq!(
            off.verdict(StatusCode::INTERNAL_SERVER_ERROR, Duration::ZERO),
            None
        );
    }

    #[test]
    fn slow_threshold_comes_from_the_environment() {
        let log = AccessLog::from_lookup(lookup(&[("APPRUNNER_SLOW_REQUEST_MS", "250")])).unwrap();
        assert_eq!(log.slow(), Some(Duration::from_millis(250)));
        let never = AccessLog::from_lookup(lookup(&[("APPRUNNER_SLOW_REQUEST_MS", "0")])).unwrap();
        assert_eq!(
            never.verdict(StatusCode::OK, Duration::from_secs(100)),
            None
        );
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err =
            AccessLog::from_lookup(lookup(&[("APPRUNNER_ACCESS_LOG", "verbose")])).unwrap_err();
        assert!(err.to_string().contains("APPRUNNER_ACCESS_LOG"), "{err}");
        assert!(err.to_string().contains("verbose"), "{err}");
        let err =
            AccessLog::from_lookup(lookup(&[("APPRUNNER_SLOW_REQUEST_MS", "1s")])).unwrap_err();
        assert!(
            err.to_string().contains("APPRUNNER_SLOW_REQUEST_MS"),
            "{err}"
        );
    }
}
