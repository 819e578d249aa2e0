//! A counting OTLP/gRPC trace service for load tests: every export is decoded field by field
//! (wire types, field numbers and nesting of the OTLP trace schema, UTF-8 of every string) and
//! its spans are counted, but no message is built. A collector that forwards spans does about
//! this much work per span; building `opentelemetry-proto` messages (a `String` per attribute
//! key and value) costs the machine several times more, CPU that benchmarks running the receiver
//! beside the code they measure would otherwise charge to that code.
//!
//! Used by [`OtlpReceiver`](crate::OtlpReceiver) with
//! [`ReceiverBehavior::Count`](crate::ReceiverBehavior::Count) and by the `otlp-sink` binary.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message as _;
use prost::bytes::Buf as _;
use prost::encoding::decode_varint;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::{BoxFuture, Service, http};
use tonic::server::NamedService;

/// What the counting service has seen.
#[derive(Debug, Default)]
pub struct ExportCounts {
    /// Spans in accepted exports.
    pub spans: AtomicU64,
    /// Accepted export calls.
    pub exports: AtomicU64,
}

/// Counts the spans of an encoded `ExportTraceServiceRequest`, checking it against the OTLP
/// trace schema on the way. Unknown fields are skipped, as protobuf readers do.
///
/// ```
/// use prost::Message as _;
/// use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
/// use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
///
/// let request = ExportTraceServiceRequest {
///     resource_spans: vec![ResourceSpans {
///         scope_spans: vec![ScopeSpans { spans: vec![Span::default(), Span::default()], ..Default::default() }],
///         ..Default::default()
///     }],
/// };
/// assert_eq!(apprunner_kit_tests::count_spans(&request.encode_to_vec()), Ok(2));
/// assert!(apprunner_kit_tests::count_spans(&[0x0a, 0x05, 0x01]).is_err());
/// ```
pub fn count_spans(request: &[u8]) -> Result<u64, String> {
    let mut spans = 0;
    walk(request, &mut |field, value| match (field, value) {
        (1, Field::Len(resource_spans)) => {
            walk(resource_spans, &mut |field, value| match (field, value) {
                (1, Field::Len(resource)) => {
                    walk(resource, &mut |field, value| match (field, value) {
                        (1, Field::Len(kv)) => key_value(kv),
                        (2, Field::Varint) => Ok(()),
                        other => unexpected("Resource", 1..=2, other),
                    })
                }
                (2, Field::Len(scope_spans)) => {
                    walk(scope_spans, &mut |field, value| match (field, value) {
                        (1, Field::Len(scope)) => {
                            walk(scope, &mut |field, value| match (field, value) {
                                (1 | 2, Field::Len(text)) => utf8(text),
                                (3, Field::Len(kv)) => key_value(kv),
                                (4, Field::Varint) => Ok(()),
                                other => unexpected("InstrumentationScope", 1..=4, other),
                            })
                        }
                        (2, Field::Len(span_bytes)) => {
                            span(span_bytes)?;
                            spans += 1;
                            Ok(())
                        }
                        (3, Field::Len(text)) => utf8(text),
                        other => unexpected("ScopeSpans", 1..=3, other),
                    })
                }
                (3, Field::Len(text)) => utf8(text),
                other => unexpected("ResourceSpans", 1..=3, other),
            })
        }
        other => unexpected("ExportTraceServiceRequest", 1..=1, other),
    })?;
    Ok(spans)
}

