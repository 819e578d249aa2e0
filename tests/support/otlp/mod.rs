//! A real OTLP trace receiver: gRPC (tonic + opentelemetry-proto) and http/protobuf (axum + prost),
//! in plain text or over TLS (optionally mutual), accepting gzip-compressed exports.
//!
//! The servers run on a dedicated OS thread with its own current-thread tokio runtime, so they keep
//! answering while the test's runtime is blocked (for example inside a blocking
//! `SdkTracerProvider::shutdown()` on a current-thread `#[tokio::test]`).

mod records;
mod server;
mod tls;

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use records::{
    AttrValue, ExportRequestInfo, OtlpProtocol, SpanEvent, SpanKind, SpanLink, SpanRecord,
    SpanStatus, StatusCode,
};
pub use server::{CountingTraceService, ExportCounts, collector_incoming};
pub use tls::TestCa;

use server::{Port, ServeConfig, State, lock};
use tls::ServerTls;

/// How the receiver answers export calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReceiverBehavior {
    /// Accept every export and record its spans (the default).
    #[default]
    Accept,
    /// Wait this long before answering; spans are recorded only once the answer is sent
    /// (an exporter that gives up earlier cancels the call and nothing is recorded).
    Delay(Duration),
    /// Answer gRPC `UNAVAILABLE` / HTTP 503 and record no spans (the call is still listed in
    /// [`OtlpReceiver::export_requests`]).
    Unavailable,
    /// Answer the first `n` export calls (counted from start, or from
    /// [`OtlpReceiver::set_behavior`]) as [`Unavailable`](Self::Unavailable) does, then accept
    /// every later one: a collector that recovers, for exporters that retry.
    FailFirst(usize),
    /// Accept every export, decode it with prost into an `ExportTraceServiceRequest` and count
    /// its spans ([`OtlpReceiver::span_count`]), but keep neither the spans nor the calls
    /// (no conversion to [`SpanRecord`]s): for benchmarks that run the receiver beside the code
    /// they measure. Chosen when the receiver starts; [`OtlpReceiver::set_behavior`] cannot
    /// switch to or from it.
    Count,
}

/// How a receiver is started: behaviour, TLS, and when it starts listening.
///
/// ```no_run
/// use std::time::Duration;
/// use apprunner_kit_tests::{OtlpReceiver, ReceiverBehavior};
///
/// // Mutual TLS, refusing the first two exports, listening only after 3 s.
/// let receiver = OtlpReceiver::builder()
///     .behavior(ReceiverBehavior::FailFirst(2))
///     .mutual_tls()
///     .start_after(Duration::from_secs(3))
///     .start_blocking();
/// let ca = receiver.tls().unwrap();
/// # let _ = (ca.ca_cert_path(), receiver.grpc_endpoint());
/// ```
#[derive(Debug, Default)]
#[must_use = "a builder does nothing until started"]
pub struct OtlpReceiverBuilder {
    behavior: ReceiverBehavior,
    /// `Some(mutual)` for TLS.
    tls: Option<bool>,
    start_after: Option<Duration>,
}

impl OtlpReceiverBuilder {
    /// How export calls are answered (default [`ReceiverBehavior::Accept`]).
    pub fn behavior(mut self, behavior: ReceiverBehavior) -> Self {
        self.behavior = behavior;
        self
    }

    /// Serves both transports over TLS, with a server certificate for `localhost` and
    /// `127.0.0.1` signed by a new [`TestCa`] ([`OtlpReceiver::tls`]); endpoints are then
    /// `https://localhost:PORT`. Client certificates are not asked for.
    pub fn tls(mut self) -> Self {
        self.tls = Some(false);
        self
    }

    /// Like [`tls`](Self::tls), and requires a client certificate signed by the same CA
    /// ([`TestCa::client_cert_path`], [`TestCa::client_key_path`]): a connection without one
    /// fails its handshake.
    pub fn mutual_tls(mut self) -> Self {
        self.tls = Some(true);
        self
    }

    /// Reserves the ports at once (the endpoints are known) but listens only after `delay`:
    /// until then connections are refused, as with a collector that starts after the service.
    pub fn start_after(mut self, delay: Duration) -> Self {
        self.start_after = Some(delay);
        self
    }

    /// Starts the receiver (no runtime needed).
    pub fn start_blocking(self) -> OtlpReceiver {
        let (grpc, http) = match self.start_after {
            Some(_) => (Port::reserved(), Port::reserved()),
            None => (Port::listening(), Port::listening()),
        };
        let grpc_addr = grpc.local_addr();
        let http_addr = http.local_addr();
        let tls = self.tls.map(|mutual| ServerTls {
            ca: Arc::new(TestCa::generate()),
            mutual,
        });
        let ca = tls.as_ref().map(|t| Arc::clone(&t.ca));
        let state = Arc::new(State::new(self.behavior));
        let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel();
        let config = ServeConfig {
            grpc,
            http,
            state: Arc::clone(&state),
            tls,
            start_after: self.start_after,
        };
        let thread = std::thread::Builder::new()
            .name(format!("otlp-receiver-{}", grpc_addr.port()))
            .spawn(move || server::serve(config, shutdown_rx))
            .expect("spawn the OTLP receiver thread");
        OtlpReceiver {
            state,
            grpc_addr,
            http_addr,
            ca,
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        }
    }

