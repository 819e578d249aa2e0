//! A counting OTLP/gRPC trace service for load tests: every export is decoded field by field
//! and its spans are counted, but no message is built. Every field of every message is read
//! and checked against the OTLP trace schema of `opentelemetry-proto` (field numbers, wire
//! types, nesting, UTF-8 of every string, the length of trace and span ids); fields the schema
//! does not define are skipped, as protobuf readers do. A collector that forwards spans does
//! about this much work per span; building `opentelemetry-proto` messages (a `String` per
//! attribute key and value) costs the machine several times more, CPU that benchmarks running
//! the receiver beside the code they measure would otherwise charge to that code.
//!
//! The decoder is one function per message type over a small field reader (`Fields`): no
//! dynamic call and no allocation while a request is accepted (an error message is built only
//! for a rejected one).
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
/// What it accepts, prost's decoding of `ExportTraceServiceRequest` accepts too. It is stricter
/// in two ways: a trace id must have 16 bytes and a span id 8 (or be empty), and an unknown
/// field may not be a group (wire types 3 and 4, which proto3 dropped). Like prost, it rejects
/// messages nested more than 100 deep (`AnyValue` arrays and lists).
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
    export_request(request).map_err(|Invalid(message)| *message)
}

/// Why a request was rejected. Boxed, so that the `Result` of every step is one word wide: on
/// an accepted request each step costs a test for null.
#[allow(
    clippy::box_collection,
    reason = "a thin pointer: `Box<str>` would take two words"
)]
struct Invalid(Box<String>);

/// The outcome of decoding one message or value.
type Walk<T = ()> = Result<T, Invalid>;

/// The deepest message level accepted, the request being level 0. prost's recursion limit: a
/// request nesting `AnyValue`s deeper is rejected by prost too (and cannot exhaust the stack).
const MAX_LEVEL: u32 = 100;

// Wire types.
const VARINT: u32 = 0;
const I64: u32 = 1;
const LEN: u32 = 2;
const I32: u32 = 5;

/// Defines the keys (field number and wire type, as they are on the wire) of a message's
/// fields: `keys!(NAME = 1 LEN)` is `const NAME: u32 = 1 << 3 | LEN`.
macro_rules! keys {
    ($($name:ident = $field:literal $wire:ident),* $(,)?) => {
        $(const $name: u32 = $field << 3 | $wire;)*
    };
}

fn export_request(bytes: &[u8]) -> Walk<u64> {
    keys!(RESOURCE_SPANS = 1 LEN);
    let mut fields = Fields::new(bytes);
    let mut spans = 0;
    while let Some(key) = fields.next_key()? {
        match key {
            RESOURCE_SPANS => spans += resource_spans(fields.len_bytes()?)?,
            _ => fields.other("ExportTraceServiceRequest", key >> 3 <= 1, key, 0)?,
        }
    }
    Ok(spans)
}

/// `ResourceSpans`, level 1.
fn resource_spans(bytes: &[u8]) -> Walk<u64> {
    keys!(RESOURCE = 1 LEN, SCOPE_SPANS = 2 LEN, SCHEMA_URL = 3 LEN);
    let mut fields = Fields::new(bytes);
    let mut spans = 0;
    while let Some(key) = fields.next_key()? {
        match key {
            RESOURCE => resource(fields.len_bytes()?)?,
            SCOPE_SPANS => spans += scope_spans(fields.len_bytes()?)?,
            SCHEMA_URL => utf8(fields.len_bytes()?)?,
            _ => fields.other("ResourceSpans", key >> 3 <= 3, key, 1)?,
        }
    }
    Ok(spans)
}

/// `Resource`, level 2.
fn resource(bytes: &[u8]) -> Walk {
    keys!(ATTRIBUTES = 1 LEN, DROPPED_ATTRIBUTES_COUNT = 2 VARINT, ENTITY_REFS = 3 LEN);
    let mut fields = Fields::new(bytes);
    while let Some(key) = fields.next_key()? {
        match key {
            ATTRIBUTES => key_value(fields.len_bytes()?, 3)?,
            DROPPED_ATTRIBUTES_COUNT => fields.skip_varint()?,
            ENTITY_REFS => entity_ref(fields.len_bytes()?)?,
            _ => fields.other("Resource", key >> 3 <= 3, key, 2)?,
        }
    }
    Ok(())
}

/// `EntityRef`, level 3: four strings (the last two repeated).
fn entity_ref(bytes: &[u8]) -> Walk {
    keys!(SCHEMA_URL = 1 LEN, TYPE = 2 LEN, ID_KEYS = 3 LEN, DESCRIPTION_KEYS = 4 LEN);
    let mut fields = Fields::new(bytes);
    while let Some(key) = fields.next_key()? {
        match key {
            SCHEMA_URL | TYPE | ID_KEYS | DESCRIPTION_KEYS => utf8(fields.len_bytes()?)?,
            _ => fields.other("EntityRef", key >> 3 <= 4, key, 3)?,
        }
    }
    Ok(())
}

/// `ScopeSpans`, level 2: counts its spans.
fn scope_spans(bytes: &[u8]) -> Walk<u64> {
    keys!(SCOPE = 1 LEN, SPANS = 2 LEN, SCHEMA_URL = 3 LEN);
    let mut fields = Fields::new(bytes);
    let mut spans = 0;
    while let Some(key) = fields.next_key()? {
        match key {
            SCOPE => scope(fields.len_bytes()?)?,
            SPANS => {
                span(fields.len_bytes()?)?;
                spans += 1;
            }
            SCHEMA_URL => utf8(fields.len_bytes()?)?,
            _ => fields.other("ScopeSpans", key >> 3 <= 3, key, 2)?,
        }
    }
    Ok(spans)
}

