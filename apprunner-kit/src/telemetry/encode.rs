//! OTLP protobuf encoding of finished spans, written straight from the SDK's `SpanData`.
//!
//! `opentelemetry-otlp` first copies a batch (for retries), converts every span into the
//! generated `opentelemetry-proto` messages (a `String` per attribute key and value, a `Vec`
//! per id) and only then encodes those. The kit writes the protobuf bytes of an
//! `ExportTraceServiceRequest` directly: one buffer per batch, no copy of any span. The bytes
//! are the ones `opentelemetry-proto` would produce for the same batch, field for field; the
//! tests decode both and compare.
//!
//! The schema is `opentelemetry/proto/collector/trace/v1/trace_service.proto` and the messages
//! it includes (OTLP 1.x): field numbers are given next to each write below.

use std::borrow::Cow;
use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{Event, Link, SpanContext, SpanId, SpanKind, Status, TraceState};
use opentelemetry::{Array, InstrumentationScope, KeyValue, StringValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SpanData;
use prost::encoding::encoded_len_varint;

use super::packed::{PackedAttributes, PackedValue};

/// Wire types.
const VARINT: u32 = 0;
const FIXED64: u32 = 1;
const LEN: u32 = 2;
const FIXED32: u32 = 5;

/// `SpanFlags.SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK` and `..._IS_REMOTE_MASK`.
const HAS_IS_REMOTE: u32 = 0x100;
const IS_REMOTE: u32 = 0x200;

/// The fields of one finished span, borrowed from wherever the span is kept: an SDK
/// [`SpanData`], or one of the kit's own spans.
pub(crate) struct SpanFields<'a> {
    pub(crate) context: &'a SpanContext,
    pub(crate) parent_span_id: SpanId,
    pub(crate) parent_is_remote: bool,
    pub(crate) kind: &'a SpanKind,
    pub(crate) name: &'a str,
    pub(crate) start: SystemTime,
    pub(crate) end: SystemTime,
    pub(crate) attributes: &'a [KeyValue],
    /// More attributes, written after `attributes`.
    pub(crate) packed: Option<&'a PackedAttributes>,
    /// More attributes, already encoded, written last.
    pub(crate) encoded: Option<&'a EncodedAttributes>,
    pub(crate) dropped_attributes: u32,
    pub(crate) events: &'a [Event],
    pub(crate) dropped_events: u32,
    pub(crate) links: &'a [Link],
    pub(crate) dropped_links: u32,
    pub(crate) status: &'a Status,
}

impl<'a> From<&'a SpanData> for SpanFields<'a> {
    fn from(span: &'a SpanData) -> Self {
        Self {
            context: &span.span_context,
            parent_span_id: span.parent_span_id,
            parent_is_remote: span.parent_span_is_remote,
            kind: &span.span_kind,
            name: &span.name,
            start: span.start_time,
            end: span.end_time,
            attributes: &span.attributes,
            packed: None,
            encoded: None,
            dropped_attributes: span.dropped_attributes_count,
            events: &span.events.events,
            dropped_events: span.events.dropped_count,
            links: &span.links.links,
            dropped_links: span.links.dropped_count,
            status: &span.status,
        }
    }
}

/// Appends `span` to `buf` as one `ScopeSpans.spans` entry (key, length, `Span` message):
/// entries appended one after the other are the spans of a scope, ready for
/// [`export_request`].
///
/// One pass: the span is written after room for its key and length, which are filled in once
/// the length is known (a span's attributes are not walked twice to size it first).
pub(crate) fn append_span(buf: &mut Vec<u8>, span: &SpanFields<'_>) {
    let trace_state = trace_state_header(span.context.trace_state());
    let start = buf.len();
    buf.extend_from_slice(&[0; SPAN_HEADER_ROOM]);
    write_span(buf, span, &trace_state);
    let len = buf.len() - start - SPAN_HEADER_ROOM;
    debug_assert_eq!(len, span_len(span, &trace_state), "span length");
    // ScopeSpans.spans = 2: the key, then the length as a varint (minimal, as any encoder
    // writes it), right before the body.
    let mut header = [0_u8; 11];
    let mut header_len = 1;
    header[0] = (2 << 3 | LEN) as u8;
    let mut rest = len as u64;
    while rest >= 0x80 {
        header[header_len] = (rest as u8) | 0x80;
        rest >>= 7;
        header_len += 1;
    }
    header[header_len] = rest as u8;
    header_len += 1;
    if header_len <= SPAN_HEADER_ROOM {
        // The usual case, a span of 128 bytes to 16 KiB, fills the room exactly; a smaller
        // one closes a one-byte gap.
        let gap = SPAN_HEADER_ROOM - header_len;
        buf[start..start + header_len].copy_from_slice(&header[..header_len]);
        if gap > 0 {
            buf.copy_within(start + SPAN_HEADER_ROOM.., start + header_len);
            buf.truncate(buf.len() - gap);
        }
    } else {
        buf.splice(
            start..start + SPAN_HEADER_ROOM,
            header[..header_len].iter().copied(),
        );
    }
}

