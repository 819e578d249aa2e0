//! A replay of how the collector's X-Ray exporter names spans, to check the service map a run
//! would draw without an AWS account.
//!
//! The ADOT / OpenTelemetry collector's `awsxrayexporter` turns each span into one X-Ray segment
//! or subsegment, or into two for a client-like local root, and names it (functions
//! `MakeSegmentsFromSpan` and `MakeSegment` in
//! `exporter/awsxrayexporter/internal/translator/segment.go` of
//! open-telemetry/opentelemetry-collector-contrib). Segment names and the names of remote
//! subsegments become the nodes of the X-Ray service map: a span the exporter names after
//! itself is a bogus node. [`segments`] replays those rules for one span, [`service_map`] for a
//! whole run.
//!
//! The rules replayed, in the exporter's order:
//!
//! - **Type**: a subsegment iff the kind is not SERVER and the span has a parent.
//! - **Local roots** (`aws.span.kind = "LOCAL_ROOT"`): an INTERNAL or SERVER local root is one
//!   segment; any other kind (CLIENT, PRODUCER, CONSUMER, UNSPECIFIED) is a service segment
//!   (named by `aws.local.service`, `aws.remote.*` ignored) plus a dependency subsegment
//!   (named by `aws.remote.service`, namespace `remote` unless it had one).
//! - **Name**, first found: `aws.local.service` (SERVER, or INTERNAL local root);
//!   `aws.remote.service` (CLIENT, PRODUCER, CONSUMER; `AWS.SDK.` or `AWS::` trimmed when
//!   `rpc.system = "aws-api"`); `peer.service`; `aws.service`; `db.name` (plus `@host` of
//!   `db.connection_string`, `jdbc:` trimmed); the resource's `service.name` (SERVER only);
//!   `rpc.service`; `http.host`; `net.peer.name`; the span name with the characters X-Ray
//!   refuses removed, cut to 200 bytes, `span` if nothing is left.
//! - **Namespace**: `aws` for `rpc.system = "aws-api"` or a name from `aws.service`, else
//!   `remote` for CLIENT, and for a PRODUCER or CONSUMER subsegment carrying
//!   `aws.remote.service`; none on a segment made for a local root.
//!
//! Like the exporter, an attribute that is present but not a string reads as an empty string,
//! which lets the next rule decide. One deliberate difference: the exporter cuts a long name at
//! byte 200 even inside a UTF-8 sequence; the replay cuts at the last character boundary before.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use regex::Regex;

use crate::otlp::{AttrValue, SpanKind, SpanRecord};

/// `aws.span.kind`: `LOCAL_ROOT` marks the first span of a service in a trace.
pub const AWS_SPAN_KIND: &str = "aws.span.kind";
/// The value of [`AWS_SPAN_KIND`] that makes a span a local root.
pub const LOCAL_ROOT: &str = "LOCAL_ROOT";
/// `aws.local.service`: the service's own name, for SERVER spans and INTERNAL local roots.
pub const AWS_LOCAL_SERVICE: &str = "aws.local.service";
/// `aws.remote.service`: the called service's name, for CLIENT, PRODUCER and CONSUMER spans.
pub const AWS_REMOTE_SERVICE: &str = "aws.remote.service";

/// What the exporter leaves out of the service segment of a client-like local root.
const REMOVED_FROM_SERVICE_SEGMENT: [&str; 4] = [
    AWS_REMOTE_SERVICE,
    "aws.remote.operation",
    "remoteTarget",
    "K8s.RemoteNamespace",
];

/// The longest segment name, in bytes.
const MAX_NAME_LEN: usize = 200;

/// The exporter's `reInvalidSpanCharacters`, verbatim: everything but a space, ASCII digits,
/// Unicode letters and `N_.:/%&#=+-@` goes (the `N` is the exporter's typo for `\p{N}`; a
/// backslash goes too although X-Ray's documentation allows it).
static INVALID_NAME_CHARS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[^ 0-9\p{L}N_.:/%&#=+\-@]").expect("the exporter's pattern compiles")
});

/// Whether the exporter makes a segment or a subsegment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SegmentKind {
    /// A top-level segment: a service node of the map.
    Segment,
    /// A subsegment: a node of the map only with namespace `remote` or `aws`.
    Subsegment,
}

/// One X-Ray document the exporter would make from a span, reduced to what draws the map.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Segment {
    /// The segment's name: a node's name on the service map.
    pub name: String,
    /// Segment or subsegment.
    pub kind: SegmentKind,
    /// `remote` or `aws` for a call to another service, `None` otherwise.
    pub namespace: Option<String>,
}

impl Segment {
    /// Whether the X-Ray service map draws a downstream node for this subsegment.
    pub fn is_remote_node(&self) -> bool {
        self.kind == SegmentKind::Subsegment
            && matches!(self.namespace.as_deref(), Some("remote" | "aws"))
    }
}

