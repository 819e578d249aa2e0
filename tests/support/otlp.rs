//! A real OTLP trace receiver: gRPC (tonic + opentelemetry-proto) and http/protobuf (axum + prost).
//!
//! The servers run on a dedicated OS thread with its own current-thread tokio runtime, so they keep
//! answering while the test's runtime is blocked (for example inside a blocking
//! `SdkTracerProvider::shutdown()` on a current-thread `#[tokio::test]`).

use std::collections::BTreeMap;
use std::fmt;
use std::future::IntoFuture as _;
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode as HttpStatus, header};
use axum::response::{IntoResponse, Response};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1 as proto;
use prost::Message as _;

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
    /// Accept every export, decode it field by field and count its spans
    /// ([`OtlpReceiver::span_count`]), but keep neither the spans nor the calls and build no
    /// message ([`count_spans`](crate::count_spans)): about the load a collector that forwards
    /// spans puts on the machine, for benchmarks that run the receiver beside the code they
    /// measure. Chosen when the receiver starts; [`OtlpReceiver::set_behavior`] cannot switch
    /// to or from it.
    Count,
}

/// The OTLP transport an export call arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// OTLP/gRPC (`TraceService/Export`).
    Grpc,
    /// OTLP/HTTP with a protobuf body (`POST /v1/traces`).
    HttpProtobuf,
}

/// One export call as the receiver saw it (recorded whatever the [`ReceiverBehavior`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ExportRequestInfo {
    /// Transport the call used.
    pub protocol: OtlpProtocol,
    /// Request path (`/opentelemetry.proto.collector.trace.v1.TraceService/Export` or `/v1/traces`).
    pub path: String,
    /// Request headers (gRPC metadata), names lowercase, repeated values joined with `", "`.
    pub headers: BTreeMap<String, String>,
    /// Number of spans in the request.
    pub span_count: usize,
}

impl ExportRequestInfo {
    /// A header value by (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

/// An OTLP attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    /// `string_value`.
    Str(String),
    /// `bool_value`.
    Bool(bool),
    /// `int_value`.
    I64(i64),
    /// `double_value`.
    F64(f64),
    /// `bytes_value`.
    Bytes(Vec<u8>),
    /// `array_value`.
    Array(Vec<AttrValue>),
    /// `kvlist_value`.
    Map(BTreeMap<String, AttrValue>),
    /// No value set.
    Empty,
}

impl AttrValue {
    /// The string, if this is a string value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(s) => Some(s),
            _ => None,
        }
    }
    /// The integer, if this is an integer value.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Self::I64(v) => Some(*v),
            _ => None,
        }
    }
    /// The float, if this is a double value.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Self::F64(v) => Some(*v),
            _ => None,
        }
    }
    /// The boolean, if this is a bool value.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Self::Bool(v) => Some(*v),
            _ => None,
        }
    }
}

impl fmt::Display for AttrValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Str(s) => write!(f, "{s:?}"),
            Self::Bool(v) => write!(f, "{v}"),
            Self::I64(v) => write!(f, "{v}"),
            Self::F64(v) => write!(f, "{v}"),
            Self::Bytes(v) => write!(f, "0x{}", hex(v)),
            Self::Array(v) => f
                .debug_list()
                .entries(v.iter().map(ToString::to_string))
                .finish(),
            Self::Map(v) => f
                .debug_map()
                .entries(v.iter().map(|(k, v)| (k, v.to_string())))
                .finish(),
            Self::Empty => f.write_str("<empty>"),
        }
    }
}

/// OTLP span kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    /// `SPAN_KIND_UNSPECIFIED` (or an unknown value).
    Unspecified,
    /// `SPAN_KIND_INTERNAL`.
    Internal,
    /// `SPAN_KIND_SERVER`.
    Server,
    /// `SPAN_KIND_CLIENT`.
    Client,
    /// `SPAN_KIND_PRODUCER`.
    Producer,
    /// `SPAN_KIND_CONSUMER`.
    Consumer,
}

/// OTLP status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusCode {
    /// `STATUS_CODE_UNSET` (also used when the span has no status).
    Unset,
    /// `STATUS_CODE_OK`.
    Ok,
    /// `STATUS_CODE_ERROR`.
    Error,
}

