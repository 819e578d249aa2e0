//! The receiver's servers: shared state, the gRPC service, the http/protobuf handler, the
//! connection loop (plain or TLS) and the counting service of [`ReceiverBehavior::Count`].

use std::collections::BTreeMap;
use std::io::Read as _;
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode as HttpStatus, header};
use axum::response::{IntoResponse, Response};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message as _;
use tonic::codec::CompressionEncoding;

use super::ReceiverBehavior;
use super::records::{ExportRequestInfo, OtlpProtocol, SpanRecord, convert};
use super::tls::ServerTls;

/// What a counting receiver has seen ([`ReceiverBehavior::Count`], the `otlp-sink` binary).
#[derive(Debug, Default)]
pub struct ExportCounts {
    /// Spans in accepted exports.
    pub spans: AtomicU64,
    /// Accepted export calls.
    pub exports: AtomicU64,
}

impl ExportCounts {
    fn add(&self, spans: usize) {
        self.spans.fetch_add(spans as u64, Ordering::Relaxed);
        self.exports.fetch_add(1, Ordering::Relaxed);
    }
}

/// An OTLP/gRPC trace service that decodes every export with prost into an
/// `ExportTraceServiceRequest`, counts its spans into [`ExportCounts`] and keeps nothing:
/// [`ReceiverBehavior::Count`]'s gRPC side, and the `otlp-sink` binary's whole service.
///
/// An export that is not a valid request is refused by tonic's prost codec (`INTERNAL`).
#[derive(Debug, Clone)]
pub struct CountingTraceService(Arc<ExportCounts>);

impl CountingTraceService {
    /// A service adding to `counts`.
    pub fn new(counts: Arc<ExportCounts>) -> Self {
        Self(counts)
    }

    /// The tonic service to add to a server, accepting gzip-compressed exports.
    pub fn into_server(self) -> TraceServiceServer<Self> {
        TraceServiceServer::new(self).accept_compressed(CompressionEncoding::Gzip)
    }
}