/// Bytes kept before a span's body for its key and length: one byte of key and two of length,
/// enough for a span under 16 KiB (a larger one moves its body to make room).
const SPAN_HEADER_ROOM: usize = 3;

/// Splits spans appended by [`append_span`] into runs of at most `max` spans: the run's
/// bytes and its span count.
pub(crate) fn split_spans(mut spans: &[u8], max: usize) -> impl Iterator<Item = (&[u8], usize)> {
    let max = max.max(1);
    std::iter::from_fn(move || {
        if spans.is_empty() {
            return None;
        }
        let (mut end, mut count) = (0, 0);
        while end < spans.len() && count < max {
            // One byte of key (field 2, LEN), the length, the message.
            let mut rest = &spans[end + 1..];
            let before = rest.len();
            let len = prost::encoding::decode_varint(&mut rest)
                .expect("spans appended by append_span have a valid length");
            end += 1 + (before - rest.len()) + usize::try_from(len).unwrap_or(usize::MAX);
            count += 1;
        }
        let (run, rest) = spans.split_at(end.min(spans.len()));
        spans = rest;
        Some((run, count))
    })
}

/// The encoded `ExportTraceServiceRequest` for spans appended by [`append_span`], grouped by
/// instrumentation scope, all of them under `resource`.
pub(crate) fn export_request(
    scopes: &[(&InstrumentationScope, &[u8])],
    resource: &Resource,
) -> Vec<u8> {
    let scope_lens: Vec<usize> = scopes
        .iter()
        .map(|(scope, spans)| scope_spans_len(scope, spans.len()))
        .collect();
    let resource_attributes: Vec<(&opentelemetry::Key, &Value)> = resource.iter().collect();
    let schema_url = resource.schema_url().unwrap_or_default();
    let resource_len = resource_message_len(&resource_attributes);
    let resource_spans_len = message_field_len(1, resource_len)
        + scope_lens
            .iter()
            .map(|len| message_field_len(2, *len))
            .sum::<usize>()
        + string_field_len(3, schema_url);

    let mut buf = Vec::with_capacity(message_field_len(1, resource_spans_len));
    // ExportTraceServiceRequest.resource_spans = 1
    message_header(&mut buf, 1, resource_spans_len);
    // ResourceSpans.resource = 1
    message_header(&mut buf, 1, resource_len);
    for (key, value) in &resource_attributes {
        // Resource.attributes = 1
        key_value(&mut buf, 1, key.as_str(), value);
    }
    for ((scope, spans), len) in scopes.iter().zip(&scope_lens) {
        // ResourceSpans.scope_spans = 2
        message_header(&mut buf, 2, *len);
        scope_spans(&mut buf, scope, spans);
    }
    // ResourceSpans.schema_url = 3
    string_field(&mut buf, 3, schema_url);
    debug_assert_eq!(buf.len(), buf.capacity());
    buf
}

fn span_len(span: &SpanFields<'_>, trace_state: &str) -> usize {
    let parent = span.parent_span_id != SpanId::INVALID;
    message_field_len(1, 16)
        + message_field_len(2, 8)
        + string_field_len(3, trace_state)
        + if parent { message_field_len(4, 8) } else { 0 }
        + string_field_len(5, span.name)
        + uint_field_len(6, kind_number(span.kind))
        + fixed64_field_len(nanos(span.start))
        + fixed64_field_len(nanos(span.end))
        + attributes_len(9, span.attributes)
        + span.packed.map_or(0, |packed| packed_len(9, packed))
        + span.encoded.map_or(0, |encoded| encoded.bytes.len())
        + uint_field_len(10, u64::from(span.dropped_attributes))
        + span
            .events
            .iter()
            .map(|event| message_field_len(11, event_len(event)))
            .sum::<usize>()
        + uint_field_len(12, u64::from(span.dropped_events))
        + span
            .links
            .iter()
            .map(|link| message_field_len(13, link_len(link)))
            .sum::<usize>()
        + uint_field_len(14, u64::from(span.dropped_links))
        + message_field_len(15, status_len(span.status))
        // `flags` is field 16: a two-byte key.
        + 2
        + 4
}

