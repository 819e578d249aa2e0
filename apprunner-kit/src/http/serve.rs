//! The server runner: `$HOST:$PORT` (`0.0.0.0:8080` by default), HTTP/1.1 + h2c, graceful
//! shutdown on SIGTERM / SIGINT.

use std::{
    future::Future,
    io,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use axum::{Router, extract::ConnectInfo, extract::DefaultBodyLimit};
use hyper::{Request, body::Incoming};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto::Builder,
};
use tokio::{net::TcpListener, net::TcpStream, sync::watch, task::JoinSet};
use tower::{ServiceBuilder, ServiceExt as _};

use super::{
    access_log::AccessLog, error::HttpError, health::HealthRoute, layer::TraceLayer,
    limits::LimitsLayer,
};

const TARGET: &str = "apprunner::http";

/// Serves `router` the App Runner way, configured from the environment: see [`Server`].
///
/// Equivalent to `Server::from_env()?.serve(router).await`. Returns `Ok(())` after a SIGTERM or
/// SIGINT once in-flight requests have finished (or the drain timeout has passed); then shut
/// telemetry down to flush the last spans.
///
/// ```no_run
/// use axum::{Router, routing::get};
///
/// #[tokio::main]
/// async fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let telemetry = apprunner::telemetry::init()?;
///     let served = apprunner::serve(Router::new().route("/", get(|| async { "hello" }))).await;
///     telemetry.shutdown().await?;
///     Ok(served?)
/// }
/// ```
pub async fn serve(router: Router) -> Result<(), HttpError> {
    Server::from_env()?.serve(router).await
}

/// The server runner, with defaults fit for App Runner.
///
/// | setting | default |
/// |---|---|
/// | address | `$HOST:$PORT`; `HOST` defaults to `0.0.0.0` (every interface, as App Runner and ECS need), `PORT` to 8080 |
/// | protocols | HTTP/1.1 and h2c (HTTP/2 with prior knowledge, no TLS) |
/// | [`trace_layer`](Self::trace_layer) | [`TraceLayer::new()`], applied with `Router::layer` |
/// | [`access_log`](Self::access_log) | [`AccessLog::from_env`]: a line for 5xx, slow requests and rejected input, not for every request |
/// | [`request_timeout`](Self::request_timeout) | [`Server::DEFAULT_REQUEST_TIMEOUT`] → `504` |
/// | [`body_limit`](Self::body_limit) | [`Server::DEFAULT_BODY_LIMIT`] → `413` |
/// | [`drain_timeout`](Self::drain_timeout) | [`Server::DEFAULT_DRAIN_TIMEOUT`] |
/// | [`health_route`](Self::health_route) | none |
/// | [`untraced_routes`](Self::untraced_routes) | none |
///
/// ```no_run
/// use std::time::Duration;
/// use apprunner::http::{HealthRoute, Server, TraceLayer};
/// use axum::{Router, routing::get};
///
/// # async fn run() -> Result<(), apprunner::http::HttpError> {
/// let app = Router::new().route("/", get(|| async { "hello" }));
/// Server::from_env()?
///     .request_timeout(Duration::from_secs(30))
///     .body_limit(10 * 1024 * 1024)
///     .drain_timeout(Duration::from_secs(10))
///     .trace_layer(TraceLayer::new().record_query(true))
///     .health_route(HealthRoute::new())
///     .serve(app)
///     .await
/// # }
/// ```
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    listener: Option<TcpListener>,
    trace: Option<TraceLayer>,
    access_log: AccessLog,
    request_timeout: Option<Duration>,
    body_limit: Option<usize>,
    drain_timeout: Duration,
    health: Option<HealthRoute>,
    untraced: Option<Router>,
}

impl Server {
    /// The port listened on when `PORT` is not set: App Runner's default port.
    pub const DEFAULT_PORT: u16 = 8080;
    /// The address listened on when `HOST` is not set: every interface (`0.0.0.0`), which App
    /// Runner's and ECS's front ends need. Set `HOST=127.0.0.1` to accept connections from this
    /// machine only (local runs, tests).
    pub const DEFAULT_HOST: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    /// The default request timeout: 60 s, well below App Runner's 120 s limit, so the caller
    /// gets the kit's `504` and the span records it, rather than the front end's error.
    pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
    /// The default request body limit: 2 MiB.
    pub const DEFAULT_BODY_LIMIT: usize = 2 * 1024 * 1024;
    /// The default time in-flight requests get to finish after SIGTERM: 20 s, under the 30 s
    /// that ECS (and so App Runner) waits before sending SIGKILL.
    pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