fn span(bytes: &[u8]) -> Result<(), String> {
    walk(bytes, &mut |field, value| match (field, value) {
        (1, Field::Len(id)) => id_len("trace_id", id, 16),
        (2 | 4, Field::Len(id)) => id_len("span_id", id, 8),
        (3 | 5, Field::Len(text)) => utf8(text),
        (6 | 10 | 12 | 14, Field::Varint) => Ok(()),
        (7 | 8, Field::Fixed64) | (16, Field::Fixed32) => Ok(()),
        (9, Field::Len(kv)) => key_value(kv),
        (11, Field::Len(event)) => walk(event, &mut |field, value| match (field, value) {
            (1, Field::Fixed64) | (4, Field::Varint) => Ok(()),
            (2, Field::Len(text)) => utf8(text),
            (3, Field::Len(kv)) => key_value(kv),
            other => unexpected("Span.Event", 1..=4, other),
        }),
        (13, Field::Len(link)) => walk(link, &mut |field, value| match (field, value) {
            (1, Field::Len(id)) => id_len("trace_id", id, 16),
            (2, Field::Len(id)) => id_len("span_id", id, 8),
            (3, Field::Len(text)) => utf8(text),
            (4, Field::Len(kv)) => key_value(kv),
            (5, Field::Varint) | (6, Field::Fixed32) => Ok(()),
            other => unexpected("Span.Link", 1..=6, other),
        }),
        (15, Field::Len(status)) => walk(status, &mut |field, value| match (field, value) {
            (2, Field::Len(text)) => utf8(text),
            (3, Field::Varint) => Ok(()),
            other => unexpected("Status", 2..=3, other),
        }),
        other => unexpected("Span", 1..=16, other),
    })
}

fn key_value(bytes: &[u8]) -> Result<(), String> {
    walk(bytes, &mut |field, value| match (field, value) {
        (1, Field::Len(text)) => utf8(text),
        (2, Field::Len(any)) => any_value(any),
        other => unexpected("KeyValue", 1..=2, other),
    })
}

fn any_value(bytes: &[u8]) -> Result<(), String> {
    walk(bytes, &mut |field, value| match (field, value) {
        (1, Field::Len(text)) => utf8(text),
        (2 | 3, Field::Varint) | (4, Field::Fixed64) | (7, Field::Len(_)) => Ok(()),
        (5, Field::Len(array)) => walk(array, &mut |field, value| match (field, value) {
            (1, Field::Len(any)) => any_value(any),
            other => unexpected("ArrayValue", 1..=1, other),
        }),
        (6, Field::Len(list)) => walk(list, &mut |field, value| match (field, value) {
            (1, Field::Len(kv)) => key_value(kv),
            other => unexpected("KeyValueList", 1..=1, other),
        }),
        other => unexpected("AnyValue", 1..=7, other),
    })
}

/// One field of a message, as its wire type delivers it.
#[derive(Debug)]
enum Field<'a> {
    Varint,
    Fixed64,
    Fixed32,
    Len(&'a [u8]),
}

/// Walks the fields of one message, calling `visit` with each known field number.
fn walk<'a>(
    mut bytes: &'a [u8],
    visit: &mut dyn FnMut(u32, Field<'a>) -> Result<(), String>,
) -> Result<(), String> {
    while !bytes.is_empty() {
        let key = decode_varint(&mut bytes).map_err(|e| format!("field key: {e}"))?;
        let field = u32::try_from(key >> 3).map_err(|_| "field number out of range".to_owned())?;
        if field == 0 {
            return Err("field number 0".to_owned());
        }
        let value = match key & 7 {
            0 => {
                decode_varint(&mut bytes).map_err(|e| format!("varint: {e}"))?;
                Field::Varint
            }
            1 => {
                take(&mut bytes, 8)?;
                Field::Fixed64
            }
            5 => {
                take(&mut bytes, 4)?;
                Field::Fixed32
            }
            2 => {
                let len = decode_varint(&mut bytes).map_err(|e| format!("length: {e}"))?;
                let len = usize::try_from(len).map_err(|_| "length out of range".to_owned())?;
                Field::Len(take(&mut bytes, len)?)
            }
            wire => return Err(format!("field {field}: unsupported wire type {wire}")),
        };
        visit(field, value)?;
    }
    Ok(())
}

fn take<'a>(bytes: &mut &'a [u8], len: usize) -> Result<&'a [u8], String> {
    if bytes.len() < len {
        return Err(format!(
            "truncated: {len} bytes announced, {} left",
            bytes.len()
        ));
    }
    let (head, tail) = bytes.split_at(len);
    *bytes = tail;
    Ok(head)
}