/// A span's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpanStatus {
    /// Status code.
    pub code: StatusCode,
    /// Status message (empty when none).
    pub message: String,
}

/// A span event.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanEvent {
    /// Event name.
    pub name: String,
    /// Event time.
    pub time_unix_nano: u64,
    /// Event attributes.
    pub attributes: BTreeMap<String, AttrValue>,
}

impl SpanEvent {
    /// A string attribute of the event.
    pub fn attr_str(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).and_then(AttrValue::as_str)
    }
}

/// A span link.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanLink {
    /// Linked trace id, 32 lowercase hex digits.
    pub trace_id: String,
    /// Linked span id, 16 lowercase hex digits.
    pub span_id: String,
    /// Link attributes.
    pub attributes: BTreeMap<String, AttrValue>,
}

/// One span as it arrived at the receiver, with its resource and instrumentation scope.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanRecord {
    /// Trace id, 32 lowercase hex digits.
    pub trace_id: String,
    /// Span id, 16 lowercase hex digits.
    pub span_id: String,
    /// Parent span id (16 lowercase hex digits), `None` for a root span.
    pub parent_span_id: Option<String>,
    /// W3C trace state (empty when none).
    pub trace_state: String,
    /// Span name.
    pub name: String,
    /// Span kind.
    pub kind: SpanKind,
    /// Span attributes.
    pub attributes: BTreeMap<String, AttrValue>,
    /// Resource attributes of the batch the span came in.
    pub resource: BTreeMap<String, AttrValue>,
    /// Instrumentation scope name.
    pub scope_name: String,
    /// Instrumentation scope version (empty when none).
    pub scope_version: String,
    /// Span status.
    pub status: SpanStatus,
    /// Span events.
    pub events: Vec<SpanEvent>,
    /// Span links.
    pub links: Vec<SpanLink>,
    /// Start time.
    pub start_time_unix_nano: u64,
    /// End time.
    pub end_time_unix_nano: u64,
    /// Transport the span arrived on.
    pub protocol: OtlpProtocol,
}

impl SpanRecord {
    /// An attribute value.
    pub fn attr(&self, key: &str) -> Option<&AttrValue> {
        self.attributes.get(key)
    }
    /// A string attribute.
    pub fn attr_str(&self, key: &str) -> Option<&str> {
        self.attr(key).and_then(AttrValue::as_str)
    }
    /// An integer attribute.
    pub fn attr_i64(&self, key: &str) -> Option<i64> {
        self.attr(key).and_then(AttrValue::as_i64)
    }
    /// A boolean attribute.
    pub fn attr_bool(&self, key: &str) -> Option<bool> {
        self.attr(key).and_then(AttrValue::as_bool)
    }
    /// A double attribute.
    pub fn attr_f64(&self, key: &str) -> Option<f64> {
        self.attr(key).and_then(AttrValue::as_f64)
    }
    /// A resource attribute value.
    pub fn resource_attr(&self, key: &str) -> Option<&AttrValue> {
        self.resource.get(key)
    }
    /// A string resource attribute.
    pub fn resource_str(&self, key: &str) -> Option<&str> {
        self.resource_attr(key).and_then(AttrValue::as_str)
    }
    /// The first event with this name.
    pub fn event(&self, name: &str) -> Option<&SpanEvent> {
        self.events.iter().find(|e| e.name == name)
    }
    /// Whether the span has no parent.
    pub fn is_root(&self) -> bool {
        self.parent_span_id.is_none()
    }
    /// The trace id in X-Ray form: `1-xxxxxxxx-yyyyyyyyyyyyyyyyyyyyyyyy`.
    pub fn xray_trace_id(&self) -> String {
        let (time, rest) = self.trace_id.split_at(8.min(self.trace_id.len()));
        format!("1-{time}-{rest}")
    }
    /// A one-line summary used in panic messages.
    pub fn summary(&self) -> String {
        format!(
            "{:?} {:?} trace={} span={} parent={} status={:?} attrs={{{}}}",
            self.name,
            self.kind,
            self.trace_id,
            self.span_id,
            self.parent_span_id.as_deref().unwrap_or("-"),
            self.status.code,
            self.attributes
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", "),
        )
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
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for OtlpReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtlpReceiver")
            .field("grpc_addr", &self.grpc_addr)
            .field("http_addr", &self.http_addr)
            .field("behavior", &*lock(&self.state.behavior))
            .field("spans", &lock(&self.state.data).spans.len())
            .finish()
    }
}

