//! What the receiver records: spans (converted from the OTLP protobuf messages) and export calls.

use std::collections::BTreeMap;
use std::fmt;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1 as proto;

/// The OTLP transport an export call arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// OTLP/gRPC (`TraceService/Export`).
    Grpc,
    /// OTLP/HTTP with a protobuf body (`POST /v1/traces`).
    HttpProtobuf,
}

/// One export call as the receiver saw it (recorded whatever the [`ReceiverBehavior`](super::ReceiverBehavior)).
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
    /// The request body's compression, as named by its `grpc-encoding` (gRPC) or
    /// `Content-Encoding` (HTTP) header, lowercase: `Some("gzip")`; `None` when uncompressed
    /// (no header, or `identity`).
    pub compression: Option<String>,
}

impl ExportRequestInfo {
    /// A header value by (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// Whether the request body was compressed (see [`compression`](Self::compression)).
    pub fn is_compressed(&self) -> bool {
        self.compression.is_some()
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

pub(super) fn convert(
    request: ExportTraceServiceRequest,
    protocol: OtlpProtocol,
) -> Vec<SpanRecord> {
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
