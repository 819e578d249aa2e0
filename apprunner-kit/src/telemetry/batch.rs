//! The kit's batch span processor for OTLP/gRPC.
//!
//! A span is encoded (protobuf, see [`encode`](super::encode)) on the thread that ends it, and
//! its bytes are appended to a bounded in-memory queue, grouped by instrumentation scope. The
//! export task, on the kit's export thread, takes the whole queue at once and sends it in
//! requests of at most `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` spans. Compared with the SDK's
//! `BatchSpanProcessor` this keeps each span's memory on the thread that made it (it is freed
//! there, right after encoding), moves no span between threads, and needs no thread of its own:
//! exports run on the runtime that drives the gRPC connection.
//!
//! The settings are the batch processor's: `OTEL_BSP_MAX_QUEUE_SIZE` spans wait at most (more
//! are dropped and counted), an export starts when `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` spans are
//! waiting, when `OTEL_BSP_SCHEDULE_DELAY` has passed, when [`export_soon`](super::export_soon)
//! asks (at most once per [`min_flush_interval`](super::TelemetryConfig::min_flush_interval)),
//! on a flush and at shutdown.

use std::cell::RefCell;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use opentelemetry::InstrumentationScope;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{Span, SpanData, SpanProcessor};
use tokio::sync::{Notify, mpsc};

use super::encode::{self, SpanFields};
use super::export::{Counters, nudge_taken, report_export};
use super::grpc::GrpcExporter;
use super::kit_span::kit_scope;

/// Spans waiting for export, encoded, grouped by scope.
#[derive(Debug, Default)]
struct Pending {
    scopes: Vec<(InstrumentationScope, Vec<u8>)>,
    spans: usize,
    closed: bool,
}

/// What the ending threads and the export task share.
#[derive(Debug)]
pub(crate) struct SpanQueue {
    pending: Mutex<Pending>,
    max_queue: usize,
    max_batch: usize,
    /// Woken when `max_batch` spans are waiting.
    full: Notify,
    counters: Arc<Counters>,
    resource: RwLock<Resource>,
    control: mpsc::UnboundedSender<Control>,
    /// Emptied buffers of exported spans, reused by [`take`](Self::take): a steady load
    /// allocates no queue memory, and the ending threads never grow a buffer from scratch.
    spare: Mutex<Vec<Vec<u8>>>,
}

/// Buffers kept in [`SpanQueue::spare`]: how many, and up to what capacity (a burst of large
/// spans does not pin its memory).
const SPARE_BUFFERS: usize = 4;
const SPARE_MAX_CAPACITY: usize = 4 << 20;

/// Requests from [`SpanProcessor::force_flush`] and [`SpanProcessor::shutdown_with_timeout`],
/// answered once everything queued before them has been exported.
#[derive(Debug)]
enum Control {
    Flush(std::sync::mpsc::SyncSender<()>),
    Shutdown(std::sync::mpsc::SyncSender<()>),
}