    /// A server configured from the process environment: `HOST` (default `0.0.0.0`), `PORT`
    /// (default 8080), and the access log's `APPRUNNER_ACCESS_LOG` and
    /// `APPRUNNER_SLOW_REQUEST_MS` (see [`AccessLog`]).
    ///
    /// ```
    /// let server = apprunner::http::Server::from_env().expect("PORT is a port number");
    /// # let _ = server;
    /// ```
    pub fn from_env() -> Result<Self, HttpError> {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    /// A server configured from `lookup` instead of the process environment (for tests).
    ///
    /// ```
    /// let server = apprunner::http::Server::from_lookup(|key| {
    ///     (key == "PORT").then(|| "3000".to_owned())
    /// })
    /// .unwrap();
    /// # let _ = server;
    /// ```
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, HttpError> {
        let port = match lookup("PORT") {
            Some(value) if !value.trim().is_empty() => value
                .trim()
                .parse::<u16>()
                .map_err(|_| HttpError::InvalidPort { value })?,
            _ => Self::DEFAULT_PORT,
        };
        let host = match lookup("HOST") {
            Some(value) if !value.trim().is_empty() => parse_host(&value)?,
            _ => Self::DEFAULT_HOST,
        };
        Ok(Self {
            addr: SocketAddr::from((host, port)),
            listener: None,
            trace: Some(TraceLayer::new()),
            access_log: AccessLog::from_lookup(&lookup)?,
            request_timeout: Some(Self::DEFAULT_REQUEST_TIMEOUT),
            body_limit: Some(Self::DEFAULT_BODY_LIMIT),
            drain_timeout: Self::DEFAULT_DRAIN_TIMEOUT,
            health: None,
            untraced: None,
        })
    }

    /// Listens on `port`, on the configured host (`HOST`, else `0.0.0.0`).
    ///
    /// ```
    /// let server = apprunner::http::Server::from_env().unwrap().port(3000);
    /// # let _ = server;
    /// ```
    pub fn port(mut self, port: u16) -> Self {
        self.addr.set_port(port);
        self
    }

    /// Listens on `host` (an IP address of this machine), on the configured port.
    ///
    /// ```
    /// use std::net::Ipv4Addr;
    ///
    /// let local_only = apprunner::http::Server::from_env().unwrap().host(Ipv4Addr::LOCALHOST.into());
    /// # let _ = local_only;
    /// ```
    pub fn host(mut self, host: IpAddr) -> Self {
        self.addr.set_ip(host);
        self
    }

    /// The address the server will listen on (unless given a [`listener`](Self::listener)).
    ///
    /// ```
    /// let server = apprunner::http::Server::from_lookup(|key| match key {
    ///     "HOST" => Some("127.0.0.1".to_owned()),
    ///     "PORT" => Some("3000".to_owned()),
    ///     _ => None,
    /// })
    /// .unwrap();
    /// assert_eq!(server.local_addr(), ([127, 0, 0, 1], 3000).into());
    /// ```
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Listens on `addr`.
    ///
    /// ```
    /// let server = apprunner::http::Server::from_env().unwrap().addr(([127, 0, 0, 1], 3000).into());
    /// # let _ = server;
    /// ```
    pub fn addr(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// Serves on a listener you bound yourself (port 0 in tests, socket activation, ...)
    /// instead of binding the configured address.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    /// let server = apprunner::http::Server::from_env().unwrap().listener(listener);
    /// # let _ = server;
    /// # }
    /// ```
    pub fn listener(mut self, listener: TcpListener) -> Self {
        self.listener = Some(listener);
        self
    }

    /// The [`TraceLayer`] applied to every route; `None` when the router already carries one.
    ///
    /// ```
    /// use apprunner::http::{Server, TraceLayer};
    ///
    /// let server = Server::from_env().unwrap().trace_layer(TraceLayer::new().record_query(true));
    /// let untraced = Server::from_env().unwrap().trace_layer(None);
    /// # let _ = (server, untraced);
    /// ```
    pub fn trace_layer(mut self, layer: impl Into<Option<TraceLayer>>) -> Self {
        self.trace = layer.into();
        self
    }

    /// Which requests get a log line (see [`AccessLog`]); replaces what `APPRUNNER_ACCESS_LOG`
    /// and `APPRUNNER_SLOW_REQUEST_MS` set.
    ///
    /// ```
    /// use apprunner::http::{AccessLog, AccessLogMode, Server};
    ///
    /// let server = Server::from_env().unwrap().access_log(AccessLog::new().mode(AccessLogMode::All));
    /// # let _ = server;
    /// ```
    pub fn access_log(mut self, access_log: AccessLog) -> Self {
        self.access_log = access_log;
        self
    }

    /// How long a handler may take before the request is answered `504` with a JSON body
    /// (`{"message": "request timed out after … ms"}`) and its span marked as an error; `None`
    /// for no limit. The time counts until the response head, not while the body streams.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let server = apprunner::http::Server::from_env().unwrap().request_timeout(Duration::from_secs(30));
    /// # let _ = server;
    /// ```
    pub fn request_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.request_timeout = timeout.into();
        self
    }

    /// The largest request body accepted, in bytes; `None` for no server-wide limit (axum's
    /// extractors then keep their own 2 MB default).
    ///
    /// A request declaring a larger `Content-Length` is answered `413` before the handler runs;
    /// a body without one is cut off at the limit, so axum's body extractors answer `413`. This
    /// limit replaces axum's `DefaultBodyLimit`.
    ///
    /// ```
    /// let server = apprunner::http::Server::from_env().unwrap().body_limit(16 * 1024 * 1024);
    /// # let _ = server;
    /// ```
    pub fn body_limit(mut self, bytes: impl Into<Option<usize>>) -> Self {
        self.body_limit = bytes.into();
        self
    }

    /// How long in-flight requests get to finish after SIGTERM / SIGINT before their
    /// connections are closed.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let server = apprunner::http::Server::from_env().unwrap().drain_timeout(Duration::from_secs(5));
    /// # let _ = server;
    /// ```
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }

    /// Serves `health` next to the router, outside the trace layer and the request timeout, so
    /// App Runner's health checks make no spans. Panics in [`serve`](Self::serve) if the router
    /// already has a route at the same path.
    ///
    /// ```
    /// use apprunner::http::{HealthRoute, Server};
    ///
    /// let server = Server::from_env().unwrap().health_route(HealthRoute::new());
    /// # let _ = server;
    /// ```
    pub fn health_route(mut self, health: HealthRoute) -> Self {
        self.health = Some(health);
        self
    }

    /// Serves `routes` next to the router, outside the trace layer, the access log and the
    /// limits, like the [health route](Self::health_route): for routes that should make no
    /// spans, such as static API documentation. Calling it again merges more routes. Panics in
    /// [`serve`](Self::serve) if a path is also served by the router.
    ///
    /// ```
    /// use apprunner::http::Server;
    /// use axum::{Router, routing::get};
    ///
    /// let docs = Router::new().route("/docs", get(|| async { "the API, explained" }));
    /// let server = Server::from_env().unwrap().untraced_routes(docs);
    /// # let _ = server;
    /// ```
    pub fn untraced_routes(mut self, routes: Router) -> Self {
        self.untraced = Some(match self.untraced.take() {
            Some(existing) => existing.merge(routes),
            None => routes,
        });
        self
    }