impl OtlpReceiver {
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
        let grpc = bind_loopback();
        let http = bind_loopback();
        let grpc_addr = grpc
            .local_addr()
            .expect("local_addr of the OTLP/gRPC listener");
        let http_addr = http
            .local_addr()
            .expect("local_addr of the OTLP/HTTP listener");
        let state = Arc::new(State::new(behavior));
        let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel();
        let thread_state = Arc::clone(&state);
        let thread = std::thread::Builder::new()
            .name(format!("otlp-receiver-{}", grpc_addr.port()))
            .spawn(move || serve(grpc, http, thread_state, shutdown_rx))
            .expect("spawn the OTLP receiver thread");
        Self {
            state,
            grpc_addr,
            http_addr,
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        }
    }

    /// A loopback OTLP endpoint URL nobody listens on (connections are refused).
    pub fn unused_endpoint() -> String {
        format!("http://127.0.0.1:{}", crate::free_port())
    }

    /// The gRPC endpoint, e.g. `http://127.0.0.1:4317` (for `OTEL_EXPORTER_OTLP_ENDPOINT` with
    /// protocol `grpc`, or `SpanExporter::builder().with_tonic().with_endpoint(..)`).
    pub fn grpc_endpoint(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    /// The http/protobuf base endpoint, e.g. `http://127.0.0.1:4318` (for
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`, to which exporters append `/v1/traces`).
    pub fn http_endpoint(&self) -> String {
        format!("http://{}", self.http_addr)
    }

    /// The full http/protobuf traces URL, `<http_endpoint>/v1/traces` (for
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `with_http().with_endpoint(..)`, used as is).
    pub fn http_traces_url(&self) -> String {
        format!("http://{}/v1/traces", self.http_addr)
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

fn bind_loopback() -> StdTcpListener {
    let listener =
        StdTcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 for the OTLP receiver");
    listener
        .set_nonblocking(true)
        .expect("make the OTLP receiver listener non-blocking");
    listener
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[derive(Default)]
struct Data {
    spans: Vec<SpanRecord>,
    requests: Vec<ExportRequestInfo>,
}

struct State {
    behavior: Mutex<ReceiverBehavior>,
    /// Spans and calls accepted so far.
    counts: Arc<crate::ExportCounts>,
    data: Mutex<Data>,
    /// Signalled on every change (blocking waiters).
    arrived: Condvar,
    /// Bumped on every change (async waiters).
    changed: tokio::sync::watch::Sender<u64>,
}

enum Outcome {
    Accepted,
    Unavailable,
}

impl State {
    fn new(behavior: ReceiverBehavior) -> Self {
        Self {
            behavior: Mutex::new(behavior),
            counts: Arc::default(),
            data: Mutex::new(Data::default()),
            arrived: Condvar::new(),
            changed: tokio::sync::watch::Sender::new(0),
        }
    }

    fn count(&self, spans: usize) {
        use std::sync::atomic::Ordering::Relaxed;
        self.counts.spans.fetch_add(spans as u64, Relaxed);
        self.counts.exports.fetch_add(1, Relaxed);
    }

    fn notify(&self) {
        self.arrived.notify_all();
        self.changed.send_modify(|v| *v += 1);
    }

    /// Records the call, applies the behaviour, then records the spans if accepted.
    async fn handle(
        &self,
        protocol: OtlpProtocol,
        path: String,
        headers: &HeaderMap,
        request: ExportTraceServiceRequest,
    ) -> Outcome {
        let span_count = request
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        let behavior = *lock(&self.behavior);
        if behavior == ReceiverBehavior::Count {
            // Only http/protobuf calls get here: gRPC ones go to the counting service.
            self.count(span_count);
            return Outcome::Accepted;
        }
        let info = ExportRequestInfo {
            protocol,
            path,
            headers: header_map(headers),
            span_count,
        };
        lock(&self.data).requests.push(info);
        self.notify();
        match behavior {
            ReceiverBehavior::Accept | ReceiverBehavior::Count => {}
            ReceiverBehavior::Delay(d) => tokio::time::sleep(d).await,
            ReceiverBehavior::Unavailable => return Outcome::Unavailable,
        }
        let spans = convert(request, protocol);
        self.count(spans.len());
        lock(&self.data).spans.extend(spans);
        self.notify();
        Outcome::Accepted
    }
}

fn header_map(headers: &HeaderMap) -> BTreeMap<String, String> {
    let mut out = BTreeMap::<String, String>::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        out.entry(name.as_str().to_owned())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert(value);
    }
    out
}

const GRPC_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

struct GrpcService(Arc<State>);

#[tonic::async_trait]
impl TraceService for GrpcService {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let (metadata, _, message) = request.into_parts();
        let headers = metadata.into_headers();
        match self
            .0
            .handle(OtlpProtocol::Grpc, GRPC_PATH.to_owned(), &headers, message)
            .await
        {
            Outcome::Accepted => Ok(tonic::Response::new(ExportTraceServiceResponse {
                partial_success: None,
            })),
            Outcome::Unavailable => Err(tonic::Status::unavailable(
                "test receiver configured as unavailable",
            )),
        }
    }
}

async fn http_export(
    axum::extract::State(state): axum::extract::State<Arc<State>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/x-protobuf") {
        return (
            HttpStatus::UNSUPPORTED_MEDIA_TYPE,
            format!("test receiver only accepts application/x-protobuf, got {content_type:?}"),
        )
            .into_response();
    }
    let request = match ExportTraceServiceRequest::decode(body) {
        Ok(r) => r,
        Err(e) => {
            return (
                HttpStatus::BAD_REQUEST,
                format!("invalid protobuf body: {e}"),
            )
                .into_response();
        }
    };
    match state
        .handle(
            OtlpProtocol::HttpProtobuf,
            "/v1/traces".to_owned(),
            &headers,
            request,
        )
        .await
    {
        Outcome::Accepted => (
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            ExportTraceServiceResponse {
                partial_success: None,
            }
            .encode_to_vec(),
        )
            .into_response(),
        Outcome::Unavailable => (
            HttpStatus::SERVICE_UNAVAILABLE,
            "test receiver configured as unavailable",
        )
            .into_response(),
    }
}

/// The connections a gRPC receiver accepts on `listener`, set up as a collector's are: with
/// `TCP_NODELAY`, as the OpenTelemetry Collector (Go, whose sockets have it by default) and App
/// Runner's collector have them. Without it the receiver's small HTTP/2 frames (window updates,
/// the response) can wait for the exporter's delayed ACK: under load each export stalls, the
/// exporter's queue fills and it drops spans (48 % of them in a users API load run).
pub fn collector_incoming(
    listener: tokio::net::TcpListener,
) -> tonic::transport::server::TcpIncoming {
    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true))
}

fn serve(
    grpc: StdTcpListener,
    http: StdTcpListener,
    state: Arc<State>,
    shutdown: tokio::sync::oneshot::Receiver<()>,
) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build the OTLP receiver runtime");
    runtime.block_on(async move {
        let grpc = tokio::net::TcpListener::from_std(grpc).expect("register the gRPC listener");
        let http = tokio::net::TcpListener::from_std(http).expect("register the HTTP listener");
        let mut builder = tonic::transport::Server::builder();
        let grpc_router = if *lock(&state.behavior) == ReceiverBehavior::Count {
            builder.add_service(crate::CountingTraceService::new(Arc::clone(&state.counts)))
        } else {
            builder.add_service(TraceServiceServer::new(GrpcService(Arc::clone(&state))))
        };
        let grpc_server = grpc_router.serve_with_incoming(collector_incoming(grpc));
        let router = axum::Router::new()
            .route("/v1/traces", axum::routing::post(http_export))
            .with_state(state);
        let http_server = axum::serve(http, router).into_future();
        tokio::select! {
            r = grpc_server => r.expect("OTLP/gRPC receiver failed"),
            r = http_server => r.expect("OTLP/HTTP receiver failed"),
            _ = shutdown => {}
        }
    });
    // Dropping the runtime cancels every connection task.
    drop(runtime);
}

fn convert(request: ExportTraceServiceRequest, protocol: OtlpProtocol) -> Vec<SpanRecord> {
    let mut out = Vec::new();
    for rs in request.resource_spans {
        let resource = attrs(rs.resource.map(|r| r.attributes).unwrap_or_default());
        for ss in rs.scope_spans {
            let (scope_name, scope_version) =
                ss.scope.map(|s| (s.name, s.version)).unwrap_or_default();
            for span in ss.spans {
                out.push(span_record(
                    span,
                    &resource,
                    &scope_name,
                    &scope_version,
                    protocol,
                ));
            }
        }
    }
    out
}

fn span_record(
    span: proto::Span,
    resource: &BTreeMap<String, AttrValue>,
    scope_name: &str,
    scope_version: &str,
    protocol: OtlpProtocol,
) -> SpanRecord {
    let kind = match proto::span::SpanKind::try_from(span.kind) {
        Ok(proto::span::SpanKind::Internal) => SpanKind::Internal,
        Ok(proto::span::SpanKind::Server) => SpanKind::Server,
        Ok(proto::span::SpanKind::Client) => SpanKind::Client,
        Ok(proto::span::SpanKind::Producer) => SpanKind::Producer,
        Ok(proto::span::SpanKind::Consumer) => SpanKind::Consumer,
        Ok(proto::span::SpanKind::Unspecified) | Err(_) => SpanKind::Unspecified,
    };
    let status = span.status.unwrap_or_default();
    let code = match proto::status::StatusCode::try_from(status.code) {
        Ok(proto::status::StatusCode::Ok) => StatusCode::Ok,
        Ok(proto::status::StatusCode::Error) => StatusCode::Error,
        _ => StatusCode::Unset,
    };
    SpanRecord {
        trace_id: hex(&span.trace_id),
        span_id: hex(&span.span_id),
        parent_span_id: (!span.parent_span_id.is_empty()
            && span.parent_span_id.iter().any(|b| *b != 0))
        .then(|| hex(&span.parent_span_id)),
        trace_state: span.trace_state,
        name: span.name,
        kind,
        attributes: attrs(span.attributes),
        resource: resource.clone(),
        scope_name: scope_name.to_owned(),
        scope_version: scope_version.to_owned(),
        status: SpanStatus {
            code,
            message: status.message,
        },
        events: span
            .events
            .into_iter()
            .map(|e| SpanEvent {
                name: e.name,
                time_unix_nano: e.time_unix_nano,
                attributes: attrs(e.attributes),
            })
            .collect(),
        links: span
            .links
            .into_iter()
            .map(|l| SpanLink {
                trace_id: hex(&l.trace_id),
                span_id: hex(&l.span_id),
                attributes: attrs(l.attributes),
            })
            .collect(),
        start_time_unix_nano: span.start_time_unix_nano,
        end_time_unix_nano: span.end_time_unix_nano,
        protocol,
    }
}

fn attrs(kvs: Vec<KeyValue>) -> BTreeMap<String, AttrValue> {
    kvs.into_iter()
        .map(|kv| (kv.key, value(kv.value.and_then(|v| v.value))))
        .collect()
}

fn value(v: Option<any_value::Value>) -> AttrValue {
    match v {
        None => AttrValue::Empty,
        Some(any_value::Value::StringValue(s)) => AttrValue::Str(s),
        Some(any_value::Value::BoolValue(b)) => AttrValue::Bool(b),
        Some(any_value::Value::IntValue(i)) => AttrValue::I64(i),
        Some(any_value::Value::DoubleValue(d)) => AttrValue::F64(d),
        Some(any_value::Value::BytesValue(b)) => AttrValue::Bytes(b),
        Some(any_value::Value::ArrayValue(a)) => {
            AttrValue::Array(a.values.into_iter().map(|v| value(v.value)).collect())
        }
        Some(any_value::Value::KvlistValue(l)) => AttrValue::Map(attrs(l.values)),
        // Dictionary-encoded strings are only used by profiles; keep the index visible.
        Some(any_value::Value::StringValueStrindex(i)) => AttrValue::Str(format!("<strindex {i}>")),
    }
}

fn hex(bytes: &[u8]) -> String {
    use fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