fn write_span(buf: &mut Vec<u8>, span: &SpanFields<'_>, trace_state: &str) {
    // Span: trace_id = 1, span_id = 2, trace_state = 3, parent_span_id = 4
    bytes_field(buf, 1, &span.context.trace_id().to_bytes());
    bytes_field(buf, 2, &span.context.span_id().to_bytes());
    string_field(buf, 3, trace_state);
    if span.parent_span_id != SpanId::INVALID {
        bytes_field(buf, 4, &span.parent_span_id.to_bytes());
    }
    // name = 5, kind = 6, start_time_unix_nano = 7, end_time_unix_nano = 8
    string_field(buf, 5, span.name);
    uint_field(buf, 6, kind_number(span.kind));
    fixed64_field(buf, 7, nanos(span.start));
    fixed64_field(buf, 8, nanos(span.end));
    // attributes = 9, dropped_attributes_count = 10
    for attribute in span.attributes {
        key_value(buf, 9, attribute.key.as_str(), &attribute.value);
    }
    for (key, value) in span.packed.into_iter().flat_map(PackedAttributes::iter) {
        packed_key_value(buf, 9, key, value);
    }
    if let Some(encoded) = span.encoded {
        buf.extend_from_slice(&encoded.bytes);
    }
    uint_field(buf, 10, u64::from(span.dropped_attributes));
    // events = 11 (time_unix_nano = 1, name = 2, attributes = 3, dropped = 4)
    for event in span.events {
        message_header(buf, 11, event_len(event));
        fixed64_field(buf, 1, nanos(event.timestamp));
        string_field(buf, 2, &event.name);
        for attribute in &event.attributes {
            key_value(buf, 3, attribute.key.as_str(), &attribute.value);
        }
        uint_field(buf, 4, u64::from(event.dropped_attributes_count));
    }
    // dropped_events_count = 12
    uint_field(buf, 12, u64::from(span.dropped_events));
    // links = 13
    for link in span.links {
        message_header(buf, 13, link_len(link));
        write_link(buf, link);
    }
    // dropped_links_count = 14, status = 15
    uint_field(buf, 14, u64::from(span.dropped_links));
    message_header(buf, 15, status_len(span.status));
    write_status(buf, span.status);
    // flags = 16
    let flags = span_flags(span.parent_is_remote, span.context.trace_flags().to_u8());
    fixed32_field(buf, 16, flags);
}

/// `ScopeSpans { scope = 1; repeated Span spans = 2; schema_url = 3 }`, the spans already
/// encoded (`spans_len` bytes).
fn scope_spans_len(scope: &InstrumentationScope, spans_len: usize) -> usize {
    message_field_len(1, scope_len(scope))
        + spans_len
        + string_field_len(3, scope.schema_url().unwrap_or_default())
}

fn scope_spans(buf: &mut Vec<u8>, scope: &InstrumentationScope, spans: &[u8]) {
    // ScopeSpans.scope = 1 (InstrumentationScope: name = 1, version = 2, attributes = 3)
    message_header(buf, 1, scope_len(scope));
    string_field(buf, 1, scope.name());
    string_field(buf, 2, scope.version().unwrap_or_default());
    for attribute in scope.attributes() {
        key_value(buf, 3, attribute.key.as_str(), &attribute.value);
    }
    // ScopeSpans.spans = 2, appended by `append_span`
    buf.extend_from_slice(spans);
    // ScopeSpans.schema_url = 3
    string_field(buf, 3, scope.schema_url().unwrap_or_default());
}

fn scope_len(scope: &InstrumentationScope) -> usize {
    string_field_len(1, scope.name())
        + string_field_len(2, scope.version().unwrap_or_default())
        + scope
            .attributes()
            .map(|attribute| {
                message_field_len(3, key_value_len(attribute.key.as_str(), &attribute.value))
            })
            .sum::<usize>()
}

fn resource_message_len(attributes: &[(&opentelemetry::Key, &Value)]) -> usize {
    attributes
        .iter()
        .map(|(key, value)| message_field_len(1, key_value_len(key.as_str(), value)))
        .sum()
}

/// `Event { time_unix_nano = 1; name = 2; attributes = 3; dropped_attributes_count = 4 }`.
fn event_len(event: &opentelemetry::trace::Event) -> usize {
    fixed64_field_len(nanos(event.timestamp))
        + string_field_len(2, &event.name)
        + attributes_len(3, &event.attributes)
        + uint_field_len(4, u64::from(event.dropped_attributes_count))
}

fn link_len(link: &opentelemetry::trace::Link) -> usize {
    let context = &link.span_context;
    message_field_len(1, 16)
        + message_field_len(2, 8)
        + string_field_len(3, &trace_state_header(context.trace_state()))
        + attributes_len(4, &link.attributes)
        + uint_field_len(5, u64::from(link.dropped_attributes_count))
        + 1
        + 4
}