/// The nodes of the X-Ray service map a set of spans would draw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceMap {
    /// The names of the segments: the services that emitted the spans.
    pub services: BTreeSet<String>,
    /// The names of subsegments with namespace `remote` or `aws`: downstream nodes.
    pub remotes: BTreeSet<String>,
}

/// The segments the exporter makes from `span`, in the exporter's order (for a client-like
/// local root: the dependency subsegment, then the service segment).
///
/// # Examples
///
/// ```no_run
/// # fn demo(span: &apprunner_kit_tests::SpanRecord) {
/// use apprunner_kit_tests::xray::{SegmentKind, segments};
/// let made = segments(span);
/// assert!(made.iter().all(|s| s.kind == SegmentKind::Subsegment || s.name == "users-api"));
/// # }
/// ```
pub fn segments(span: &SpanRecord) -> Vec<Segment> {
    if !is_local_root(span) {
        let mut segment = make_segment(span, &View::of(span));
        if matches!(
            span.kind,
            SpanKind::Client | SpanKind::Producer | SpanKind::Consumer
        ) && segment.kind == SegmentKind::Subsegment
            && segment.namespace.is_none()
            && span.attr(AWS_REMOTE_SERVICE).is_some()
        {
            segment.namespace = Some("remote".to_owned());
        }
        return vec![segment];
    }
    if matches!(span.kind, SpanKind::Server | SpanKind::Internal) {
        let mut segment = make_segment(span, &View::of(span));
        segment.kind = SegmentKind::Segment;
        segment.namespace = None;
        return vec![segment];
    }

    // A client-like local root: a dependency subsegment under a made-up service segment.
    let mut dependency = make_segment(span, &View::of(span).with_parent());
    dependency.kind = SegmentKind::Subsegment;
    dependency
        .namespace
        .get_or_insert_with(|| "remote".to_owned());
    if let Some(remote) = span.attr(AWS_REMOTE_SERVICE) {
        dependency.name = trim_aws_sdk_prefix(str_of(remote), span);
    }

    let service_view = View::of(span).without(&REMOVED_FROM_SERVICE_SEGMENT);
    let mut service = make_segment(span, &service_view);
    if let Some(local) = span.attr(AWS_LOCAL_SERVICE) {
        service.name = str_of(local).to_owned();
    }
    service.kind = SegmentKind::Segment;
    service.namespace = None;
    vec![dependency, service]
}

/// The service map of a run: every span's [`segments`], segment names as services, remote
/// subsegment names as downstream nodes.
///
/// # Examples
///
/// ```no_run
/// # fn demo(receiver: &apprunner_kit_tests::OtlpReceiver) {
/// let map = apprunner_kit_tests::xray::service_map(&receiver.spans());
/// assert_eq!(map.services.into_iter().collect::<Vec<_>>(), ["users-api"]);
/// # }
/// ```
pub fn service_map<'a>(spans: impl IntoIterator<Item = &'a SpanRecord>) -> ServiceMap {
    let mut map = ServiceMap::default();
    for span in spans {
        for segment in segments(span) {
            if segment.kind == SegmentKind::Segment {
                map.services.insert(segment.name);
            } else if segment.is_remote_node() {
                map.remotes.insert(segment.name);
            }
        }
    }
    map
}

/// The exporter's `isLocalRoot`.
fn is_local_root(span: &SpanRecord) -> bool {
    span.attr(AWS_SPAN_KIND).map(str_of) == Some(LOCAL_ROOT)
}

/// The span as `MakeSegment` sees it: its attributes minus some keys, and maybe a parent set
/// by the exporter.
struct View<'a> {
    span: &'a SpanRecord,
    removed: &'a [&'a str],
    forced_parent: bool,
}

impl<'a> View<'a> {
    fn of(span: &'a SpanRecord) -> Self {
        Self {
            span,
            removed: &[],
            forced_parent: false,
        }
    }

    fn with_parent(mut self) -> Self {
        self.forced_parent = true;
        self
    }

    fn without(mut self, keys: &'a [&'a str]) -> Self {
        self.removed = keys;
        self
    }

    fn has_parent(&self) -> bool {
        self.forced_parent || self.span.parent_span_id.is_some()
    }

    /// A present attribute, read as the exporter's `Value.Str()` does (non-strings read `""`).
    fn get(&self, key: &str) -> Option<&'a str> {
        if self.removed.contains(&key) {
            return None;
        }
        self.span.attributes.get(key).map(str_of)
    }
}