    /// Starts the receiver. Async for API symmetry; it does not need the caller's runtime.
    pub async fn start(self) -> OtlpReceiver {
        self.start_blocking()
    }
}

/// A real OTLP trace receiver listening on loopback (gRPC and http/protobuf on two ports).
///
/// Dropping it stops the servers.
///
/// ```no_run
/// # async fn demo() {
/// use std::time::Duration;
/// let receiver = apprunner_kit_tests::OtlpReceiver::start().await;
/// // point an exporter at receiver.grpc_endpoint() ...
/// let spans = receiver.wait_for_spans(1, Duration::from_secs(10)).await;
/// assert_eq!(spans[0].name, "GET /users/{id}");
/// # }
/// ```
pub struct OtlpReceiver {
    state: Arc<State>,
    grpc_addr: SocketAddr,
    http_addr: SocketAddr,
    ca: Option<Arc<TestCa>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for OtlpReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtlpReceiver")
            .field("grpc_addr", &self.grpc_addr)
            .field("http_addr", &self.http_addr)
            .field("tls", &self.ca.is_some())
            .field("behavior", &*lock(&self.state.behavior))
            .field("spans", &lock(&self.state.data).spans.len())
            .finish()
    }
}

impl OtlpReceiver {
    /// A builder for receivers with TLS, a late start or another behaviour.
    pub fn builder() -> OtlpReceiverBuilder {
        OtlpReceiverBuilder::default()
    }

    /// Starts a receiver that accepts every export.
    ///
    /// Async for API symmetry; it does not need the caller's runtime (see [`Self::start_blocking`]).
    pub async fn start() -> Self {
        Self::start_blocking_with(ReceiverBehavior::Accept)
    }

    /// Starts a receiver with the given behaviour.
    pub async fn start_with(behavior: ReceiverBehavior) -> Self {
        Self::start_blocking_with(behavior)
    }

    /// Starts a receiver from synchronous code (no runtime needed).
    pub fn start_blocking() -> Self {
        Self::start_blocking_with(ReceiverBehavior::Accept)
    }

    /// Starts a receiver with the given behaviour from synchronous code.
    pub fn start_blocking_with(behavior: ReceiverBehavior) -> Self {
        Self::builder().behavior(behavior).start_blocking()
    }

    /// Starts a TLS receiver that accepts every export (see [`OtlpReceiverBuilder::tls`]).
    pub fn start_tls_blocking() -> Self {
        Self::builder().tls().start_blocking()
    }

    /// Starts a mutual-TLS receiver that accepts every export (see
    /// [`OtlpReceiverBuilder::mutual_tls`]).
    pub fn start_mutual_tls_blocking() -> Self {
        Self::builder().mutual_tls().start_blocking()
    }

    /// Starts a receiver that listens only after `delay` (see
    /// [`OtlpReceiverBuilder::start_after`]); its endpoints are known at once.
    pub fn start_late_blocking(delay: Duration) -> Self {
        Self::builder().start_after(delay).start_blocking()
    }

    /// The CA of a TLS receiver (its PEM files for the exporter), `None` in plain text.
    pub fn tls(&self) -> Option<&TestCa> {
        self.ca.as_deref()
    }

    /// The CA certificate's PEM file of a TLS receiver (`OTEL_EXPORTER_OTLP_CERTIFICATE`).
    ///
    /// # Panics
    ///
    /// When the receiver serves plain text.
    pub fn ca_cert_path(&self) -> PathBuf {
        self.tls()
            .expect("ca_cert_path of a plain-text receiver")
            .ca_cert_path()
    }

    /// A loopback OTLP endpoint URL nobody listens on (connections are refused).
    pub fn unused_endpoint() -> String {
        format!("http://127.0.0.1:{}", crate::free_port())
    }

    fn base(&self, addr: SocketAddr) -> String {
        match self.ca {
            None => format!("http://{addr}"),
            Some(_) => format!("https://localhost:{}", addr.port()),
        }
    }

    /// The gRPC endpoint, e.g. `http://127.0.0.1:4317`, or `https://localhost:4317` over TLS
    /// (for `OTEL_EXPORTER_OTLP_ENDPOINT` with protocol `grpc`, or
    /// `SpanExporter::builder().with_tonic().with_endpoint(..)`).
    pub fn grpc_endpoint(&self) -> String {
        self.base(self.grpc_addr)
    }

    /// The http/protobuf base endpoint, e.g. `http://127.0.0.1:4318`, or
    /// `https://localhost:4318` over TLS (for `OTEL_EXPORTER_OTLP_ENDPOINT`, to which exporters
    /// append `/v1/traces`).
    pub fn http_endpoint(&self) -> String {
        self.base(self.http_addr)
    }