/// `InstrumentationScope`, level 3.
fn scope(bytes: &[u8]) -> Walk {
    keys!(NAME = 1 LEN, VERSION = 2 LEN, ATTRIBUTES = 3 LEN, DROPPED_ATTRIBUTES_COUNT = 4 VARINT);
    let mut fields = Fields::new(bytes);
    while let Some(key) = fields.next_key()? {
        match key {
            NAME | VERSION => utf8(fields.len_bytes()?)?,
            ATTRIBUTES => key_value(fields.len_bytes()?, 4)?,
            DROPPED_ATTRIBUTES_COUNT => fields.skip_varint()?,
            _ => fields.other("InstrumentationScope", key >> 3 <= 4, key, 3)?,
        }
    }
    Ok(())
}

/// `Span`, level 3.
fn span(bytes: &[u8]) -> Walk {
    keys!(
        TRACE_ID = 1 LEN,
        SPAN_ID = 2 LEN,
        TRACE_STATE = 3 LEN,
        PARENT_SPAN_ID = 4 LEN,
        NAME = 5 LEN,
        KIND = 6 VARINT,
        START_TIME_UNIX_NANO = 7 I64,
        END_TIME_UNIX_NANO = 8 I64,
        ATTRIBUTES = 9 LEN,
        DROPPED_ATTRIBUTES_COUNT = 10 VARINT,
        EVENTS = 11 LEN,
        DROPPED_EVENTS_COUNT = 12 VARINT,
        LINKS = 13 LEN,
        DROPPED_LINKS_COUNT = 14 VARINT,
        STATUS = 15 LEN,
        FLAGS = 16 I32,
    );
    let mut fields = Fields::new(bytes);
    while let Some(key) = fields.next_key()? {
        match key {
            TRACE_ID => id("trace_id", fields.len_bytes()?, 16)?,
            SPAN_ID | PARENT_SPAN_ID => id("span_id", fields.len_bytes()?, 8)?,
            TRACE_STATE | NAME => utf8(fields.len_bytes()?)?,
            KIND | DROPPED_ATTRIBUTES_COUNT | DROPPED_EVENTS_COUNT | DROPPED_LINKS_COUNT => {
                fields.skip_varint()?;
            }
            START_TIME_UNIX_NANO | END_TIME_UNIX_NANO => fields.skip_fixed::<8>()?,
            ATTRIBUTES => key_value(fields.len_bytes()?, 4)?,
            EVENTS => event(fields.len_bytes()?)?,
            LINKS => link(fields.len_bytes()?)?,
            STATUS => status(fields.len_bytes()?)?,
            FLAGS => fields.skip_fixed::<4>()?,
            _ => fields.other("Span", key >> 3 <= 16, key, 3)?,
        }
    }
    Ok(())
}

/// `Span.Event`, level 4.
fn event(bytes: &[u8]) -> Walk {
    keys!(
        TIME_UNIX_NANO = 1 I64,
        NAME = 2 LEN,
        ATTRIBUTES = 3 LEN,
        DROPPED_ATTRIBUTES_COUNT = 4 VARINT,
    );
    let mut fields = Fields::new(bytes);
    while let Some(key) = fields.next_key()? {
        match key {
            TIME_UNIX_NANO => fields.skip_fixed::<8>()?,
            NAME => utf8(fields.len_bytes()?)?,
            ATTRIBUTES => key_value(fields.len_bytes()?, 5)?,
            DROPPED_ATTRIBUTES_COUNT => fields.skip_varint()?,
            _ => fields.other("Span.Event", key >> 3 <= 4, key, 4)?,
        }
    }
    Ok(())
}

/// `Span.Link`, level 4.
fn link(bytes: &[u8]) -> Walk {
    keys!(
        TRACE_ID = 1 LEN,
        SPAN_ID = 2 LEN,
        TRACE_STATE = 3 LEN,
        ATTRIBUTES = 4 LEN,
        DROPPED_ATTRIBUTES_COUNT = 5 VARINT,
        FLAGS = 6 I32,
    );
    let mut fields = Fields::new(bytes);
    while let Some(key) = fields.next_key()? {
        match key {
            TRACE_ID => id("trace_id", fields.len_bytes()?, 16)?,
            SPAN_ID => id("span_id", fields.len_bytes()?, 8)?,
            TRACE_STATE => utf8(fields.len_bytes()?)?,
            ATTRIBUTES => key_value(fields.len_bytes()?, 5)?,
            DROPPED_ATTRIBUTES_COUNT => fields.skip_varint()?,
            FLAGS => fields.skip_fixed::<4>()?,
            _ => fields.other("Span.Link", key >> 3 <= 6, key, 4)?,
        }
    }
    Ok(())
}

/// `Status`, level 4 (field 1 is reserved: unknown).
fn status(bytes: &[u8]) -> Walk {
    keys!(MESSAGE = 2 LEN, CODE = 3 VARINT);
    let mut fields = Fields::new(bytes);
    while let Some(key) = fields.next_key()? {
        match key {
            MESSAGE => utf8(fields.len_bytes()?)?,
            CODE => fields.skip_varint()?,
            _ => fields.other("Status", matches!(key >> 3, 2 | 3), key, 4)?,
        }
    }
    Ok(())
}