/// The exporter's `MakeSegment`, reduced to type, name and namespace.
fn make_segment(span: &SpanRecord, view: &View<'_>) -> Segment {
    let kind = if span.kind != SpanKind::Server && view.has_parent() {
        SegmentKind::Subsegment
    } else {
        SegmentKind::Segment
    };
    let client_like = matches!(
        span.kind,
        SpanKind::Client | SpanKind::Producer | SpanKind::Consumer
    );
    let mut name = String::new();
    let mut namespace = String::new();

    if span.kind == SpanKind::Server
        && let Some(local) = view.get(AWS_LOCAL_SERVICE)
    {
        name = local.to_owned();
    }
    if span.kind == SpanKind::Internal
        && view.get(AWS_SPAN_KIND) == Some(LOCAL_ROOT)
        && let Some(local) = view.get(AWS_LOCAL_SERVICE)
    {
        name = local.to_owned();
    }
    if client_like && let Some(remote) = view.get(AWS_REMOTE_SERVICE) {
        name = trim_aws_sdk_prefix(remote, span);
    }
    if name.is_empty()
        && let Some(peer) = view.get("peer.service")
    {
        name = peer.to_owned();
    }
    if is_aws_sdk_span(span) {
        namespace = "aws".to_owned();
    }
    if name.is_empty()
        && let Some(service) = view.get("aws.service")
    {
        name = service.to_owned();
        if namespace.is_empty() {
            namespace = "aws".to_owned();
        }
    }
    if name.is_empty()
        && let Some(db) = view.get("db.name")
    {
        name = db.to_owned();
        if let Some(host) = view.get("db.connection_string").and_then(connection_host) {
            name = format!("{name}@{host}");
        }
    }
    if name.is_empty()
        && span.kind == SpanKind::Server
        && let Some(service) = span.resource.get("service.name")
    {
        name = str_of(service).to_owned();
    }
    for key in ["rpc.service", "http.host", "net.peer.name"] {
        if name.is_empty()
            && let Some(value) = view.get(key)
        {
            name = value.to_owned();
        }
    }
    if name.is_empty() {
        name = fix_segment_name(&span.name);
    }
    if namespace.is_empty() && span.kind == SpanKind::Client {
        namespace = "remote".to_owned();
    }
    Segment {
        name,
        kind,
        namespace: (!namespace.is_empty()).then_some(namespace),
    }
}

/// An attribute value as the exporter's `Value.Str()`: the string, or `""` for other types.
fn str_of(value: &AttrValue) -> &str {
    value.as_str().unwrap_or_default()
}

/// The exporter's `isAwsSdkSpan`: `rpc.system` is `aws-api`.
fn is_aws_sdk_span(span: &SpanRecord) -> bool {
    span.attr("rpc.system").map(str_of) == Some("aws-api")
}

/// The exporter's `trimAwsSdkPrefix`.
fn trim_aws_sdk_prefix(name: &str, span: &SpanRecord) -> String {
    if is_aws_sdk_span(span) {
        for prefix in ["AWS.SDK.", "AWS::"] {
            if let Some(rest) = name.strip_prefix(prefix) {
                return rest.to_owned();
            }
        }
    }
    name.to_owned()
}

/// The host of a `db.connection_string` (`jdbc:` trimmed), as Go's `url.Parse(..).Hostname()`.
fn connection_host(connection: &str) -> Option<String> {
    let url = url::Url::parse(connection.strip_prefix("jdbc:").unwrap_or(connection)).ok()?;
    let host = url.host_str()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    (!host.is_empty()).then(|| host.to_owned())
}

/// The exporter's `fixSegmentName`: the characters X-Ray refuses removed, at most 200 bytes,
/// `span` when nothing is left.
pub fn fix_segment_name(name: &str) -> String {
    let mut fixed = INVALID_NAME_CHARS.replace_all(name, "").into_owned();
    if fixed.len() > MAX_NAME_LEN {
        let mut end = MAX_NAME_LEN;
        while !fixed.is_char_boundary(end) {
            end -= 1;
        }
        fixed.truncate(end);
    } else if fixed.is_empty() {
        fixed = "span".to_owned();
    }
    fixed
}

/// The start of the `X-Amzn-Trace-Id` a propagator writes for a sampled span `span_id` of
/// trace `trace_id` (32 hex digits): `Root=1-xxxxxxxx-yyyy…;Parent=<span id>;Sampled=1`.
///
/// # Examples
///
/// ```
/// let prefix = apprunner_kit_tests::xray::trace_header_prefix(
///     "5759e988bd862e3fe1be46a994272793",
///     "53995c3f42cd8ad8",
/// );
/// assert_eq!(
///     prefix,
///     "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
/// );
/// ```
pub fn trace_header_prefix(trace_id: &str, span_id: &str) -> String {
    let (epoch, rest) = trace_id.split_at(8);
    format!("Root=1-{epoch}-{rest};Parent={span_id};Sampled=1")
}