fn write_link(buf: &mut Vec<u8>, link: &opentelemetry::trace::Link) {
    // Link: trace_id = 1, span_id = 2, trace_state = 3, attributes = 4, dropped = 5, flags = 6
    let context = &link.span_context;
    bytes_field(buf, 1, &context.trace_id().to_bytes());
    bytes_field(buf, 2, &context.span_id().to_bytes());
    string_field(buf, 3, &trace_state_header(context.trace_state()));
    for attribute in &link.attributes {
        key_value(buf, 4, attribute.key.as_str(), &attribute.value);
    }
    uint_field(buf, 5, u64::from(link.dropped_attributes_count));
    let flags = span_flags(context.is_remote(), context.trace_flags().to_u8());
    fixed32_field(buf, 6, flags);
}

fn status_len(status: &Status) -> usize {
    // Status: message = 2, code = 3 (UNSET = 0, OK = 1, ERROR = 2)
    match status {
        Status::Unset => 0,
        Status::Ok => uint_field_len(3, 1),
        Status::Error { description } => string_field_len(2, description) + uint_field_len(3, 2),
    }
}

fn write_status(buf: &mut Vec<u8>, status: &Status) {
    match status {
        Status::Unset => {}
        Status::Ok => uint_field(buf, 3, 1),
        Status::Error { description } => {
            string_field(buf, 2, description);
            uint_field(buf, 3, 2);
        }
    }
}

fn span_flags(parent_is_remote: bool, trace_flags: u8) -> u32 {
    let remote = if parent_is_remote { IS_REMOTE } else { 0 };
    u32::from(trace_flags) | HAS_IS_REMOTE | remote
}

fn kind_number(kind: &SpanKind) -> u64 {
    // SPAN_KIND_INTERNAL = 1, SERVER = 2, CLIENT = 3, PRODUCER = 4, CONSUMER = 5
    match kind {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

fn trace_state_header(state: &TraceState) -> Cow<'_, str> {
    if *state == TraceState::NONE {
        Cow::Borrowed("")
    } else {
        Cow::Owned(state.header())
    }
}

fn nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

// --- KeyValue / AnyValue ---------------------------------------------------------------------

fn attributes_len(field: u32, attributes: &[KeyValue]) -> usize {
    attributes
        .iter()
        .map(|attribute| {
            message_field_len(
                field,
                key_value_len(attribute.key.as_str(), &attribute.value),
            )
        })
        .sum()
}

/// `KeyValue { key = 1; AnyValue value = 2 }` (the value is always present).
fn key_value_len(key: &str, value: &Value) -> usize {
    key_value_body_len(key, any_value_len(value))
}

/// The length of a `KeyValue` message whose `AnyValue` takes `value_len` bytes.
fn key_value_body_len(key: &str, value_len: usize) -> usize {
    string_field_len(1, key) + message_field_len(2, value_len)
}

/// A `KeyValue` field up to its `AnyValue`'s body, which takes `value_len` bytes and is
/// written next.
fn key_value_header(buf: &mut Vec<u8>, field: u32, key: &str, value_len: usize) {
    message_header(buf, field, key_value_body_len(key, value_len));
    string_field(buf, 1, key);
    message_header(buf, 2, value_len);
}

fn key_value(buf: &mut Vec<u8>, field: u32, key: &str, value: &Value) {
    if let Value::String(s) = value {
        return string_key_value(buf, field, key, s.as_str());
    }
    key_value_header(buf, field, key, any_value_len(value));
    any_value(buf, value);
}

/// Span attributes encoded once, for spans that carry the same ones over and over (a pool's
/// statement spans): `Span.attributes` fields, ready to copy into a span.
#[derive(Debug)]
pub(crate) struct EncodedAttributes {
    bytes: Vec<u8>,
    count: usize,
}

#[cfg_attr(
    not(feature = "db"),
    allow(
        dead_code,
        reason = "only the database pools encode attributes beforehand"
    )
)]
impl EncodedAttributes {
    pub(crate) fn new(attributes: &[KeyValue]) -> Self {
        let mut bytes = Vec::with_capacity(attributes_len(9, attributes));
        for attribute in attributes {
            key_value(&mut bytes, 9, attribute.key.as_str(), &attribute.value);
        }
        Self {
            bytes,
            count: attributes.len(),
        }
    }