/// `KeyValue` at `level`, with its `AnyValue` inlined.
fn key_value(bytes: &[u8], level: u32) -> Walk {
    keys!(KEY = 1 LEN, VALUE = 2 LEN, KEY_STRINDEX = 3 VARINT);
    if level > MAX_LEVEL {
        return Err(too_deep("KeyValue"));
    }
    let mut fields = Fields::new(bytes);
    while let Some(key) = fields.next_key()? {
        match key {
            KEY => utf8(fields.len_bytes()?)?,
            VALUE => any_value_inline(fields.len_bytes()?, level + 1)?,
            KEY_STRINDEX => fields.skip_varint()?,
            _ => fields.other("KeyValue", key >> 3 <= 3, key, level)?,
        }
    }
    Ok(())
}

/// `AnyValue` at `level` (in an `ArrayValue`).
fn any_value(bytes: &[u8], level: u32) -> Walk {
    any_value_inline(bytes, level)
}

/// `AnyValue` at `level`, with its `ArrayValue` or `KeyValueList` one level below.
#[inline(always)]
fn any_value_inline(bytes: &[u8], level: u32) -> Walk {
    keys!(
        STRING_VALUE = 1 LEN,
        BOOL_VALUE = 2 VARINT,
        INT_VALUE = 3 VARINT,
        DOUBLE_VALUE = 4 I64,
        ARRAY_VALUE = 5 LEN,
        KVLIST_VALUE = 6 LEN,
        BYTES_VALUE = 7 LEN,
        STRING_VALUE_STRINDEX = 8 VARINT,
    );
    if level > MAX_LEVEL {
        return Err(too_deep("AnyValue"));
    }
    let mut fields = Fields::new(bytes);
    while let Some(key) = fields.next_key()? {
        match key {
            STRING_VALUE => utf8(fields.len_bytes()?)?,
            BOOL_VALUE | INT_VALUE | STRING_VALUE_STRINDEX => fields.skip_varint()?,
            DOUBLE_VALUE => fields.skip_fixed::<8>()?,
            ARRAY_VALUE => array_value(fields.len_bytes()?, level + 1)?,
            KVLIST_VALUE => key_value_list(fields.len_bytes()?, level + 1)?,
            BYTES_VALUE => drop(fields.len_bytes()?),
            _ => fields.other("AnyValue", key >> 3 <= 8, key, level)?,
        }
    }
    Ok(())
}

/// `ArrayValue` at `level`.
fn array_value(bytes: &[u8], level: u32) -> Walk {
    keys!(VALUES = 1 LEN);
    if level > MAX_LEVEL {
        return Err(too_deep("ArrayValue"));
    }
    let mut fields = Fields::new(bytes);
    while let Some(key) = fields.next_key()? {
        match key {
            VALUES => any_value(fields.len_bytes()?, level + 1)?,
            _ => fields.other("ArrayValue", key >> 3 <= 1, key, level)?,
        }
    }
    Ok(())
}

/// `KeyValueList` at `level`.
fn key_value_list(bytes: &[u8], level: u32) -> Walk {
    keys!(VALUES = 1 LEN);
    if level > MAX_LEVEL {
        return Err(too_deep("KeyValueList"));
    }
    let mut fields = Fields::new(bytes);
    while let Some(key) = fields.next_key()? {
        match key {
            VALUES => key_value(fields.len_bytes()?, level + 1)?,
            _ => fields.other("KeyValueList", key >> 3 <= 1, key, level)?,
        }
    }
    Ok(())
}

/// Reads the fields of one message: keys, then their values as their wire types deliver them.
/// The one-byte cases (keys of fields 1 to 15, varints and lengths below 128) are inlined into
/// each message's decoder; the rest is read by functions taking the bytes by value, so that the
/// reader itself stays in registers.
struct Fields<'a> {
    bytes: &'a [u8],
}

impl<'a> Fields<'a> {
    #[inline(always)]
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    /// The next field's key (number and wire type), `None` at the end of the message.
    #[inline(always)]
    fn next_key(&mut self) -> Walk<Option<u32>> {
        let key = match *self.bytes {
            [] => return Ok(None),
            // One byte, field number 1 to 15.
            [key @ 0x08..=0x7f, ref rest @ ..] => {
                self.bytes = rest;
                u32::from(key)
            }
            _ => {
                let (key, used) = long_key(self.bytes)?;
                self.bytes = &self.bytes[used..];
                key
            }
        };
        Ok(Some(key))
    }

    #[inline(always)]
    fn varint(&mut self, what: &'static str) -> Walk<u64> {
        if let [byte @ 0..=0x7f, ref rest @ ..] = *self.bytes {
            self.bytes = rest;
            return Ok(u64::from(byte));
        }
        match long_varint(self.bytes) {
            (value, used @ 1..) => {
                self.bytes = &self.bytes[used..];
                Ok(value)
            }
            (_, 0) => Err(bad_varint(what)),
        }
    }

    #[inline(always)]
    fn skip_varint(&mut self) -> Walk {
        self.varint("varint").map(drop)
    }