    /// Serves `router` until SIGTERM or SIGINT, then drains: see [`serve_with_shutdown`](Self::serve_with_shutdown).
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), apprunner::http::HttpError> {
    /// let app = axum::Router::new();
    /// apprunner::http::Server::from_env()?.serve(app).await
    /// # }
    /// ```
    pub async fn serve(self, router: Router) -> Result<(), HttpError> {
        let signal = shutdown_signal()?;
        self.serve_with_shutdown(router, signal).await
    }

    /// Serves `router` until `signal` completes, then stops accepting connections, lets
    /// in-flight requests finish within the [drain timeout](Self::drain_timeout), closes the
    /// connections left and returns `Ok(())`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    /// let server = apprunner::http::Server::from_env().unwrap().listener(listener);
    /// // Stops at once: the signal is already complete.
    /// server.serve_with_shutdown(axum::Router::new(), async {}).await.unwrap();
    /// # }
    /// ```
    pub async fn serve_with_shutdown(
        self,
        router: Router,
        signal: impl Future<Output = ()> + Send,
    ) -> Result<(), HttpError> {
        let app = self.app(router);
        let listener = match self.listener {
            Some(listener) => listener,
            None => TcpListener::bind(self.addr)
                .await
                .map_err(|source| HttpError::Bind {
                    addr: self.addr,
                    source,
                })?,
        };
        let local_addr = listener.local_addr().unwrap_or(self.addr);
        // How long the start took (secrets, telemetry, database, migrations), where `/proc`
        // tells: a slow start (an Aurora cluster resuming, a cold image) shows in the logs.
        match process_age() {
            Some(age) => tracing::info!(
                target: TARGET,
                address = %local_addr,
                startup_ms = u64::try_from(age.as_millis()).unwrap_or(u64::MAX),
                "listening"
            ),
            None => tracing::info!(target: TARGET, address = %local_addr, "listening"),
        }

        let mut builder = Builder::new(TokioExecutor::new());
        builder.http1().timer(TokioTimer::new());
        builder.http2().timer(TokioTimer::new());
        let builder = Arc::new(builder);
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut connections = JoinSet::new();

        tokio::pin!(signal);
        loop {
            tokio::select! {
                biased;
                () = &mut signal => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        connections.spawn(serve_connection(
                            Arc::clone(&builder),
                            stream,
                            peer,
                            app.clone(),
                            stop_rx.clone(),
                        ));
                    }
                    Err(error) => accept_failed(error).await,
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }

        drop(listener);
        let _ = stop_tx.send(true);
        tracing::info!(
            target: TARGET,
            connections = connections.len(),
            drain_timeout_ms = self.drain_timeout.as_millis() as u64,
            "shutting down: no new connections, draining in-flight requests"
        );
        let drained = tokio::time::timeout(self.drain_timeout, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                target: TARGET,
                connections = connections.len(),
                "drain timeout elapsed: closing the connections still open"
            );
            connections.shutdown().await;
        }
        tracing::info!(target: TARGET, "server stopped");
        Ok(())
    }

    /// The router with the kit's layers, applied with `Router::layer` so they see `MatchedPath`.
    ///
    /// They are applied in one `Router::layer` call: every call boxes each route once more,
    /// which costs an allocation and a clone of the boxed service per request.
    fn app(&self, router: Router) -> Router {
        let mut app = router;
        let limits =
            (self.body_limit.is_some() || self.request_timeout.is_some()).then_some(LimitsLayer {
                request_timeout: self.request_timeout,
                body_limit: self.body_limit,
            });
        // Our limit replaces axum's default, which would otherwise cap extractors at 2 MB.
        let default_limit_off = self.body_limit.map(|_| DefaultBodyLimit::disable());
        // Inside the trace layer, so its lines carry the trace id; outside the limits, so it
        // sees their 413 and 504.
        let access_log = (!self.access_log.is_off()).then_some(self.access_log);
        let inner = ServiceBuilder::new()
            .option_layer(access_log)
            .option_layer(limits)
            .option_layer(default_limit_off);
        match self.trace {
            Some(trace) => app = app.layer(ServiceBuilder::new().layer(trace).layer(inner)),
            None if limits.is_some() || access_log.is_some() => app = app.layer(inner),
            None => {}
        }
        if let Some(health) = self.health.clone() {
            app = app.merge(health.into_router());
        }
        if let Some(untraced) = self.untraced.clone() {
            app = app.merge(untraced);
        }
        // Turns every handler into its layered route once, as `axum::serve` does: a router
        // without state called as a service would redo that (a fresh stack of layers, boxed)
        // for every request.
        app.with_state(())
    }
}

/// `HOST`: an IP address (IPv6 with or without brackets), or `localhost` for `127.0.0.1`.
fn parse_host(value: &str) -> Result<IpAddr, HttpError> {
    let trimmed = value.trim();
    if trimmed.eq_ignore_ascii_case("localhost") {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    let bare = trimmed
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(trimmed);
    bare.parse::<IpAddr>().map_err(|_| HttpError::InvalidHost {
        value: value.to_owned(),
    })
}

/// Serves one connection until it closes, or until shutdown asks it to finish what it is doing.
async fn serve_connection(
    builder: Arc<Builder<TokioExecutor>>,
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    mut stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        app.clone().oneshot(request)
    });
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => Some(result),
        _ = stop.wait_for(|stop| *stop) => None,
    };
    let result = match result {
        Some(result) => result,
        None => {
            // HTTP/1: close after the response in flight; HTTP/2: GOAWAY, finish open streams.
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = result {
        tracing::debug!(target: TARGET, %peer, %error, "connection ended with an error");
    }
}

/// How long ago this process started, read from `/proc` (`None` where there is none).
fn process_age() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let uptime = std::fs::read_to_string("/proc/uptime").ok()?;
    process_age_from(&stat, &uptime)
}

/// [`process_age`] from the text of `/proc/self/stat` and `/proc/uptime`.
fn process_age_from(stat: &str, uptime: &str) -> Option<Duration> {
    // `starttime` is field 22; fields are counted after the command name, which may hold
    // spaces and parentheses. It is in clock ticks since boot: USER_HZ, 100 on Linux.
    let (_, fields) = stat.rsplit_once(')')?;
    let start_ticks: u64 = fields.split_whitespace().nth(19)?.parse().ok()?;
    let up: f64 = uptime.split_whitespace().next()?.parse().ok()?;
    Duration::try_from_secs_f64(up)
        .ok()?
        .checked_sub(Duration::from_millis(start_ticks.checked_mul(10)?))
}