#[tonic::async_trait]
impl TraceService for CountingTraceService {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.add(span_count(request.get_ref()));
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

fn span_count(request: &ExportTraceServiceRequest) -> usize {
    request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum()
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[derive(Default)]
pub(super) struct Data {
    pub(super) spans: Vec<SpanRecord>,
    pub(super) requests: Vec<ExportRequestInfo>,
}

pub(super) struct State {
    pub(super) behavior: Mutex<ReceiverBehavior>,
    /// Export calls answered so far under [`ReceiverBehavior::FailFirst`] (reset when the
    /// behaviour is set).
    pub(super) fail_first_calls: AtomicUsize,
    /// Spans and calls accepted so far.
    pub(super) counts: Arc<ExportCounts>,
    pub(super) data: Mutex<Data>,
    /// Signalled on every change (blocking waiters).
    pub(super) arrived: Condvar,
    /// Bumped on every change (async waiters).
    pub(super) changed: tokio::sync::watch::Sender<u64>,
}

enum Outcome {
    Accepted,
    Unavailable,
}

/// One export call, decoded.
struct Call {
    protocol: OtlpProtocol,
    path: &'static str,
    compression: Option<String>,
    request: ExportTraceServiceRequest,
}

impl State {
    pub(super) fn new(behavior: ReceiverBehavior) -> Self {
        Self {
            behavior: Mutex::new(behavior),
            fail_first_calls: AtomicUsize::new(0),
            counts: Arc::default(),
            data: Mutex::new(Data::default()),
            arrived: Condvar::new(),
            changed: tokio::sync::watch::Sender::new(0),
        }
    }

    fn notify(&self) {
        self.arrived.notify_all();
        self.changed.send_modify(|v| *v += 1);
    }

    /// Records the call, applies the behaviour, then records the spans if accepted.
    async fn handle(&self, headers: &HeaderMap, call: Call) -> Outcome {
        let span_count = span_count(&call.request);
        let behavior = *lock(&self.behavior);
        if behavior == ReceiverBehavior::Count {
            // Only http/protobuf calls get here: gRPC ones go to the counting service.
            self.counts.add(span_count);
            return Outcome::Accepted;
        }
        let info = ExportRequestInfo {
            protocol: call.protocol,
            path: call.path.to_owned(),
            headers: header_map(headers),
            span_count,
            compression: call.compression,
        };
        lock(&self.data).requests.push(info);
        self.notify();
        match behavior {
            ReceiverBehavior::Accept | ReceiverBehavior::Count => {}
            ReceiverBehavior::Delay(d) => tokio::time::sleep(d).await,
            ReceiverBehavior::Unavailable => return Outcome::Unavailable,
            ReceiverBehavior::FailFirst(n) => {
                if self.fail_first_calls.fetch_add(1, Ordering::SeqCst) < n {
                    return Outcome::Unavailable;
                }
            }
        }
        let spans = convert(call.request, call.protocol);
        self.counts.add(spans.len());
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

/// The encoding a header names, `None` when absent or `identity`.
fn encoding(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .trim()
                .to_ascii_lowercase()
        })
        .filter(|v| !v.is_empty() && v != "identity")
}

const GRPC_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

struct GrpcService(Arc<State>);

#[tonic::async_trait]
impl TraceService for GrpcService {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let (metadata, _, request) = request.into_parts();
        let headers = metadata.into_headers();
        let call = Call {
            protocol: OtlpProtocol::Grpc,
            path: GRPC_PATH,
            compression: encoding(&headers, "grpc-encoding"),
            request,
        };
        match self.0.handle(&headers, call).await {
            Outcome::Accepted => Ok(tonic::Response::new(ExportTraceServiceResponse {
                partial_success: None,
            })),
            Outcome::Unavailable => Err(tonic::Status::unavailable(
                "test receiver configured as unavailable",
            )),
        }
    }
}

fn http_error(status: HttpStatus, message: String) -> Response {
    (status, message).into_response()
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
        return http_error(
            HttpStatus::UNSUPPORTED_MEDIA_TYPE,
            format!("test receiver only accepts application/x-protobuf, got {content_type:?}"),
        );
    }
    let compression = encoding(&headers, header::CONTENT_ENCODING.as_str());
    let body = match compression.as_deref() {
        None => body,
        Some("gzip") => {
            let mut plain = Vec::new();
            if let Err(e) = flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut plain) {
                return http_error(HttpStatus::BAD_REQUEST, format!("invalid gzip body: {e}"));
            }
            Bytes::from(plain)
        }
        Some(other) => {
            return http_error(
                HttpStatus::UNSUPPORTED_MEDIA_TYPE,
                format!("test receiver only accepts gzip content encoding, got {other:?}"),
            );
        }
    };
    let request = match ExportTraceServiceRequest::decode(body) {
        Ok(r) => r,
        Err(e) => {
            return http_error(
                HttpStatus::BAD_REQUEST,
                format!("invalid protobuf body: {e}"),
            );
        }
    };
    let call = Call {
        protocol: OtlpProtocol::HttpProtobuf,
        path: "/v1/traces",
        compression,
        request,
    };
    match state.handle(&headers, call).await {
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

/// A loopback port the receiver owns before it serves on it.
pub(super) enum Port {
    /// Listening already (connections queue until the server runs).
    Listening(StdTcpListener),
    /// Bound but not listening: connections are refused until the server starts.
    Reserved(tokio::net::TcpSocket),
}

impl Port {
    /// A listening loopback port.
    pub(super) fn listening() -> Self {
        let listener =
            StdTcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 for the OTLP receiver");
        listener
            .set_nonblocking(true)
            .expect("make the OTLP receiver listener non-blocking");
        Self::Listening(listener)
    }

    /// A loopback port bound (so no one else gets it) but not listening.
    pub(super) fn reserved() -> Self {
        let socket = tokio::net::TcpSocket::new_v4().expect("create the OTLP receiver socket");
        socket
            .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .expect("bind 127.0.0.1:0 for the OTLP receiver");
        Self::Reserved(socket)
    }

    pub(super) fn local_addr(&self) -> SocketAddr {
        match self {
            Self::Listening(l) => l.local_addr(),
            Self::Reserved(s) => s.local_addr(),
        }
        .expect("local_addr of the OTLP receiver port")
    }

    /// Listens (inside the receiver's runtime).
    fn listen(self) -> tokio::net::TcpListener {
        match self {
            Self::Listening(l) => {
                tokio::net::TcpListener::from_std(l).expect("register the OTLP receiver listener")
            }
            Self::Reserved(s) => s.listen(1024).expect("listen on the OTLP receiver port"),
        }
    }
}

/// What the receiver thread serves.
pub(super) struct ServeConfig {
    pub(super) grpc: Port,
    pub(super) http: Port,
    pub(super) state: Arc<State>,
    pub(super) tls: Option<ServerTls>,
    /// How long to wait before listening.
    pub(super) start_after: Option<Duration>,
}

/// The receiver thread: serves until `shutdown` fires (or the receiver is dropped).
pub(super) fn serve(config: ServeConfig, shutdown: tokio::sync::oneshot::Receiver<()>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build the OTLP receiver runtime");
    runtime.block_on(async move {
        tokio::select! {
            () = run(config) => {}
            _ = shutdown => {}
        }
    });
    // Dropping the runtime cancels every connection task.
    drop(runtime);
}

async fn run(config: ServeConfig) {
    let ServeConfig {
        grpc,
        http,
        state,
        tls,
        start_after,
    } = config;
    if let Some(delay) = start_after {
        tokio::time::sleep(delay).await;
    }
    let grpc = grpc.listen();
    let http = http.listen();
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = &tls {
        builder = builder
            .tls_config(tls.tonic_config())
            .expect("configure the OTLP/gRPC receiver's TLS");
    }
    let grpc_router = if *lock(&state.behavior) == ReceiverBehavior::Count {
        builder.add_service(CountingTraceService::new(Arc::clone(&state.counts)).into_server())
    } else {
        builder.add_service(
            TraceServiceServer::new(GrpcService(Arc::clone(&state)))
                .accept_compressed(CompressionEncoding::Gzip),
        )
    };
    let grpc_server = grpc_router.serve_with_incoming(collector_incoming(grpc));
    let router = axum::Router::new()
        .route("/v1/traces", axum::routing::post(http_export))
        .with_state(state);
    let acceptor = tls.map(|tls| tokio_rustls::TlsAcceptor::from(tls.rustls_config()));
    tokio::select! {
        r = grpc_server => r.expect("OTLP/gRPC receiver failed"),
        () = serve_http(http, router, acceptor) => {}
    }
}

/// Serves `router` on every connection `listener` accepts (HTTP/1.1 or HTTP/2), over TLS when
/// `acceptor` is set. Connections run as tasks of the receiver's runtime.
async fn serve_http(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // Out of file descriptors and the like: wait and retry, as axum::serve does.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let builder =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            // Errors end the connection only (a client without a certificate, a reset).
            let _ = match acceptor {
                None => {
                    builder
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await
                }
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(tls) => {
                        builder
                            .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                            .await
                    }
                    Err(_) => return,
                },
            };
        });
    }
}