fn utf8(bytes: &[u8]) -> Result<(), String> {
    std::str::from_utf8(bytes)
        .map(drop)
        .map_err(|e| format!("string field is not UTF-8: {e}"))
}

fn id_len(what: &str, id: &[u8], len: usize) -> Result<(), String> {
    if id.is_empty() || id.len() == len {
        Ok(())
    } else {
        Err(format!("{what} of {} bytes (expected {len})", id.len()))
    }
}

/// A field no arm of `message`'s visitor matched: an error when `message` defines the field
/// number (`known`), so the wire type was wrong; skipped otherwise (a newer schema's field).
fn unexpected(
    message: &str,
    known: std::ops::RangeInclusive<u32>,
    (field, value): (u32, Field<'_>),
) -> Result<(), String> {
    if known.contains(&field) {
        Err(format!(
            "{message}: field {field} with unexpected wire type ({value:?})"
        ))
    } else {
        Ok(())
    }
}

/// The `TraceService` of the counting receiver, to add to a `tonic` server.
#[derive(Debug, Clone)]
pub struct CountingTraceService(Arc<ExportCounts>);

impl CountingTraceService {
    /// A service adding what it accepts to `counts`.
    pub fn new(counts: Arc<ExportCounts>) -> Self {
        Self(counts)
    }
}

impl NamedService for CountingTraceService {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

impl Service<http::Request<tonic::body::Body>> for CountingTraceService {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let counts = Arc::clone(&self.0);
        Box::pin(async move {
            if request.uri().path() != "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
            {
                return Ok(tonic::Status::unimplemented("only TraceService/Export").into_http());
            }
            let mut grpc = tonic::server::Grpc::new(CountCodec);
            Ok(grpc.unary(Export(counts), request).await)
        })
    }
}

struct Export(Arc<ExportCounts>);

impl tonic::server::UnaryService<u64> for Export {
    type Response = ExportTraceServiceResponse;
    type Future = std::future::Ready<Result<tonic::Response<Self::Response>, tonic::Status>>;

    fn call(&mut self, request: tonic::Request<u64>) -> Self::Future {
        self.0
            .spans
            .fetch_add(*request.get_ref(), Ordering::Relaxed);
        self.0.exports.fetch_add(1, Ordering::Relaxed);
        std::future::ready(Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        })))
    }
}

/// Decodes a request into its span count; encodes the response with prost.
#[derive(Debug, Clone, Copy, Default)]
struct CountCodec;

impl Codec for CountCodec {
    type Encode = ExportTraceServiceResponse;
    type Decode = u64;
    type Encoder = CountCodec;
    type Decoder = CountCodec;

    fn encoder(&mut self) -> Self::Encoder {
        CountCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        CountCodec
    }
}

impl Encoder for CountCodec {
    type Item = ExportTraceServiceResponse;
    type Error = tonic::Status;

    fn encode(&mut self, item: Self::Item, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        item.encode(dst)
            .map_err(|e| tonic::Status::internal(format!("encode the response: {e}")))
    }
}