    /// How many attributes there are.
    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// The encoded `Span.attributes` fields.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// The attributes of a [`PackedAttributes`], as `KeyValue` fields: the same bytes as
/// [`key_value`] writes for a `Value::String` or `Value::I64`.
fn packed_len(field: u32, packed: &PackedAttributes) -> usize {
    packed
        .iter()
        .map(|(key, value)| {
            message_field_len(field, key_value_body_len(key, packed_value_len(value)))
        })
        .sum()
}

fn packed_value_len(value: PackedValue<'_>) -> usize {
    match value {
        PackedValue::Str(s) => 1 + len_prefixed(s.len()),
        PackedValue::I64(v) => any_value_len(&Value::I64(v)),
    }
}

fn packed_key_value(buf: &mut Vec<u8>, field: u32, key: &str, value: PackedValue<'_>) {
    match value {
        PackedValue::Str(s) => string_key_value(buf, field, key, s),
        PackedValue::I64(v) => {
            key_value_header(buf, field, key, packed_value_len(value));
            any_value(buf, &Value::I64(v));
        }
    }
}

/// A `KeyValue` field with a string value: the same bytes as [`key_value`] writes for a
/// `Value::String`. Most of a request span's attributes are short strings: when every length
/// fits in one byte, the keys and lengths are written four bytes at a time.
fn string_key_value(buf: &mut Vec<u8>, field: u32, key: &str, value: &str) {
    let value_len = 1 + len_prefixed(value.len());
    let body_len = 1 + len_prefixed(key.len()) + 1 + len_prefixed(value_len);
    if body_len < 0x80 && field < 16 {
        buf.reserve(2 + body_len);
        // The field's key and length, KeyValue.key = 1 and its length.
        buf.extend_from_slice(&[
            (field << 3 | LEN) as u8,
            body_len as u8,
            0x0a,
            key.len() as u8,
        ]);
        buf.extend_from_slice(key.as_bytes());
        // KeyValue.value = 2 and its length, AnyValue.string_value = 1 and its length.
        buf.extend_from_slice(&[0x12, value_len as u8, 0x0a, value.len() as u8]);
        buf.extend_from_slice(value.as_bytes());
    } else {
        key_value_header(buf, field, key, value_len);
        string_always(buf, 1, value);
    }
}

/// `AnyValue { oneof { string = 1; bool = 2; int = 3; double = 4; ArrayValue array = 5 } }`:
/// a oneof member is written even when it holds its type's default.
fn any_value_len(value: &Value) -> usize {
    match value {
        Value::Bool(_) => 2,
        Value::I64(v) => 1 + encoded_len_varint(*v as u64),
        Value::F64(_) => 9,
        Value::String(s) => 1 + len_prefixed(s.as_str().len()),
        Value::Array(array) => 1 + len_prefixed(array_len(array)),
        other => 1 + len_prefixed(other.as_str().len()),
    }
}

fn any_value(buf: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Bool(v) => {
            tag(buf, 2, VARINT);
            buf.push(u8::from(*v));
        }
        Value::I64(v) => {
            tag(buf, 3, VARINT);
            encode_varint(*v as u64, buf);
        }
        Value::F64(v) => {
            tag(buf, 4, FIXED64);
            buf.extend_from_slice(&v.to_le_bytes());
        }
        Value::String(s) => string_always(buf, 1, s.as_str()),
        Value::Array(array) => {
            message_header(buf, 5, array_len(array));
            write_array(buf, array);
        }
        // `Value` is non-exhaustive: a future kind is sent as its text rather than dropped.
        other => string_always(buf, 1, &other.as_str()),
    }
}

/// `ArrayValue { repeated AnyValue values = 1 }`.
fn array_len(array: &Array) -> usize {
    fn sum<T>(values: &[T], len: impl Fn(&T) -> usize) -> usize {
        values.iter().map(|v| 1 + len_prefixed(len(v))).sum()
    }
    match array {
        Array::Bool(values) => sum(values, |_| 2),
        Array::I64(values) => sum(values, |v| 1 + encoded_len_varint(*v as u64)),
        Array::F64(values) => sum(values, |_| 9),
        Array::String(values) => sum(values, |v: &StringValue| 1 + len_prefixed(v.as_str().len())),
        other => 1 + len_prefixed(1 + len_prefixed(other.to_string().len())),
    }
}

fn write_array(buf: &mut Vec<u8>, array: &Array) {
    match array {
        Array::Bool(values) => values
            .iter()
            .for_each(|v| array_item(buf, &Value::Bool(*v))),
        Array::I64(values) => values.iter().for_each(|v| array_item(buf, &Value::I64(*v))),
        Array::F64(values) => values.iter().for_each(|v| array_item(buf, &Value::F64(*v))),
        Array::String(values) => values.iter().for_each(|v| {
            message_header(buf, 1, 1 + len_prefixed(v.as_str().len()));
            string_always(buf, 1, v.as_str());
        }),
        other => array_item(buf, &Value::from(other.to_string())),
    }
}