    /// A length-delimited value (string, bytes, message).
    #[inline(always)]
    fn len_bytes(&mut self) -> Walk<&'a [u8]> {
        let len = self.varint("length")?;
        match usize::try_from(len) {
            Ok(len) if len <= self.bytes.len() => {
                let (value, rest) = self.bytes.split_at(len);
                self.bytes = rest;
                Ok(value)
            }
            _ => Err(truncated(len, self.bytes.len())),
        }
    }

    #[inline(always)]
    fn skip_fixed<const N: usize>(&mut self) -> Walk {
        match self.bytes.get(N..) {
            Some(rest) => {
                self.bytes = rest;
                Ok(())
            }
            None => Err(truncated(N as u64, self.bytes.len())),
        }
    }

    /// A field with `key` no arm of `message`'s decoder matched (see [`other_field`]).
    #[inline(always)]
    fn other(&mut self, message: &str, known: bool, key: u32, level: u32) -> Walk {
        let used = other_field(self.bytes, message, known, key, level)?;
        self.bytes = &self.bytes[used..];
        Ok(())
    }
}

/// A key of more than one byte: `(key, bytes used)`. prost's limits: a key is a `u32`, its
/// field number is not 0.
#[inline(never)]
fn long_key(bytes: &[u8]) -> Walk<(u32, usize)> {
    let (key, used) = long_varint(bytes);
    if used == 0 {
        return Err(bad_varint("field key"));
    }
    let Ok(key) = u32::try_from(key) else {
        return Err(invalid(format!("field key {key} out of range")));
    };
    if key >> 3 == 0 {
        return Err(invalid("field number 0".to_owned()));
    }
    Ok((key, used))
}

/// The varint `bytes` start with: `(value, bytes used)`, `(0, 0)` if there is none. Like
/// prost: at most 10 bytes, at most 64 bits.
#[inline(never)]
fn long_varint(bytes: &[u8]) -> (u64, usize) {
    if let [low @ 0x80..=0xff, high @ 0..=0x7f, ..] = *bytes {
        return (u64::from(low & 0x7f) | u64::from(high) << 7, 2);
    }
    let mut value = 0;
    for (i, &byte) in bytes.iter().take(10).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            if i == 9 && byte > 1 {
                break;
            }
            return (value, i + 1);
        }
    }
    (0, 0)
}

/// A field no arm of `message`'s decoder matched, at the start of `bytes` (after its key): an
/// error when `message` defines the field number (`known`), so the wire type was wrong; skipped
/// otherwise (a newer schema's field), returning the bytes its value takes. prost refuses to
/// skip a field of a message at the deepest level, and so does this.
#[inline(never)]
fn other_field(bytes: &[u8], message: &str, known: bool, key: u32, level: u32) -> Walk<usize> {
    let (field, wire) = (key >> 3, key & 7);
    if known {
        return Err(invalid(format!(
            "{message}: field {field} with unexpected wire type {wire}"
        )));
    }
    if level >= MAX_LEVEL {
        return Err(invalid(format!(
            "{message}: unknown field {field} at nesting level {level} (limit {MAX_LEVEL})"
        )));
    }
    let mut fields = Fields::new(bytes);
    match wire {
        VARINT => fields.skip_varint()?,
        I64 => fields.skip_fixed::<8>()?,
        LEN => drop(fields.len_bytes()?),
        I32 => fields.skip_fixed::<4>()?,
        _ => {
            return Err(invalid(format!(
                "{message}: field {field}: unsupported wire type {wire}"
            )));
        }
    }
    Ok(bytes.len() - fields.bytes.len())
}

/// Checks a string field: ASCII (nearly every attribute) with `<[u8]>::is_ascii`, anything
/// else by `std::str::from_utf8`.
#[inline(always)]
fn utf8(text: &[u8]) -> Walk {
    if text.is_ascii() {
        Ok(())
    } else {
        non_ascii(text)
    }
}

#[inline(never)]
fn non_ascii(text: &[u8]) -> Walk {
    std::str::from_utf8(text)
        .map(drop)
        .map_err(|e| invalid(format!("string field is not UTF-8: {e}")))
}

/// Checks a trace or span id: empty or `len` bytes.
#[inline(always)]
fn id(what: &'static str, id: &[u8], len: usize) -> Walk {
    if id.is_empty() || id.len() == len {
        Ok(())
    } else {
        Err(wrong_id(what, id.len(), len))
    }
}

#[cold]
#[inline(never)]
fn invalid(message: String) -> Invalid {
    Invalid(Box::new(message))
}

#[cold]
#[inline(never)]
fn bad_varint(what: &str) -> Invalid {
    invalid(format!(
        "{what}: invalid varint (cut, longer than 10 bytes or over 64 bits)"
    ))
}

#[cold]
#[inline(never)]
fn truncated(len: u64, left: usize) -> Invalid {
    invalid(format!("truncated: {len} bytes announced, {left} left"))
}

#[cold]
#[inline(never)]
fn wrong_id(what: &str, len: usize, expected: usize) -> Invalid {
    invalid(format!("{what} of {len} bytes (expected {expected})"))
}

