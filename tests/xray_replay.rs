//! The X-Ray naming replay (`apprunner_kit_tests::xray`), one test per rule of the collector's
//! exporter (`segment.go`: `MakeSegmentsFromSpan`, `MakeSegment`, `fixSegmentName`).

use std::collections::BTreeMap;

use apprunner_kit_tests::xray::{Segment, SegmentKind, fix_segment_name, segments, service_map};
use apprunner_kit_tests::{AttrValue, OtlpProtocol, SpanKind, SpanRecord, SpanStatus, StatusCode};

const PARENT: &str = "00f067aa0ba902b7";

/// A span named `name` of `kind`, with a parent, the resource naming `users-api`, no attribute.
fn span(name: &str, kind: SpanKind) -> SpanRecord {
    SpanRecord {
        trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
        span_id: "b7ad6b7169203331".into(),
        parent_span_id: Some(PARENT.into()),
        trace_state: String::new(),
        name: name.into(),
        kind,
        attributes: BTreeMap::new(),
        resource: BTreeMap::from([("service.name".into(), AttrValue::Str("users-api".into()))]),
        scope_name: "test".into(),
        scope_version: String::new(),
        status: SpanStatus {
            code: StatusCode::Unset,
            message: String::new(),
        },
        events: Vec::new(),
        links: Vec::new(),
        start_time_unix_nano: 1,
        end_time_unix_nano: 2,
        protocol: OtlpProtocol::Grpc,
    }
}

fn root(mut s: SpanRecord) -> SpanRecord {
    s.parent_span_id = None;
    s
}

fn with(mut s: SpanRecord, attrs: &[(&str, &str)]) -> SpanRecord {
    for (k, v) in attrs {
        s.attributes
            .insert((*k).into(), AttrValue::Str((*v).into()));
    }
    s
}

fn local_root(s: SpanRecord) -> SpanRecord {
    with(s, &[("aws.span.kind", "LOCAL_ROOT")])
}

fn one(s: &SpanRecord) -> Segment {
    let made = segments(s);
    assert_eq!(made.len(), 1, "{made:?}");
    made.into_iter().next().unwrap()
}

fn seg(name: &str, kind: SegmentKind, namespace: Option<&str>) -> Segment {
    Segment {
        name: name.into(),
        kind,
        namespace: namespace.map(Into::into),
    }
}

// --- segment or subsegment ---------------------------------------------------------------------

#[test]
fn a_child_that_is_not_server_is_a_subsegment() {
    for kind in [SpanKind::Internal, SpanKind::Client, SpanKind::Producer] {
        assert_eq!(
            one(&span("x", kind)).kind,
            SegmentKind::Subsegment,
            "{kind:?}"
        );
    }
}

#[test]
fn a_server_span_is_a_segment_even_with_a_parent() {
    assert_eq!(
        one(&span("GET /users", SpanKind::Server)).kind,
        SegmentKind::Segment
    );
}

#[test]
fn a_parentless_span_of_any_kind_is_a_segment_named_by_the_fallbacks() {
    // The bug this replay exists for: a start-up root span becomes a node named after itself.
    assert_eq!(
        one(&root(span("secrets bootstrap", SpanKind::Internal))),
        seg("secrets bootstrap", SegmentKind::Segment, None)
    );
    // The sample's Aurora node: a parentless SQL span.
    let sql = root(with(
        span("SELECT", SpanKind::Client),
        &[("peer.service", "users@aurora.example")],
    ));
    assert_eq!(
        one(&sql),
        seg("users@aurora.example", SegmentKind::Segment, Some("remote"))
    );
}

// --- local roots -------------------------------------------------------------------------------

#[test]
fn an_internal_local_root_is_one_segment_named_by_aws_local_service() {
    let s = local_root(with(
        root(span("secrets bootstrap", SpanKind::Internal)),
        &[
            ("aws.local.service", "users-api"),
            ("peer.service", "other"),
        ],
    ));
    assert_eq!(segments(&s), [seg("users-api", SegmentKind::Segment, None)]);
    // Even with a parent (a local root continuing a trace), and without a namespace.
    let mut child = s.clone();
    child.parent_span_id = Some(PARENT.into());
    child
        .attributes
        .insert("rpc.system".into(), AttrValue::Str("aws-api".into()));
    assert_eq!(
        segments(&child),
        [seg("users-api", SegmentKind::Segment, None)]
    );
}

#[test]
fn a_server_local_root_is_one_segment() {
    let s = local_root(with(
        span("GET /users", SpanKind::Server),
        &[("aws.local.service", "users-api")],
    ));
    assert_eq!(segments(&s), [seg("users-api", SegmentKind::Segment, None)]);
}

#[test]
fn a_client_local_root_is_a_service_segment_and_a_dependency_subsegment() {
    let s = local_root(with(
        root(span("SecretsManager.GetSecretValue", SpanKind::Client)),
        &[
            ("aws.local.service", "users-api"),
            ("aws.remote.service", "AWS::SecretsManager"),
            ("rpc.system", "aws-api"),
        ],
    ));
    assert_eq!(
        segments(&s),
        [
            seg("SecretsManager", SegmentKind::Subsegment, Some("aws")),
            seg("users-api", SegmentKind::Segment, None),
        ]
    );
}