fn array_item(buf: &mut Vec<u8>, value: &Value) {
    message_header(buf, 1, any_value_len(value));
    any_value(buf, value);
}

// --- protobuf primitives ---------------------------------------------------------------------

/// A varint, written inline: most of those in a span (keys, lengths) take one byte, and
/// `prost`'s generic writer is not inlined.
#[inline]
fn encode_varint(mut value: u64, buf: &mut Vec<u8>) {
    while value >= 0x80 {
        buf.push((value as u8) | 0x80);
        value >>= 7;
    }
    buf.push(value as u8);
}

fn tag(buf: &mut Vec<u8>, field: u32, wire_type: u32) {
    encode_varint(u64::from(field << 3 | wire_type), buf);
}

fn tag_len(field: u32) -> usize {
    encoded_len_varint(u64::from(field << 3))
}

/// A length prefix and the bytes it announces.
fn len_prefixed(len: usize) -> usize {
    encoded_len_varint(len as u64) + len
}

/// A length-delimited field (message, string or bytes) of `len` bytes, key included.
fn message_field_len(field: u32, len: usize) -> usize {
    tag_len(field) + len_prefixed(len)
}

fn message_header(buf: &mut Vec<u8>, field: u32, len: usize) {
    tag(buf, field, LEN);
    encode_varint(len as u64, buf);
}

/// A proto3 string field: absent when empty.
fn string_field_len(field: u32, value: &str) -> usize {
    if value.is_empty() {
        0
    } else {
        tag_len(field) + len_prefixed(value.len())
    }
}

fn string_field(buf: &mut Vec<u8>, field: u32, value: &str) {
    if !value.is_empty() {
        string_always(buf, field, value);
    }
}

fn string_always(buf: &mut Vec<u8>, field: u32, value: &str) {
    message_header(buf, field, value.len());
    buf.extend_from_slice(value.as_bytes());
}

fn bytes_field(buf: &mut Vec<u8>, field: u32, value: &[u8]) {
    message_header(buf, field, value.len());
    buf.extend_from_slice(value);
}

/// A proto3 integer field: absent when zero.
fn uint_field_len(field: u32, value: u64) -> usize {
    if value == 0 {
        0
    } else {
        tag_len(field) + encoded_len_varint(value)
    }
}

fn uint_field(buf: &mut Vec<u8>, field: u32, value: u64) {
    if value != 0 {
        tag(buf, field, VARINT);
        encode_varint(value, buf);
    }
}

/// A proto3 `fixed64` field (fields 1 to 15): absent when zero.
fn fixed64_field_len(value: u64) -> usize {
    if value == 0 { 0 } else { 1 + 8 }
}

fn fixed64_field(buf: &mut Vec<u8>, field: u32, value: u64) {
    if value != 0 {
        tag(buf, field, FIXED64);
        buf.extend_from_slice(&value.to_le_bytes());
    }
}