async fn accept_failed(error: io::Error) {
    if matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    // Out of file descriptors, most likely: wait for connections to close.
    tracing::error!(target: TARGET, %error, "cannot accept a connection; retrying in 100 ms");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Completes on SIGTERM (what App Runner and ECS send) or SIGINT (Ctrl-C).
fn shutdown_signal() -> Result<impl Future<Output = ()> + Send, HttpError> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate()).map_err(HttpError::Signal)?;
        let mut interrupt = signal(SignalKind::interrupt()).map_err(HttpError::Signal)?;
        Ok(async move {
            let name = tokio::select! {
                _ = terminate.recv() => "SIGTERM",
                _ = interrupt.recv() => "SIGINT",
            };
            tracing::info!(target: TARGET, signal = name, "shutdown signal received");
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!(target: TARGET, signal = "Ctrl-C", "shutdown signal received");
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(port: Option<&str>) -> impl Fn(&str) -> Option<String> {
        let port = port.map(str::to_owned);
        move |key| (key == "PORT").then(|| port.clone()).flatten()
    }

    fn host(host: &'static str) -> impl Fn(&str) -> Option<String> {
        move |key| (key == "HOST").then(|| host.to_owned())
    }

    #[test]
    fn host_defaults_to_every_interface() {
        let server = Server::from_lookup(host(" ")).unwrap();
        assert_eq!(server.addr, SocketAddr::from(([0, 0, 0, 0], 8080)));
    }

    #[test]
    fn host_comes_from_the_environment() {
        let server = Server::from_lookup(host("127.0.0.1")).unwrap();
        assert_eq!(server.addr, SocketAddr::from(([127, 0, 0, 1], 8080)));
        let server = Server::from_lookup(host("localhost")).unwrap();
        assert_eq!(server.addr.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
        let server = Server::from_lookup(host("[::1]")).unwrap();
        assert_eq!(server.addr.ip(), "::1".parse::<IpAddr>().unwrap());
        let server = Server::from_lookup(host("::")).unwrap().port(3000);
        assert_eq!(server.addr, "[::]:3000".parse().unwrap());
    }

    #[test]
    fn invalid_host_names_the_variable_and_the_value() {
        let err = Server::from_lookup(host("my-laptop")).unwrap_err();
        assert!(matches!(&err, HttpError::InvalidHost { value } if value == "my-laptop"));
        let text = err.to_string();
        assert!(
            text.contains("HOST") && text.contains("my-laptop"),
            "{text}"
        );
    }

    #[test]
    fn port_defaults_to_8080() {
        let server = Server::from_lookup(lookup(None)).unwrap();
        assert_eq!(server.addr, SocketAddr::from(([0, 0, 0, 0], 8080)));
        let server = Server::from_lookup(lookup(Some(" "))).unwrap();
        assert_eq!(server.addr.port(), 8080);
    }

    #[test]
    fn port_comes_from_the_environment() {
        let server = Server::from_lookup(lookup(Some("3000"))).unwrap();
        assert_eq!(server.addr, SocketAddr::from(([0, 0, 0, 0], 3000)));
    }

    #[test]
    fn process_age_reads_the_start_time_after_the_command_name() {
        // pid, "(comm)", then fields 3 to 22; starttime (field 22) is 12345 ticks.
        let fields: Vec<String> = (3..=21).map(|n| n.to_string()).collect();
        let stat = format!("4242 (a) b (c) {} 12345 23 24\n", fields.join(" "));
        assert_eq!(
            process_age_from(&stat, "130.00 250.10\n"),
            Some(Duration::from_millis(6550))
        );
        assert_eq!(
            process_age_from(&stat, "100.00 1.0\n"),
            None,
            "uptime before start"
        );
        assert_eq!(process_age_from("4242 (a) R 1", "130.00 1.0"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_has_an_age() {
        let age = process_age().expect("/proc tells the start time");
        assert!(age < Duration::from_secs(24 * 3600), "{age:?}");
    }

    #[test]
    fn invalid_port_names_the_value() {
        let err = Server::from_lookup(lookup(Some("70000"))).unwrap_err();
        assert!(matches!(&err, HttpError::InvalidPort { value } if value == "70000"));
        assert!(err.to_string().contains("70000"), "{err}");
    }
}