#[test]
fn the_dependency_subsegment_of_a_local_root_defaults_to_namespace_remote() {
    // A CONSUMER local root: MakeSegment gives no namespace, the exporter adds `remote`.
    let s = local_root(with(
        root(span("process", SpanKind::Consumer)),
        &[
            ("aws.local.service", "users-api"),
            ("peer.service", "queue"),
        ],
    ));
    assert_eq!(
        segments(&s),
        [
            seg("queue", SegmentKind::Subsegment, Some("remote")),
            seg("users-api", SegmentKind::Segment, None),
        ]
    );
}

#[test]
fn the_service_segment_of_a_local_root_ignores_aws_remote_service() {
    // Without aws.local.service the service segment falls back, but never to the remote.
    let s = local_root(with(
        root(span("call", SpanKind::Client)),
        &[("aws.remote.service", "billing")],
    ));
    assert_eq!(
        segments(&s),
        [
            seg("billing", SegmentKind::Subsegment, Some("remote")),
            seg("call", SegmentKind::Segment, None),
        ]
    );
}

#[test]
fn local_root_needs_the_exact_value() {
    let s = with(
        root(span("startup", SpanKind::Internal)),
        &[
            ("aws.span.kind", "local_root"),
            ("aws.local.service", "users-api"),
        ],
    );
    assert_eq!(one(&s).name, "startup");
}

// --- names, in order -----------------------------------------------------------------------------

#[test]
fn aws_local_service_names_a_server_span_before_everything() {
    let s = with(
        span("GET /users", SpanKind::Server),
        &[
            ("aws.local.service", "users-api-local"),
            ("peer.service", "peer"),
        ],
    );
    assert_eq!(one(&s).name, "users-api-local");
}

#[test]
fn aws_local_service_is_ignored_on_other_spans() {
    let internal = with(
        root(span("startup", SpanKind::Internal)),
        &[("aws.local.service", "users-api")],
    );
    assert_eq!(one(&internal).name, "startup");
    let client = with(
        span("GET", SpanKind::Client),
        &[
            ("aws.local.service", "users-api"),
            ("http.host", "api.example"),
        ],
    );
    assert_eq!(one(&client).name, "api.example");
}

#[test]
fn aws_remote_service_names_client_like_spans_before_peer_service() {
    for kind in [SpanKind::Client, SpanKind::Producer, SpanKind::Consumer] {
        let s = with(
            span("x", kind),
            &[("aws.remote.service", "billing"), ("peer.service", "peer")],
        );
        assert_eq!(one(&s).name, "billing", "{kind:?}");
    }
    let server = with(
        span("x", SpanKind::Server),
        &[("aws.remote.service", "billing"), ("peer.service", "peer")],
    );
    assert_eq!(one(&server).name, "peer");
}

#[test]
fn aws_sdk_prefixes_are_trimmed_only_for_aws_api_spans() {
    let sdk = |name: &str, system: &str| {
        one(&with(
            span("x", SpanKind::Client),
            &[("aws.remote.service", name), ("rpc.system", system)],
        ))
        .name
    };
    assert_eq!(sdk("AWS.SDK.SecretsManager", "aws-api"), "SecretsManager");
    assert_eq!(sdk("AWS::S3", "aws-api"), "S3");
    assert_eq!(sdk("AWS::S3", "grpc"), "AWS::S3");
}

#[test]
fn peer_service_comes_before_aws_service_db_name_and_rpc_service() {
    let s = with(
        span("SELECT users", SpanKind::Client),
        &[
            ("peer.service", "users@db.internal"),
            ("aws.service", "RDS"),
            ("db.name", "users"),
            ("rpc.service", "Pg"),
        ],
    );
    assert_eq!(
        one(&s),
        seg("users@db.internal", SegmentKind::Subsegment, Some("remote"))
    );
}

#[test]
fn aws_service_names_the_span_in_namespace_aws() {
    let s = with(
        span("S3.GetObject", SpanKind::Client),
        &[("aws.service", "S3"), ("db.name", "users")],
    );
    assert_eq!(one(&s), seg("S3", SegmentKind::Subsegment, Some("aws")));
}

#[test]
fn rpc_system_aws_api_puts_any_span_in_namespace_aws() {
    let s = with(
        span("SecretsManager.GetSecretValue", SpanKind::Client),
        &[
            ("rpc.system", "aws-api"),
            ("rpc.service", "SecretsManager"),
            ("rpc.method", "GetSecretValue"),
        ],
    );
    assert_eq!(
        one(&s),
        seg("SecretsManager", SegmentKind::Subsegment, Some("aws"))
    );
    let internal = with(span("x", SpanKind::Internal), &[("rpc.system", "aws-api")]);
    assert_eq!(one(&internal).namespace.as_deref(), Some("aws"));
}