fn fixed32_field(buf: &mut Vec<u8>, field: u32, value: u32) {
    tag(buf, field, FIXED32);
    buf.extend_from_slice(&value.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use opentelemetry::trace::{TraceFlags, TraceId};
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
    use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
    use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};
    use proptest::prelude::*;
    use prost::Message as _;

    use super::*;

    /// Decodes our bytes and compares them with what `opentelemetry-proto` makes of the same
    /// batch: the collector sees the same message either way.
    /// What the export path does with a batch: each span appended to its scope's bytes, one
    /// request for all of them.
    fn encode_batch(batch: &[SpanData], resource: &Resource) -> Vec<u8> {
        let mut scopes: Vec<(&InstrumentationScope, Vec<u8>)> = Vec::new();
        for span in batch {
            let at = match scopes
                .iter()
                .position(|(scope, _)| **scope == span.instrumentation_scope)
            {
                Some(at) => at,
                None => {
                    scopes.push((&span.instrumentation_scope, Vec::new()));
                    scopes.len() - 1
                }
            };
            append_span(&mut scopes[at].1, &SpanFields::from(span));
        }
        let scopes: Vec<(&InstrumentationScope, &[u8])> = scopes
            .iter()
            .map(|(scope, spans)| (*scope, spans.as_slice()))
            .collect();
        export_request(&scopes, resource)
    }

    fn assert_same_as_reference(batch: &[SpanData], resource: &Resource) {
        let ours = ExportTraceServiceRequest::decode(&encode_batch(batch, resource)[..])
            .expect("our bytes decode as an ExportTraceServiceRequest");
        let reference = ExportTraceServiceRequest {
            resource_spans: group_spans_by_resource_and_scope(
                batch.to_vec(),
                &ResourceAttributesWithSchema::from(resource),
            ),
        };
        assert_eq!(ours, reference);
        assert_eq!(
            encode_batch(batch, resource).len(),
            reference.encoded_len(),
            "same fields, same size"
        );
    }

    fn context(
        trace: u128,
        span: u64,
        sampled: bool,
        remote: bool,
        state: TraceState,
    ) -> SpanContext {
        let flags = if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        SpanContext::new(
            TraceId::from(trace),
            SpanId::from(span),
            flags,
            remote,
            state,
        )
    }

    fn span(name: &'static str, scope: &InstrumentationScope) -> SpanData {
        let start = UNIX_EPOCH + Duration::from_nanos(1_763_800_000_123_456_789);
        SpanData {
            span_context: context(
                0x6b03_4e9f_33e2_d95d_01e8_f969_af77_7641,
                0x53995c3f42cd8ad8,
                true,
                false,
                TraceState::NONE,
            ),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Server,
            name: name.into(),
            start_time: start,
            end_time: start + Duration::from_micros(1234),
            attributes: vec![
                KeyValue::new("http.request.method", "GET"),
                KeyValue::new("http.route", "/users/{id}"),
                KeyValue::new("http.response.status_code", 200_i64),
            ],
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::Unset,
            instrumentation_scope: scope.clone(),
        }
    }

    fn resource() -> Resource {
        Resource::builder_empty()
            .with_attributes([
                KeyValue::new("service.name", "users-api"),
                KeyValue::new("cloud.platform", "aws_app_runner"),
                KeyValue::new("process.pid", 4242_i64),
            ])
            .build()
    }

    #[test]
    fn a_typical_server_span_matches_the_reference_encoding() {
        let scope = InstrumentationScope::builder("apprunner")
            .with_version("0.1.0")
            .build();
        assert_same_as_reference(&[span("GET /users/{id}", &scope)], &resource());
    }

    #[test]
    fn every_span_field_matches_the_reference_encoding() {
        let kit = InstrumentationScope::builder("apprunner")
            .with_version("0.1.0")
            .with_schema_url("https://opentelemetry.io/schemas/1.37.0")
            .with_attributes([KeyValue::new("scope.attr", true)])
            .build();
        let other = InstrumentationScope::builder("tracing-opentelemetry").build();

        let mut child = span("SELECT users", &kit);
        child.span_kind = SpanKind::Client;
        child.parent_span_id = SpanId::from(0x1122334455667788);
        child.status = Status::error("relation \"users\" does not exist");
        child.dropped_attributes_count = 3;
        child.attributes = vec![
            KeyValue::new("empty", ""),
            KeyValue::new("unicode", "zürich – 東京 🚀"),
            KeyValue::new("negative", -42_i64),
            KeyValue::new("min", i64::MIN),
            KeyValue::new("zero", 0_i64),
            KeyValue::new("pi", std::f64::consts::PI),
            KeyValue::new("nan_free_zero", 0.0_f64),
            KeyValue::new("yes", true),
            KeyValue::new("no", false),
            KeyValue::new("bools", Value::Array(vec![true, false].into())),
            KeyValue::new("ints", Value::Array(vec![1_i64, -1, i64::MAX].into())),
            KeyValue::new("floats", Value::Array(vec![1.5_f64, -0.25].into())),
            KeyValue::new(
                "strings",
                Value::Array(vec![StringValue::from("a"), StringValue::from("")].into()),
            ),
            KeyValue::new("empty_array", Value::Array(Vec::<i64>::new().into())),
            KeyValue::new("long", "x".repeat(300)),
        ];
        let mut events = SpanEvents::default();
        events.events.push(Event::new(
            "exception",
            child.start_time + Duration::from_micros(10),
            vec![
                KeyValue::new("exception.type", "panic"),
                KeyValue::new("exception.message", "boom"),
            ],
            1,
        ));
        events.events.push(Event::with_name("no attributes"));
        events.dropped_count = 2;
        child.events = events;
        let mut links = SpanLinks::default();
        links.links.push(Link::new(
            context(
                7,
                8,
                false,
                true,
                TraceState::from_key_value([("xray", "abc")]).unwrap(),
            ),
            vec![KeyValue::new("link.kind", "follows")],
            4,
        ));
        links.dropped_count = 5;
        child.links = links;

        let mut remote_child = span("GET /healthz", &other);
        remote_child.parent_span_id = SpanId::from(0x53995c3f42cd8ad8);
        remote_child.parent_span_is_remote = true;
        remote_child.status = Status::Ok;
        remote_child.span_context = context(
            9,
            10,
            false,
            false,
            TraceState::from_key_value([("vendor", "value"), ("other", "x")]).unwrap(),
        );
        remote_child.attributes.clear();

        let mut kinds = Vec::new();
        for kind in [SpanKind::Internal, SpanKind::Producer, SpanKind::Consumer] {
            let mut s = span("kind", &kit);
            s.span_kind = kind;
            kinds.push(s);
        }

        let mut batch = vec![span("GET /users/{id}", &kit), child, remote_child];
        batch.extend(kinds);
        batch.push(span("interleaved scope", &other));
        let with_schema = Resource::builder_empty()
            .with_schema_url(
                [KeyValue::new("service.name", "users-api")],
                "https://opentelemetry.io/schemas/1.37.0",
            )
            .build();
        assert_same_as_reference(&batch, &with_schema);
        assert_same_as_reference(&batch, &Resource::builder_empty().build());
    }

    #[test]
    fn appended_spans_split_into_runs_at_span_boundaries() {
        let scope = InstrumentationScope::builder("apprunner").build();
        let mut spans = Vec::new();
        let mut names = Vec::new();
        for i in 0..5 {
            let mut s = span("x", &scope);
            // Spans of different sizes, one longer than 127 bytes of name (a 2-byte length).
            s.name = "n".repeat(1 + i * 60).into();
            names.push(s.name.to_string());
            append_span(&mut spans, &SpanFields::from(&s));
        }
        let runs: Vec<(&[u8], usize)> = split_spans(&spans, 2).collect();
        assert_eq!(runs.iter().map(|(_, n)| *n).collect::<Vec<_>>(), [2, 2, 1]);
        let joined: Vec<u8> = runs
            .iter()
            .flat_map(|(run, _)| run.iter().copied())
            .collect();
        assert_eq!(joined, spans, "runs are the spans, in order, nothing lost");
        let mut decoded = Vec::new();
        for (run, _) in &runs {
            let request = export_request(&[(&scope, run)], &resource());
            let request = ExportTraceServiceRequest::decode(&request[..]).expect("decodes");
            decoded.extend(
                request.resource_spans[0].scope_spans[0]
                    .spans
                    .iter()
                    .map(|s| s.name.clone()),
            );
        }
        assert_eq!(decoded, names);
        assert_eq!(split_spans(&[], 2).count(), 0);
        assert_eq!(
            split_spans(&spans, 0).count(),
            5,
            "at least one span per run"
        );
    }

    #[test]
    fn spans_of_every_length_prefix_size_match_the_reference_encoding() {
        // `append_span` keeps three bytes for the key and length: a span under 128 bytes
        // (one-byte length) closes a gap, one from 16 KiB (three-byte length) or 2 MiB (four)
        // moves its body. Every size decodes as the reference encodes it, appended after
        // other spans.
        let scope = InstrumentationScope::builder("apprunner").build();
        let mut batch = Vec::new();
        for attribute_bytes in [0, 40, 100, 16 * 1024, 2 * 1024 * 1024] {
            let mut s = span("s", &scope);
            s.attributes.clear();
            if attribute_bytes > 0 {
                s.attributes
                    .push(KeyValue::new("x", "v".repeat(attribute_bytes)));
            }
            batch.push(s);
        }
        let mut lengths = Vec::new();
        for s in &batch {
            let mut one = Vec::new();
            append_span(&mut one, &SpanFields::from(s));
            lengths.push(one.len());
        }
        assert!(lengths[0] < 128 && lengths[2] > 130, "{lengths:?}");
        assert!(lengths[3] > 16 * 1024 && lengths[4] > 2 * 1024 * 1024);
        assert_same_as_reference(&batch, &resource());
    }

    #[test]
    fn an_empty_batch_is_a_resource_without_spans() {
        assert_same_as_reference(&[], &resource());
    }

    proptest! {
        #[test]
        fn any_attribute_values_match_the_reference_encoding(
            name in ".{0,40}",
            strings in proptest::collection::vec(("[a-z.]{1,20}", ".{0,200}"), 0..12),
            ints in proptest::collection::vec(any::<i64>(), 0..6),
            floats in proptest::collection::vec(any::<f64>().prop_filter("NaN is not equal to itself", |f| !f.is_nan()), 0..4),
            start in any::<u64>(),
        ) {
            let scope = InstrumentationScope::builder("apprunner").build();
            let mut s = span("x", &scope);
            s.name = name.into();
            s.start_time = UNIX_EPOCH + Duration::from_nanos(start);
            s.attributes = strings
                .into_iter()
                .map(|(k, v)| KeyValue::new(k, v))
                .chain(ints.iter().map(|i| KeyValue::new("int", *i)))
                .chain(floats.iter().map(|f| KeyValue::new("float", *f)))
                .chain([KeyValue::new("ints", Value::Array(ints.clone().into()))])
                .collect();
            assert_same_as_reference(&[s], &resource());
        }
    }
}