#[cold]
#[inline(never)]
fn too_deep(message: &str) -> Invalid {
    invalid(format!("{message} nested deeper than {MAX_LEVEL} messages"))
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
        AnyValue, ArrayValue, EntityRef, InstrumentationScope, KeyValue, KeyValueList, any_value,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};
    use proptest::collection::vec;
    use proptest::prelude::*;
    use proptest::sample::Index;
    use prost::encoding::{WireType, encode_key, encode_varint};

    use super::*;
    use crate::otlp_count_reference;

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

    /// The spans of a decoded request.
    fn spans_of(request: &ExportTraceServiceRequest) -> u64 {
        request
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len() as u64)
            .sum()
    }

    /// Decodes `bytes` with the decoder, with prost and with the first walker
    /// ([`otlp_count_reference`]), and checks how they agree:
    ///
    /// - what the decoder accepts, prost and the first walker accept, with as many spans;
    /// - what it rejects and prost accepts has a trace or span id of the wrong length, or an
    ///   unknown field that is a group (wire type 3): the two checks prost does not make (it keeps
    ///   ids of any length, and skips groups). The first walker rejected both too;
    /// - what it rejects and the first walker accepted, prost rejects: the checks added since
    ///   (the fields of the OTLP schema the first walker skipped as unknown — `Resource`'s entity
    ///   refs, `KeyValue.key_strindex`, `AnyValue.string_value_strindex` —, keys beyond 32 bits,
    ///   nesting beyond prost's limit) are prost's own.
    fn check_agreement(bytes: &[u8]) {
        let new = count_spans(bytes);
        let prost = ExportTraceServiceRequest::decode(bytes).map(|r| spans_of(&r));
        let old = otlp_count_reference::count_spans(bytes);
        match &new {
            Ok(spans) => {
                assert_eq!(prost.as_ref().ok(), Some(spans), "prost: {prost:?}");
                assert_eq!(old.as_ref(), Ok(spans), "the first walker disagrees");
            }
            Err(error) => {
                assert!(!error.is_empty());
                if prost.is_ok() {
                    assert!(
                        ["trace_id of", "span_id of", "unsupported wire type 3"]
                            .iter()
                            .any(|stricter| error.contains(stricter)),
                        "rejected ({error}) what prost accepts, {bytes:02x?}"
                    );
                }
                if old.is_ok() {
                    assert!(
                        prost.is_err(),
                        "rejected ({error}) what the first walker and prost accept, {bytes:02x?}"
                    );
                }
            }
        }
    }

    /// A length-delimited field.
    fn len_field(number: u32, value: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_key(number, WireType::LengthDelimited, &mut out);
        encode_varint(value.len() as u64, &mut out);
        out.extend_from_slice(value);
        out
    }

    /// A request with one resource whose one attribute (`k`) has `value` (an encoded
    /// `AnyValue`, at level 4).
    fn request_with_value(value: &[u8]) -> Vec<u8> {
        let key_value = [len_field(1, b"k"), len_field(2, value)].concat();
        len_field(1, &len_field(1, &len_field(1, &key_value)))
    }

    /// An `AnyValue` nesting `arrays` arrays (each `AnyValue { array_value: ArrayValue {
    /// values: [..] } }`, two levels), the innermost `AnyValue` being `inner`. Built inside
    /// out in one pass, so that deep ones are cheap.
    fn nested_arrays(arrays: usize, inner: &[u8]) -> Vec<u8> {
        let mut headers = Vec::new();
        let mut len = inner.len() as u64;
        for _ in 0..arrays {
            // ArrayValue.values (1), then AnyValue.array_value (5).
            for key in [0x0a, 0x2a] {
                let mut header = vec![key];
                encode_varint(len, &mut header);
                len += header.len() as u64;
                headers.push(header);
            }
        }
        headers.reverse();
        let mut out = headers.concat();
        out.extend_from_slice(inner);
        out
    }

    #[test]
    fn nesting_is_limited_as_prost_limits_it() {
        // The innermost AnyValue is at level 4 + 2 * arrays: 100 for 48 arrays, prost's limit.
        let bool_value = [0x10, 0x01];
        let unknown_field = [0x78, 0x01]; // field 15, varint
        for arrays in 44..=52 {
            for inner in [&[][..], &bool_value, &unknown_field] {
                let bytes = request_with_value(&nested_arrays(arrays, inner));
                let prost = ExportTraceServiceRequest::decode(&bytes[..]);
                assert_eq!(
                    count_spans(&bytes).is_ok(),
                    prost.is_ok(),
                    "{arrays} arrays around {inner:?}: prost says {prost:?}"
                );
                check_agreement(&bytes);
            }
        }
        let at_the_limit = request_with_value(&nested_arrays(48, &bool_value));
        assert_eq!(count_spans(&at_the_limit), Ok(0));
        let unknown_at_the_limit = request_with_value(&nested_arrays(48, &unknown_field));
        assert!(
            count_spans(&unknown_at_the_limit)
                .unwrap_err()
                .contains("nesting level 100")
        );
        let beyond = request_with_value(&nested_arrays(49, &bool_value));
        assert!(count_spans(&beyond).unwrap_err().contains("nested deeper"));
        // Nesting that would exhaust the stack of a decoder without a limit (the first walker
        // has none): rejected at level 101, whatever follows.
        let deep = request_with_value(&nested_arrays(200_000, &bool_value));
        assert!(count_spans(&deep).unwrap_err().contains("nested deeper"));
    }

    #[test]
    fn fields_of_the_newer_schema_are_checked_too() {
        // The first walker took these field numbers for unknown ones and skipped them, whatever
        // their wire type or content; prost decodes them, and so does the decoder.
        let entity_ref = EntityRef {
            schema_url: "s".to_owned(),
            r#type: "service".to_owned(),
            id_keys: vec!["service.name".to_owned()],
            description_keys: vec!["service.version".to_owned(), "zürich".to_owned()],
        };
        let mut valid = request(&[1]);
        let resource = valid.resource_spans[0].resource.as_mut().unwrap();
        resource.entity_refs = vec![entity_ref.clone(), EntityRef::default()];
        resource.attributes[0].key_strindex = 7;
        resource.attributes.push(KeyValue {
            key_strindex: -1,
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValueStrindex(3)),
            }),
            ..KeyValue::default()
        });
        let bytes = valid.encode_to_vec();
        assert_eq!(count_spans(&bytes), Ok(1));
        check_agreement(&bytes);

        let not_utf8 = |bytes: &mut Vec<u8>, text: &str| {
            let at = bytes
                .windows(text.len())
                .position(|w| w == text.as_bytes())
                .unwrap();
            bytes[at] = 0xff;
        };
        let mut entity_not_utf8 = bytes.clone();
        not_utf8(&mut entity_not_utf8, "zürich");
        let mut key_strindex_as_len = request_with_value(&[]);
        // The KeyValue ends the request: append `key_strindex` (3) as a length-delimited field,
        // growing the three lengths around it.
        key_strindex_as_len.extend_from_slice(&[0x1a, 0x00]);
        for at in [1, 3, 5] {
            key_strindex_as_len[at] += 2;
        }
        let strindex_as_len = request_with_value(&[0x42, 0x00]); // AnyValue field 8, LEN
        for (what, bytes) in [
            ("an entity ref that is not UTF-8", entity_not_utf8),
            ("key_strindex with wire type 2", key_strindex_as_len),
            ("string_value_strindex with wire type 2", strindex_as_len),
        ] {
            assert!(
                otlp_count_reference::count_spans(&bytes).is_ok(),
                "{what}: the first walker skipped it"
            );
            assert!(
                ExportTraceServiceRequest::decode(&bytes[..]).is_err(),
                "{what}: prost rejects it"
            );
            let error = count_spans(&bytes).unwrap_err();
            assert!(
                error.contains("UTF-8") || error.contains("wire type 2"),
                "{what}: {error}"
            );
        }
    }

    #[test]
    fn every_field_of_the_schema_takes_the_wire_type_prost_takes() {
        // Each message of the schema: the fields (numbers, from the request down) that lead to
        // it, and its highest field number.
        let messages: [(&str, &[u32], u32); 14] = [
            ("ExportTraceServiceRequest", &[], 1),
            ("ResourceSpans", &[1], 3),
            ("Resource", &[1, 1], 3),
            ("EntityRef", &[1, 1, 3], 4),
            ("ScopeSpans", &[1, 2], 3),
            ("InstrumentationScope", &[1, 2, 1], 4),
            ("Span", &[1, 2, 2], 16),
            ("Span.Event", &[1, 2, 2, 11], 4),
            ("Span.Link", &[1, 2, 2, 13], 6),
            ("Status", &[1, 2, 2, 15], 3),
            ("KeyValue", &[1, 1, 1], 3),
            ("AnyValue", &[1, 1, 1, 2], 8),
            ("ArrayValue", &[1, 1, 1, 2, 5], 1),
            ("KeyValueList", &[1, 1, 1, 2, 6], 1),
        ];
        // A well-formed value of each wire type (an empty one for length-delimited fields:
        // a valid string, id, bytes or message).
        let values: [(u32, &[u8]); 4] =
            [(0, &[0x96, 0x01]), (1, &[0; 8]), (2, &[0x00]), (5, &[0; 4])];
        for (message, path, last) in messages {
            let mut accepted = 0;
            for field in 1..=last + 2 {
                for (wire, value) in values {
                    let mut body = Vec::new();
                    encode_varint(u64::from(field << 3 | wire), &mut body);
                    body.extend_from_slice(value);
                    let bytes = path
                        .iter()
                        .rev()
                        .fold(body, |inner, field| len_field(*field, &inner));
                    let prost = ExportTraceServiceRequest::decode(&bytes[..]);
                    let new = count_spans(&bytes);
                    assert_eq!(
                        new.is_ok(),
                        prost.is_ok(),
                        "{message} field {field}, wire type {wire}: {new:?}, prost {prost:?}"
                    );
                    if let Err(error) = new {
                        assert!(error.contains("wire type"), "{error}");
                    }
                    accepted += usize::from(prost.is_ok());
                }
            }
            // Each known field takes one wire type, each unknown one all four.
            let unknown = if message == "Status" { 3 } else { 2 };
            assert_eq!(
                accepted,
                (last + 2 - unknown) as usize + 4 * unknown as usize,
                "{message}"
            );
        }
    }

    #[test]
    fn strings_are_checked_for_utf8_at_every_position() {
        for len in 0..=40 {
            let ascii = vec![b'a'; len];
            assert!(utf8(&ascii).is_ok());
            for at in 0..len {
                for high in [0x80, 0xc3, 0xff] {
                    let mut text = ascii.clone();
                    text[at] = high;
                    assert!(utf8(&text).is_err(), "{len} bytes, {high:#x} at {at}");
                }
            }
        }
        assert!(utf8("zürich €".as_bytes()).is_ok());
        assert!(utf8(b"z\xc3").is_err());
    }

    #[test]
    fn keys_beyond_32_bits_are_rejected_as_prost_rejects_them() {
        // Field 2^29 (one past the largest field number), varint 0: the first walker skipped it.
        let mut bytes = Vec::new();
        encode_varint(1 << 32, &mut bytes);
        bytes.push(0);
        assert_eq!(otlp_count_reference::count_spans(&bytes), Ok(0));
        assert!(ExportTraceServiceRequest::decode(&bytes[..]).is_err());
        assert!(count_spans(&bytes).unwrap_err().contains("out of range"));
        // The largest key, and a key written in more bytes than it needs, are fine.
        let mut bytes = Vec::new();
        encode_varint(u64::from(u32::MAX) & !7, &mut bytes);
        bytes.push(0);
        bytes.extend_from_slice(&[0x8a, 0x80, 0x00, 0x00]); // field 1 (len 0) in 3 bytes
        assert_eq!(count_spans(&bytes), Ok(0));
        check_agreement(&bytes);
    }

    #[test]
    fn ids_of_other_lengths_are_rejected_though_prost_keeps_them() {
        for (what, set) in [
            (
                "trace_id",
                (|s: &mut Span| s.trace_id = vec![1; 17]) as fn(&mut Span),
            ),
            ("span_id", |s| s.span_id = vec![1; 7]),
            ("span_id", |s| s.parent_span_id = vec![1; 16]),
            ("trace_id", |s| s.links[0].trace_id = vec![1; 8]),
            ("span_id", |s| s.links[0].span_id = vec![1]),
        ] {
            let mut bad = request(&[1]);
            set(&mut bad.resource_spans[0].scope_spans[0].spans[0]);
            let bytes = bad.encode_to_vec();
            assert!(ExportTraceServiceRequest::decode(&bytes[..]).is_ok());
            assert!(count_spans(&bytes).unwrap_err().contains(what));
            check_agreement(&bytes);
        }
    }

    #[test]
    fn unknown_groups_are_rejected_though_prost_skips_them() {
        // Field 20 as a group holding a varint, closed: valid protobuf, obsolete since proto3.
        let mut bytes = request(&[1]).encode_to_vec();
        bytes.extend_from_slice(&[0xa3, 0x01, 0x08, 0x01, 0xa4, 0x01]);
        assert!(ExportTraceServiceRequest::decode(&bytes[..]).is_ok());
        assert!(
            count_spans(&bytes)
                .unwrap_err()
                .contains("unsupported wire type 3")
        );
        check_agreement(&bytes);
    }

    #[test]
    fn every_single_byte_change_is_judged_as_prost_and_the_first_walker_judge_it() {
        let bytes = request(&[2, 1]).encode_to_vec();
        let mut changed = bytes.clone();
        for at in 0..bytes.len() {
            for value in [
                0x00,
                0x01,
                0x7f,
                0x80,
                0xff,
                bytes[at] ^ 0x01,
                bytes[at] ^ 0x02,
                bytes[at] ^ 0x04,
                bytes[at] ^ 0x10,
                bytes[at] ^ 0x80,
                bytes[at].wrapping_add(1),
                bytes[at].wrapping_sub(1),
            ] {
                changed[at] = value;
                check_agreement(&changed);
            }
            changed[at] = bytes[at];
            check_agreement(&bytes[..at]);
            check_agreement(&[&bytes[..at], &bytes[at + 1..]].concat());
        }
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => "[a-z._/]{0,12}",
            1 => "\\PC{0,8}", // any characters but controls: non-ASCII, 2 to 4 bytes
            1 => ".{0,40}",
        ]
    }

    /// Empty or `len` bytes: the lengths the decoder accepts for ids.
    fn id(len: usize) -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![Just(Vec::new()), vec(any::<u8>(), len)]
    }

    fn any_value_strategy() -> impl Strategy<Value = AnyValue> {
        use any_value::Value;
        let leaf = prop_oneof![
            Just(None),
            text().prop_map(|s| Some(Value::StringValue(s))),
            any::<bool>().prop_map(|b| Some(Value::BoolValue(b))),
            any::<i64>().prop_map(|i| Some(Value::IntValue(i))),
            any::<f64>().prop_map(|f| Some(Value::DoubleValue(f))),
            vec(any::<u8>(), 0..12).prop_map(|b| Some(Value::BytesValue(b))),
            any::<i32>().prop_map(|i| Some(Value::StringValueStrindex(i))),
        ]
        .prop_map(|value| AnyValue { value });
        leaf.prop_recursive(4, 24, 4, |inner| {
            prop_oneof![
                vec(inner.clone(), 0..4).prop_map(|values| AnyValue {
                    value: Some(Value::ArrayValue(ArrayValue { values })),
                }),
                vec((text(), proptest::option::of(inner), any::<i32>()), 0..4).prop_map(|values| {
                    AnyValue {
                        value: Some(Value::KvlistValue(KeyValueList {
                            values: values
                                .into_iter()
                                .map(|(key, value, key_strindex)| KeyValue {
                                    key,
                                    value,
                                    key_strindex,
                                })
                                .collect(),
                        })),
                    }
                }),
            ]
        })
    }

    fn attributes() -> impl Strategy<Value = Vec<KeyValue>> {
        let key_value = (
            text(),
            proptest::option::of(any_value_strategy()),
            prop_oneof![3 => Just(0), 1 => any::<i32>()],
        )
            .prop_map(|(key, value, key_strindex)| KeyValue {
                key,
                value,
                key_strindex,
            });
        vec(key_value, 0..5)
    }

    fn span_strategy() -> impl Strategy<Value = Span> {
        let ids = (id(16), id(8), id(8), text(), any::<u32>());
        let times = (any::<i32>(), any::<u64>(), any::<u64>(), text());
        let event = (any::<u64>(), text(), attributes(), any::<u32>()).prop_map(
            |(time_unix_nano, name, attributes, dropped_attributes_count)| span::Event {
                time_unix_nano,
                name,
                attributes,
                dropped_attributes_count,
            },
        );
        let link = (
            id(16),
            id(8),
            text(),
            attributes(),
            any::<u32>(),
            any::<u32>(),
        )
            .prop_map(
                |(trace_id, span_id, trace_state, attributes, dropped_attributes_count, flags)| {
                    span::Link {
                        trace_id,
                        span_id,
                        trace_state,
                        attributes,
                        dropped_attributes_count,
                        flags,
                    }
                },
            );
        let status = proptest::option::of(
            (text(), any::<i32>()).prop_map(|(message, code)| Status { message, code }),
        );
        let lists = (
            attributes(),
            vec(event, 0..3),
            vec(link, 0..3),
            status,
            (any::<u32>(), any::<u32>(), any::<u32>()),
        );
        (ids, times, lists).prop_map(
            |(
                (trace_id, span_id, parent_span_id, trace_state, flags),
                (kind, start_time_unix_nano, end_time_unix_nano, name),
                (attributes, events, links, status, dropped),
            )| Span {
                trace_id,
                span_id,
                trace_state,
                parent_span_id,
                flags,
                name,
                kind,
                start_time_unix_nano,
                end_time_unix_nano,
                attributes,
                dropped_attributes_count: dropped.0,
                events,
                dropped_events_count: dropped.1,
                links,
                dropped_links_count: dropped.2,
                status,
            },
        )
    }

    fn request_strategy() -> impl Strategy<Value = ExportTraceServiceRequest> {
        let entity_ref = (text(), text(), vec(text(), 0..3), vec(text(), 0..3)).prop_map(
            |(schema_url, r#type, id_keys, description_keys)| EntityRef {
                schema_url,
                r#type,
                id_keys,
                description_keys,
            },
        );
        let resource = proptest::option::of(
            (attributes(), any::<u32>(), vec(entity_ref, 0..2)).prop_map(
                |(attributes, dropped_attributes_count, entity_refs)| Resource {
                    attributes,
                    dropped_attributes_count,
                    entity_refs,
                },
            ),
        );
        let scope = proptest::option::of((text(), text(), attributes(), any::<u32>()).prop_map(
            |(name, version, attributes, dropped_attributes_count)| InstrumentationScope {
                name,
                version,
                attributes,
                dropped_attributes_count,
            },
        ));
        let scope_spans =
            (scope, vec(span_strategy(), 0..4), text()).prop_map(|(scope, spans, schema_url)| {
                ScopeSpans {
                    scope,
                    spans,
                    schema_url,
                }
            });
        let resource_spans = (resource, vec(scope_spans, 0..3), text()).prop_map(
            |(resource, scope_spans, schema_url)| ResourceSpans {
                resource,
                scope_spans,
                schema_url,
            },
        );
        vec(resource_spans, 0..3)
            .prop_map(|resource_spans| ExportTraceServiceRequest { resource_spans })
    }

    /// A change to an encoded request.
    #[derive(Debug, Clone)]
    enum Mutation {
        FlipBit(Index, u8),
        Set(Index, u8),
        Cut(Index),
        Remove(Index, u8),
        Insert(Index, Vec<u8>),
        Duplicate(Index, u8),
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        prop_oneof![
            4 => (any::<Index>(), 0..8u8).prop_map(|(at, bit)| Mutation::FlipBit(at, bit)),
            2 => (any::<Index>(), any::<u8>()).prop_map(|(at, value)| Mutation::Set(at, value)),
            1 => any::<Index>().prop_map(Mutation::Cut),
            1 => (any::<Index>(), 1..8u8).prop_map(|(at, n)| Mutation::Remove(at, n)),
            1 => (any::<Index>(), vec(any::<u8>(), 1..6))
                .prop_map(|(at, bytes)| Mutation::Insert(at, bytes)),
            1 => (any::<Index>(), 1..16u8).prop_map(|(at, n)| Mutation::Duplicate(at, n)),
        ]
    }

    fn apply(bytes: &mut Vec<u8>, mutation: &Mutation) {
        if bytes.is_empty() {
            return;
        }
        match mutation {
            Mutation::FlipBit(at, bit) => {
                let at = at.index(bytes.len());
                bytes[at] ^= 1 << bit;
            }
            Mutation::Set(at, value) => {
                let at = at.index(bytes.len());
                bytes[at] = *value;
            }
            Mutation::Cut(at) => bytes.truncate(at.index(bytes.len())),
            Mutation::Remove(at, n) => {
                let at = at.index(bytes.len());
                bytes.drain(at..(at + usize::from(*n)).min(bytes.len()));
            }
            Mutation::Insert(at, inserted) => {
                let at = at.index(bytes.len() + 1);
                bytes.splice(at..at, inserted.iter().copied());
            }
            Mutation::Duplicate(at, n) => {
                let at = at.index(bytes.len());
                let copy = bytes[at..(at + usize::from(*n)).min(bytes.len())].to_vec();
                bytes.splice(at..at, copy);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn valid_requests_are_accepted_and_counted_as_prost_counts_them(
            request in request_strategy(),
        ) {
            let bytes = request.encode_to_vec();
            prop_assert_eq!(count_spans(&bytes), Ok(spans_of(&request)));
            let decoded = ExportTraceServiceRequest::decode(&bytes[..]).unwrap();
            prop_assert_eq!(&decoded, &request);
            check_agreement(&bytes);
        }

        #[test]
        fn changed_requests_never_panic_and_are_judged_as_prost_judges_them(
            request in request_strategy(),
            mutations in vec(mutation(), 1..4),
        ) {
            let mut bytes = request.encode_to_vec();
            for mutation in &mutations {
                apply(&mut bytes, mutation);
                check_agreement(&bytes);
            }
        }
    }
}