#[test]
fn db_name_adds_the_host_of_db_connection_string() {
    let name = |attrs: &[(&str, &str)]| one(&with(span("SELECT", SpanKind::Client), attrs)).name;
    assert_eq!(name(&[("db.name", "users")]), "users");
    assert_eq!(
        name(&[
            ("db.name", "users"),
            ("db.connection_string", "postgresql://db.internal:5432")
        ]),
        "users@db.internal"
    );
    assert_eq!(
        name(&[
            ("db.name", "users"),
            (
                "db.connection_string",
                "jdbc:mysql://db.dev.example.com:3306"
            )
        ]),
        "users@db.dev.example.com"
    );
    assert_eq!(
        name(&[
            ("db.name", "users"),
            ("db.connection_string", "localhost:5432")
        ]),
        "users"
    );
    // The kit's current keys are not read: db.namespace and server.address name nothing.
    assert_eq!(
        name(&[("db.namespace", "users"), ("server.address", "db.internal")]),
        "SELECT"
    );
}

#[test]
fn the_resource_service_name_names_server_spans_only() {
    assert_eq!(one(&span("GET /users", SpanKind::Server)).name, "users-api");
    assert_eq!(one(&span("work", SpanKind::Internal)).name, "work");
    assert_eq!(one(&root(span("work", SpanKind::Internal))).name, "work");
}

#[test]
fn rpc_service_then_http_host_then_net_peer_name() {
    let name = |attrs: &[(&str, &str)]| one(&with(span("call", SpanKind::Client), attrs)).name;
    let all = [
        ("rpc.service", "Users"),
        ("http.host", "api.example"),
        ("net.peer.name", "10.0.0.1"),
    ];
    assert_eq!(name(&all), "Users");
    assert_eq!(name(&all[1..]), "api.example");
    assert_eq!(name(&all[2..]), "10.0.0.1");
    assert_eq!(name(&[]), "call");
}

#[test]
fn an_attribute_that_is_not_a_string_lets_the_next_rule_decide() {
    let mut s = with(span("call", SpanKind::Client), &[("rpc.service", "Users")]);
    s.attributes
        .insert("peer.service".into(), AttrValue::I64(5));
    assert_eq!(one(&s).name, "Users");
}

#[test]
fn the_span_name_is_cleaned_of_what_x_ray_refuses() {
    assert_eq!(fix_segment_name("GET /users/{id}"), "GET /users/id");
    assert_eq!(fix_segment_name(r"a\b(c)*d!"), "abcd");
    assert_eq!(
        fix_segment_name("Zürich_1.0:x%&#=+-@"),
        "Zürich_1.0:x%&#=+-@"
    );
    assert_eq!(fix_segment_name("tab\there"), "tabhere");
    assert_eq!(fix_segment_name("{}"), "span");
    assert_eq!(fix_segment_name(""), "span");
    assert_eq!(fix_segment_name(&"a".repeat(250)).len(), 200);
    // Cut at a character boundary (the exporter cuts at byte 200 regardless).
    let long = format!("{}é", "a".repeat(199));
    assert_eq!(fix_segment_name(&long), "a".repeat(199));
    assert_eq!(one(&span("{}", SpanKind::Internal)).name, "span");
}

// --- namespaces ----------------------------------------------------------------------------------

#[test]
fn clients_are_remote_and_internal_spans_have_no_namespace() {
    assert_eq!(
        one(&span("x", SpanKind::Client)).namespace.as_deref(),
        Some("remote")
    );
    assert_eq!(one(&span("x", SpanKind::Internal)).namespace, None);
    assert_eq!(one(&span("x", SpanKind::Producer)).namespace, None);
}

#[test]
fn a_producer_or_consumer_subsegment_with_aws_remote_service_is_remote() {
    for kind in [SpanKind::Producer, SpanKind::Consumer] {
        let s = with(span("send", kind), &[("aws.remote.service", "queue")]);
        assert_eq!(
            one(&s),
            seg("queue", SegmentKind::Subsegment, Some("remote"))
        );
        // Not on a segment (no parent).
        assert_eq!(one(&root(s)).namespace, None, "{kind:?}");
    }
}

// --- the service map -----------------------------------------------------------------------------

#[test]
fn the_service_map_lists_segments_as_services_and_remote_subsegments_as_nodes() {
    let spans = [
        with(
            span("GET /users", SpanKind::Server),
            &[("http.request.method", "GET")],
        ),
        with(
            span("SELECT users", SpanKind::Client),
            &[("peer.service", "users@db.internal")],
        ),
        with(
            span("SecretsManager.GetSecretValue", SpanKind::Client),
            &[("rpc.system", "aws-api"), ("rpc.service", "SecretsManager")],
        ),
        // An INTERNAL child is a subsegment without a namespace: no node.
        span("hash password", SpanKind::Internal),
        root(span("secrets bootstrap", SpanKind::Internal)),
    ];
    let map = service_map(&spans);
    assert_eq!(
        map.services.iter().map(String::as_str).collect::<Vec<_>>(),
        ["secrets bootstrap", "users-api"]
    );
    assert_eq!(
        map.remotes.iter().map(String::as_str).collect::<Vec<_>>(),
        ["SecretsManager", "users@db.internal"]
    );
}