impl Decoder for CountCodec {
    type Item = u64;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<u64>, tonic::Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        count_spans(&bytes).map(Some).map_err(|e| {
            tonic::Status::invalid_argument(format!("invalid ExportTraceServiceRequest: {e}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{
        AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};

    use super::*;

    fn kv(key: &str, value: any_value::Value) -> KeyValue {
        KeyValue {
            key: key.to_owned(),
            value: Some(AnyValue { value: Some(value) }),
            ..KeyValue::default()
        }
    }

    fn full_span(name: &str) -> Span {
        let attributes = vec![
            kv("s", any_value::Value::StringValue("zürich".to_owned())),
            kv("b", any_value::Value::BoolValue(true)),
            kv("i", any_value::Value::IntValue(-7)),
            kv("d", any_value::Value::DoubleValue(0.5)),
            kv("bytes", any_value::Value::BytesValue(vec![0, 255])),
            kv(
                "a",
                any_value::Value::ArrayValue(ArrayValue {
                    values: vec![AnyValue {
                        value: Some(any_value::Value::IntValue(1)),
                    }],
                }),
            ),
            kv(
                "l",
                any_value::Value::KvlistValue(KeyValueList {
                    values: vec![kv("inner", any_value::Value::BoolValue(false))],
                }),
            ),
        ];
        Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            parent_span_id: vec![3; 8],
            trace_state: "a=b".to_owned(),
            flags: 0x301,
            name: name.to_owned(),
            kind: 2,
            start_time_unix_nano: 1,
            end_time_unix_nano: 2,
            attributes: attributes.clone(),
            dropped_attributes_count: 1,
            events: vec![span::Event {
                time_unix_nano: 3,
                name: "e".to_owned(),
                attributes: attributes.clone(),
                dropped_attributes_count: 2,
            }],
            dropped_events_count: 3,
            links: vec![span::Link {
                trace_id: vec![4; 16],
                span_id: vec![5; 8],
                trace_state: "c=d".to_owned(),
                attributes,
                dropped_attributes_count: 4,
                flags: 0x100,
            }],
            dropped_links_count: 5,
            status: Some(Status {
                message: "boom".to_owned(),
                code: 2,
            }),
        }
    }

    fn request(spans_per_scope: &[usize]) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![kv(
                        "service.name",
                        any_value::Value::StringValue("x".into()),
                    )],
                    dropped_attributes_count: 1,
                    entity_refs: vec![],
                }),
                scope_spans: spans_per_scope
                    .iter()
                    .map(|n| ScopeSpans {
                        scope: Some(InstrumentationScope {
                            name: "apprunner".to_owned(),
                            version: "0.1.0".to_owned(),
                            attributes: vec![kv("k", any_value::Value::IntValue(1))],
                            dropped_attributes_count: 0,
                        }),
                        spans: (0..*n).map(|i| full_span(&format!("span {i}"))).collect(),
                        schema_url: "https://opentelemetry.io/schemas/1.37.0".to_owned(),
                    })
                    .collect(),
                schema_url: String::new(),
            }],
        }
    }

    #[test]
    fn counts_every_span_of_every_scope() {
        assert_eq!(count_spans(&request(&[3, 0, 5]).encode_to_vec()), Ok(8));
        assert_eq!(count_spans(&[]), Ok(0));
    }

    #[test]
    fn rejects_what_is_not_an_otlp_trace_request() {
        let bytes = request(&[2]).encode_to_vec();
        // Cut anywhere inside the message: never accepted as a complete request.
        for cut in 1..bytes.len() {
            assert!(
                count_spans(&bytes[..cut]).is_err_and(|e| !e.is_empty()),
                "a request truncated at {cut} of {} bytes was accepted",
                bytes.len()
            );
        }
        // A span name that is not UTF-8.
        let mut bad = request(&[1]);
        bad.resource_spans[0].scope_spans[0].spans[0].name = "\u{e9}".to_owned();
        let mut bytes = bad.encode_to_vec();
        let at = bytes
            .windows(2)
            .position(|w| w == "\u{e9}".as_bytes())
            .unwrap();
        bytes[at] = 0xff;
        assert!(count_spans(&bytes).unwrap_err().contains("UTF-8"));
        // A trace id of the wrong size, and a field with the wrong wire type.
        let mut bad = request(&[1]);
        bad.resource_spans[0].scope_spans[0].spans[0].trace_id = vec![1; 5];
        assert!(
            count_spans(&bad.encode_to_vec())
                .unwrap_err()
                .contains("trace_id")
        );
        assert!(
            count_spans(&[0x08, 0x01])
                .unwrap_err()
                .contains("wire type")
        );
    }

    #[test]
    fn skips_fields_it_does_not_know() {
        let mut bytes = request(&[1]).encode_to_vec();
        // Field 100, varint 1: a field a later OTLP version might add at the top level.
        bytes.extend_from_slice(&[0xa0, 0x06, 0x01]);
        assert_eq!(count_spans(&bytes), Ok(1));
    }
}