    /// The full http/protobuf traces URL, `<http_endpoint>/v1/traces` (for
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `with_http().with_endpoint(..)`, used as is).
    pub fn http_traces_url(&self) -> String {
        format!("{}/v1/traces", self.http_endpoint())
    }

    /// The gRPC listener address.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// The HTTP listener address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Changes how later export calls are answered.
    ///
    /// # Panics
    ///
    /// When switching to or from [`ReceiverBehavior::Count`], which is chosen at start.
    pub fn set_behavior(&self, behavior: ReceiverBehavior) {
        let mut current = lock(&self.state.behavior);
        assert_eq!(
            (*current == ReceiverBehavior::Count),
            (behavior == ReceiverBehavior::Count),
            "ReceiverBehavior::Count is chosen when the receiver starts"
        );
        *current = behavior;
        self.state
            .fail_first_calls
            .store(0, std::sync::atomic::Ordering::SeqCst);
    }

    /// Every span received so far, in arrival order.
    pub fn spans(&self) -> Vec<SpanRecord> {
        lock(&self.state.data).spans.clone()
    }

    /// The spans received so far with this name.
    pub fn spans_named(&self, name: &str) -> Vec<SpanRecord> {
        lock(&self.state.data)
            .spans
            .iter()
            .filter(|s| s.name == name)
            .cloned()
            .collect()
    }

    /// Every export call received so far (accepted or not), in arrival order.
    pub fn export_requests(&self) -> Vec<ExportRequestInfo> {
        lock(&self.state.data).requests.clone()
    }

    /// How many spans were accepted so far, kept or only counted ([`ReceiverBehavior::Count`]);
    /// not reset by [`clear`](Self::clear).
    pub fn span_count(&self) -> u64 {
        self.state
            .counts
            .spans
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Forgets every span and export call received so far.
    pub fn clear(&self) {
        let mut data = lock(&self.state.data);
        data.spans.clear();
        data.requests.clear();
    }

    /// Waits until at least `n` spans arrived and returns all spans received (possibly more than
    /// `n`). Panics after `timeout`, listing what arrived.
    pub async fn wait_for_spans(&self, n: usize, timeout: Duration) -> Vec<SpanRecord> {
        self.try_wait_until(|spans| spans.len() >= n, timeout)
            .await
            .unwrap_or_else(|| self.timeout_panic(&format!("{n} span(s)"), timeout))
    }

    /// Waits until `predicate` holds for the spans received so far and returns them.
    /// Panics after `timeout`, listing what arrived.
    pub async fn wait_until(
        &self,
        predicate: impl FnMut(&[SpanRecord]) -> bool,
        timeout: Duration,
    ) -> Vec<SpanRecord> {
        self.try_wait_until(predicate, timeout)
            .await
            .unwrap_or_else(|| self.timeout_panic("the predicate to hold", timeout))
    }

    /// Like [`Self::wait_until`] but returns `None` on timeout instead of panicking.
    /// Needs a tokio runtime with the time driver (any `#[tokio::test]` has one).
    pub async fn try_wait_until(
        &self,
        mut predicate: impl FnMut(&[SpanRecord]) -> bool,
        timeout: Duration,
    ) -> Option<Vec<SpanRecord>> {
        let mut changes = self.state.changed.subscribe();
        let check = async {
            loop {
                {
                    let data = lock(&self.state.data);
                    if predicate(&data.spans) {
                        return data.spans.clone();
                    }
                }
                changes
                    .changed()
                    .await
                    .expect("the receiver state outlives its waiters");
            }
        };
        tokio::time::timeout(timeout, check).await.ok()
    }

    /// Blocking version of [`Self::wait_for_spans`] (for synchronous tests).
    pub fn wait_for_spans_blocking(&self, n: usize, timeout: Duration) -> Vec<SpanRecord> {
        self.wait_until_blocking(|spans| spans.len() >= n, timeout)
            .unwrap_or_else(|| self.timeout_panic(&format!("{n} span(s)"), timeout))
    }

    /// Blocking version of [`Self::try_wait_until`].
    pub fn wait_until_blocking(
        &self,
        mut predicate: impl FnMut(&[SpanRecord]) -> bool,
        timeout: Duration,
    ) -> Option<Vec<SpanRecord>> {
        let deadline = Instant::now() + timeout;
        let mut data = lock(&self.state.data);
        loop {
            if predicate(&data.spans) {
                return Some(data.spans.clone());
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            data = self
                .state
                .arrived
                .wait_timeout(data, left)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }

    fn timeout_panic(&self, what: &str, timeout: Duration) -> ! {
        let data = lock(&self.state.data);
        let spans: Vec<String> = data
            .spans
            .iter()
            .map(|s| format!("  {}", s.summary()))
            .collect();
        let requests: Vec<String> = data
            .requests
            .iter()
            .map(|r| format!("  {:?} {} ({} spans)", r.protocol, r.path, r.span_count))
            .collect();
        panic!(
            "OTLP receiver: timed out after {timeout:?} waiting for {what}; \
             {} span(s) arrived:\n{}\n{} export call(s):\n{}",
            spans.len(),
            spans.join("\n"),
            requests.len(),
            requests.join("\n"),
        );
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