thread_local! {
    /// Each thread's buffer for encoding the span it ends, outside the queue's lock.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Where [`kit_scope`]'s spans wait in [`Pending::scopes`].
const KIT_SCOPE_AT: usize = 0;

/// How long [`SpanProcessor::force_flush`] waits for the export task.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(30);

impl SpanQueue {
    /// A queue and the receiving end of its control channel, for [`run`].
    pub(crate) fn new(
        max_queue: usize,
        max_batch: usize,
        counters: Arc<Counters>,
    ) -> (Arc<Self>, ControlReceiver) {
        let (control, receiver) = mpsc::unbounded_channel();
        let queue = Arc::new(Self {
            // The kit's own scope comes first: its spans are queued without comparing scopes.
            pending: Mutex::new(Pending {
                scopes: vec![(kit_scope(), Vec::new())],
                ..Pending::default()
            }),
            max_queue: max_queue.max(1),
            max_batch: max_batch.clamp(1, max_queue.max(1)),
            full: Notify::new(),
            counters,
            resource: RwLock::new(Resource::builder_empty().build()),
            control,
            spare: Mutex::new(Vec::new()),
        });
        (queue, ControlReceiver(receiver))
    }

    /// Queues one sampled span of the kit's own scope ([`kit_scope`]), written by `encode`
    /// (one [`encode::append_span`] call).
    pub(crate) fn push_kit(&self, encode: impl FnOnce(&mut Vec<u8>)) {
        self.push_at(|_| KIT_SCOPE_AT, encode);
    }

    /// Queues one sampled span of `scope`, written by `encode` (one [`encode::append_span`]
    /// call).
    pub(crate) fn push(&self, scope: &InstrumentationScope, encode: impl FnOnce(&mut Vec<u8>)) {
        self.push_at(
            |pending| match pending.scopes.iter().position(|(s, _)| s == scope) {
                Some(at) => at,
                None => {
                    pending.scopes.push((scope.clone(), Vec::new()));
                    pending.scopes.len() - 1
                }
            },
            encode,
        );
    }

    /// Queues one span, encoded by `encode` outside the lock, into the scope `find` picks.
    fn push_at(&self, find: impl FnOnce(&mut Pending) -> usize, encode: impl FnOnce(&mut Vec<u8>)) {
        self.counters.ended.fetch_add(1, Ordering::Relaxed);
        let mut own = Vec::new();
        SCRATCH.with(|scratch| {
            // Re-entered (an exporter ending a span while encoding): use a fresh buffer.
            let mut borrowed = scratch.try_borrow_mut();
            let buf = match borrowed.as_deref_mut() {
                Ok(buf) => buf,
                Err(_) => &mut own,
            };
            buf.clear();
            encode(buf);
            let batch_ready = {
                let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
                if pending.closed || pending.spans >= self.max_queue {
                    // Dropped: counted as ended, never exported.
                    return;
                }
                let at = find(&mut pending);
                pending.scopes[at].1.extend_from_slice(buf);
                pending.spans += 1;
                pending.spans == self.max_batch
            };
            if batch_ready {
                self.full.notify_one();
            }
        });
    }

    /// Takes the queued spans, leaving each scope an empty (recycled) buffer.
    fn take(&self) -> Pending {
        let mut spare = self.spare.lock().unwrap_or_else(PoisonError::into_inner);
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let scopes = pending
            .scopes
            .iter_mut()
            .filter(|(_, spans)| !spans.is_empty())
            .map(|(scope, spans)| {
                let empty = spare.pop().unwrap_or_default();
                (scope.clone(), std::mem::replace(spans, empty))
            })
            .collect();
        Pending {
            scopes,
            spans: std::mem::take(&mut pending.spans),
            closed: pending.closed,
        }
    }

    /// Keeps the buffers of exported spans for the next [`take`](Self::take).
    fn recycle(&self, pending: Pending) {
        let mut spare = self.spare.lock().unwrap_or_else(PoisonError::into_inner);
        for (_, mut spans) in pending.scopes {
            if spare.len() < SPARE_BUFFERS && spans.capacity() <= SPARE_MAX_CAPACITY {
                spans.clear();
                spare.push(spans);
            }
        }
    }

    /// The spans queued so far, taken out of the queue (for tests).
    #[cfg(test)]
    pub(crate) fn take_queued(&self) -> Vec<(InstrumentationScope, Vec<u8>)> {
        self.take().scopes
    }

    fn close(&self) {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .closed = true;
    }

    /// Asks the export task for `request` and waits for its answer.
    fn ask(
        &self,
        request: fn(std::sync::mpsc::SyncSender<()>) -> Control,
        timeout: Duration,
    ) -> OTelSdkResult {
        let (done, answer) = std::sync::mpsc::sync_channel(1);
        self.control
            .send(request(done))
            .map_err(|_| OTelSdkError::AlreadyShutdown)?;
        match answer.recv_timeout(timeout) {
            Ok(()) => Ok(()),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(OTelSdkError::Timeout(timeout)),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                Err(OTelSdkError::AlreadyShutdown)
            }
        }
    }

    /// Exports everything queued now, in requests of at most `max_batch` spans.
    async fn export_pending(&self, exporter: &GrpcExporter, endpoint: &str) {
        let pending = self.take();
        if pending.spans == 0 {
            return;
        }
        let resource = self
            .resource
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let runs = pending.scopes.iter().flat_map(|(scope, spans)| {
            encode::split_spans(spans, self.max_batch).map(move |(run, count)| (scope, run, count))
        });
        let mut request: Vec<(&InstrumentationScope, &[u8])> = Vec::new();
        let mut in_request = 0;
        for (scope, run, count) in runs {
            if in_request + count > self.max_batch {
                self.send(exporter, endpoint, &request, &resource, in_request)
                    .await;
                request.clear();
                in_request = 0;
            }
            request.push((scope, run));
            in_request += count;
        }
        self.send(exporter, endpoint, &request, &resource, in_request)
            .await;
        drop(request);
        self.recycle(pending);
    }

    async fn send(
        &self,
        exporter: &GrpcExporter,
        endpoint: &str,
        request: &[(&InstrumentationScope, &[u8])],
        resource: &Resource,
        spans: usize,
    ) {
        if spans == 0 {
            return;
        }
        let result = exporter.send(request, resource).await;
        report_export(&self.counters, endpoint, spans as u64, &result);
    }
}

/// The receiving end of a [`SpanQueue`]'s control channel.
#[derive(Debug)]
pub(crate) struct ControlReceiver(mpsc::UnboundedReceiver<Control>);

/// The settings of the export task.
#[derive(Debug, Clone)]
pub(crate) struct ExportSchedule {
    pub(crate) delay: Duration,
    pub(crate) min_nudge_interval: Duration,
    pub(crate) endpoint: String,
}

/// The export task: runs on the export thread's runtime until shutdown.
pub(crate) async fn run(
    queue: Arc<SpanQueue>,
    exporter: GrpcExporter,
    nudge: Arc<Notify>,
    schedule: ExportSchedule,
    ControlReceiver(mut control): ControlReceiver,
) {
    let mut last_export = Instant::now();
    loop {
        let mut answer = None;
        let mut stop = false;
        tokio::select! {
            () = queue.full.notified() => {}
            () = tokio::time::sleep(schedule.delay) => {}
            () = nudge.notified() => {
                let since = last_export.elapsed();
                if since < schedule.min_nudge_interval {
                    tokio::select! {
                        () = tokio::time::sleep(schedule.min_nudge_interval - since) => {}
                        () = queue.full.notified() => {}
                    }
                }
                // Before the queue is taken: a span ending after this nudges again.
                nudge_taken();
            }
            request = control.recv() => match request {
                Some(Control::Flush(done)) => answer = Some(done),
                Some(Control::Shutdown(done)) => {
                    answer = Some(done);
                    stop = true;
                }
                None => stop = true,
            },
        }
        queue.export_pending(&exporter, &schedule.endpoint).await;
        last_export = Instant::now();
        if let Some(done) = answer {
            let _ = done.send(());
        }
        if stop {
            return;
        }
    }
}

/// The [`SpanProcessor`] feeding a [`SpanQueue`] with the SDK's spans.
#[derive(Debug)]
pub(crate) struct QueueProcessor {
    pub(crate) queue: Arc<SpanQueue>,
}

impl SpanProcessor for QueueProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &opentelemetry::Context) {}

    fn on_end(&self, span: SpanData) {
        if !span.span_context.is_sampled() {
            return;
        }
        self.queue.push(&span.instrumentation_scope, |buf| {
            encode::append_span(buf, &SpanFields::from(&span));
        });
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.queue.ask(Control::Flush, FLUSH_TIMEOUT)
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.queue.close();
        self.queue.ask(Control::Shutdown, timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        *self
            .queue
            .resource
            .write()
            .unwrap_or_else(PoisonError::into_inner) = resource.clone();
    }
}
