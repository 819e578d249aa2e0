//! Tests of the environment parsing.
use super::*;
use std::collections::HashMap;

fn config(vars: &[(&str, &str)]) -> Result<TelemetryConfig, TelemetryError> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    TelemetryConfig::from_lookup(|k| map.get(k).cloned())
}

#[test]
fn otlp_settings_come_from_the_signal_variable_first() {
    let c = config(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://generic:4317"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", " http://traces:4317 "),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "X-Team=kit, x-note=a%20b,authorization=generic",
        ),
        (
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
            "Authorization=Bearer%20t0k",
        ),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "none"),
    ])
    .unwrap();
    assert_eq!(
        c.otlp_env.endpoint,
        Some(("http://traces:4317".to_owned(), EndpointSource::Traces))
    );
    assert_eq!(
        c.otlp_env.headers,
        [
            ("x-team".to_owned(), "kit".to_owned()),
            ("x-note".to_owned(), "a b".to_owned()),
            ("authorization".to_owned(), "Bearer t0k".to_owned()),
        ]
    );
    assert_eq!(c.otlp_env.timeout, Some(Duration::from_millis(2500)));
    // Debug output names the headers, never their values (often credentials).
    let debug = format!("{c:?}");
    assert!(
        debug.contains("authorization") && !debug.contains("t0k"),
        "{debug}"
    );

    let c = config(&[("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "100")]).unwrap();
    assert_eq!(c.otlp_env.timeout, Some(Duration::from_millis(100)));
    assert_eq!(config(&[]).unwrap().otlp_env, OtlpEnv::default());
}

#[test]
fn bad_otlp_settings_name_the_variable_and_hide_header_values() {
    let err = config(&[("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=s3cr3t,oops")]).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("OTEL_EXPORTER_OTLP_HEADERS"), "{message}");
    assert!(message.contains("entry 2"), "{message}");
    assert!(
        !message.contains("s3cr3t") && !message.contains("oops"),
        "{message}"
    );
    let err = config(&[("OTEL_EXPORTER_OTLP_TRACES_INSECURE", "maybe")]).unwrap_err();
    assert!(
        err.to_string()
            .contains("OTEL_EXPORTER_OTLP_TRACES_INSECURE"),
        "{err}"
    );
    // A client certificate without its key (or the reverse) would fail every export.
    let err = config(&[("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "/c.pem")]).unwrap_err();
    assert!(
        err.to_string().contains("OTEL_EXPORTER_OTLP_CLIENT_KEY"),
        "{err}"
    );
    let err = config(&[("OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", "/k.pem")]).unwrap_err();
    assert!(
        err.to_string()
            .contains("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"),
        "{err}"
    );
}

/// The one warning each value that can be ignored without losing data gives, if any.
fn warnings(vars: &[(&str, &str)]) -> Vec<String> {
    config(vars).expect("a warning, not an error").warnings.0
}

#[test]
fn values_that_lose_nothing_when_ignored_are_warnings() {
    for (var, value) in [
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "10s"),
        ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "-5"),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd"),
        ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "deflate"),
        ("OTEL_BSP_SCHEDULE_DELAY", "soon"),
        ("OTEL_BSP_EXPORT_TIMEOUT", "1.5"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "-1"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "0"),
        ("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "many"),
        ("OTEL_ATTRIBUTE_COUNT_LIMIT", "-1"),
        ("OTEL_SPAN_EVENT_COUNT_LIMIT", "x"),
        ("OTEL_SPAN_LINK_COUNT_LIMIT", "x"),
        ("OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT", "x"),
        ("OTEL_LINK_ATTRIBUTE_COUNT_LIMIT", "x"),
        ("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "long"),
        ("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "-3"),
    ] {
        let found = warnings(&[(var, value)]);
        assert_eq!(found.len(), 1, "{var}={value}: {found:?}");
        assert!(found[0].contains(var), "{found:?}");
    }
    assert!(warnings(&[]).is_empty());
    let c = config(&[("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd")]).unwrap();
    assert!(
        !c.otlp_env.gzip,
        "an unknown compression sends uncompressed"
    );
}

#[test]
fn compression_tls_files_and_insecure_are_read() {
    let c = config(&[
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "none"),
        ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "GZIP"),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/generic/ca.pem"),
        ("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "/traces/ca.pem"),
        ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "/c.pem"),
        ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/k.pem"),
        ("OTEL_EXPORTER_OTLP_INSECURE", "true"),
    ])
    .unwrap();
    assert!(c.otlp_env.gzip);
    assert!(c.otlp_env.insecure);
    let file = |f: &Option<FileSetting>| f.as_ref().map(|f| (f.var, f.path.clone()));
    assert_eq!(
        file(&c.otlp_env.certificate),
        Some((
            "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
            "/traces/ca.pem".into()
        ))
    );
    assert_eq!(
        file(&c.otlp_env.client_certificate),
        Some(("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "/c.pem".into()))
    );
    assert_eq!(
        file(&c.otlp_env.client_key),
        Some(("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/k.pem".into()))
    );
    assert!(config(&[]).unwrap().otlp_env.certificate.is_none());
}

#[test]
fn span_limits_are_read_with_the_span_variables_first() {
    let c = config(&[
        ("OTEL_ATTRIBUTE_COUNT_LIMIT", "64"),
        ("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "32"),
        ("OTEL_SPAN_EVENT_COUNT_LIMIT", "5"),
        ("OTEL_SPAN_LINK_COUNT_LIMIT", "6"),
        ("OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT", "7"),
        ("OTEL_LINK_ATTRIBUTE_COUNT_LIMIT", "8"),
        ("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "100"),
        ("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "10"),
    ])
    .unwrap();
    let limits = c.limits.sdk();
    assert_eq!(limits.max_attributes_per_span, 32);
    assert_eq!(limits.max_events_per_span, 5);
    assert_eq!(limits.max_links_per_span, 6);
    assert_eq!(limits.max_attributes_per_event, 7);
    assert_eq!(limits.max_attributes_per_link, 8);
    assert_eq!(c.limits.attribute_value_length, Some(10));
    let generic = config(&[
        ("OTEL_ATTRIBUTE_COUNT_LIMIT", "64"),
        ("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "100"),
    ])
    .unwrap();
    assert_eq!(generic.limits.sdk().max_attributes_per_span, 64);
    assert_eq!(generic.limits.attribute_value_length, Some(100));
    let defaults = config(&[]).unwrap().limits.sdk();
    assert_eq!(
        defaults.max_attributes_per_span,
        opentelemetry_sdk::trace::SpanLimits::default().max_attributes_per_span
    );
}

#[test]
fn defaults() {
    let c = config(&[]).unwrap();
    assert_eq!(c.traces_exporter(), TracesExporter::Otlp);
    assert_eq!(c.otlp_protocol(), OtlpProtocol::Grpc);
    assert_eq!(c.sampler, SamplerSetting::ParentBasedAlwaysOn);
    assert_eq!(
        c.propagators(),
        &[
            PropagatorKind::Xray,
            PropagatorKind::TraceContext,
            PropagatorKind::Baggage
        ]
    );
    assert!(c.log_filter.starts_with("info,opentelemetry=off"));
    assert!(!c.disabled);
}

#[test]
fn sdk_disabled_means_no_export() {
    let c = config(&[("OTEL_SDK_DISABLED", "TRUE")]).unwrap();
    assert_eq!(c.traces_exporter(), TracesExporter::None);
    let err = config(&[("OTEL_SDK_DISABLED", "yes")]).unwrap_err();
    assert!(err.to_string().contains("OTEL_SDK_DISABLED"), "{err}");
}

#[test]
fn signal_specific_protocol_wins() {
    let c = config(&[
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
    ])
    .unwrap();
    assert_eq!(c.otlp_protocol(), OtlpProtocol::HttpProtobuf);
    let err = config(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")]).unwrap_err();
    assert!(
        err.to_string().contains("OTEL_EXPORTER_OTLP_PROTOCOL"),
        "{err}"
    );
}

#[test]
fn samplers() {
    let s = |name: &str, arg: Option<&str>| {
        let mut vars = vec![("OTEL_TRACES_SAMPLER", name)];
        if let Some(a) = arg {
            vars.push(("OTEL_TRACES_SAMPLER_ARG", a));
        }
        config(&vars).map(|c| c.sampler)
    };
    assert_eq!(s("always_off", None).unwrap(), SamplerSetting::AlwaysOff);
    assert_eq!(
        s("parentbased_traceidratio", Some("0.25")).unwrap(),
        SamplerSetting::ParentBasedRatio(0.25)
    );
    assert_eq!(s("traceidratio", None).unwrap(), SamplerSetting::Ratio(1.0));
    assert!(
        s("traceidratio", Some("2"))
            .unwrap_err()
            .to_string()
            .contains("OTEL_TRACES_SAMPLER_ARG")
    );
    assert!(
        s("jaeger_remote", None)
            .unwrap_err()
            .to_string()
            .contains("OTEL_TRACES_SAMPLER")
    );
}

#[test]
fn propagators() {
    let p = |v: &str| config(&[("OTEL_PROPAGATORS", v)]).map(|c| c.propagators);
    assert_eq!(
        p("tracecontext").unwrap(),
        vec![PropagatorKind::TraceContext]
    );
    assert_eq!(
        p(" xray , xray,baggage").unwrap(),
        vec![PropagatorKind::Xray, PropagatorKind::Baggage]
    );
    assert!(p("none").unwrap().is_empty());
    assert!(
        p("b3")
            .unwrap_err()
            .to_string()
            .contains("OTEL_PROPAGATORS")
    );
}

#[test]
fn resource_attributes_are_percent_decoded() {
    let attrs = parse_resource_attributes(
        "service.name=users%20api, cloud.platform=aws_app_runner,deployment.environment.name=prod",
    )
    .unwrap();
    assert_eq!(
        attrs,
        vec![
            ("service.name".into(), "users api".into()),
            ("cloud.platform".into(), "aws_app_runner".into()),
            ("deployment.environment.name".into(), "prod".into()),
        ]
    );
    assert!(parse_resource_attributes("novalue").is_err());
    assert_eq!(percent_decode("100%"), "100%");
    assert_eq!(percent_decode("%zz"), "%zz");
}

#[test]
fn service_name_precedence() {
    let c = config(&[("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attrs")]).unwrap();
    assert_eq!(
        c.clone()
            .default_service_name("pkg")
            .resolved_service_name(),
        "from-attrs"
    );
    let c = config(&[
        ("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attrs"),
        ("OTEL_SERVICE_NAME", "from-env"),
    ])
    .unwrap();
    assert_eq!(c.resolved_service_name(), "from-env");
    assert_eq!(
        c.service_name("from-code").resolved_service_name(),
        "from-code"
    );
    let c = config(&[]).unwrap().default_service_name("pkg");
    assert_eq!(c.resolved_service_name(), "pkg");
}

#[test]
fn bsp_settings() {
    let c = config(&[
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "10"),
    ])
    .unwrap();
    assert_eq!(c.bsp.schedule_delay, Some(Duration::from_millis(100)));
    assert_eq!(c.bsp.max_queue_size, Some(10));
    let c = config(&[("OTEL_BSP_EXPORT_TIMEOUT", "2500")]).unwrap();
    assert_eq!(c.bsp.export_timeout, Some(Duration::from_millis(2500)));
}

#[cfg(feature = "xray-sampling")]
#[test]
fn the_xray_sampler_reads_its_arg_and_names_it_when_malformed() {
    let config = |arg: &str| {
        let vars = [
            ("OTEL_TRACES_SAMPLER", "xray"),
            ("OTEL_TRACES_SAMPLER_ARG", arg),
        ];
        TelemetryConfig::from_lookup(|k| {
            vars.iter()
                .find(|(key, _)| *key == k)
                .map(|(_, v)| (*v).to_owned())
        })
    };
    match config("endpoint=http://collector:2000,polling_interval=60")
        .unwrap()
        .sampler
    {
        SamplerSetting::Xray(s) => {
            assert_eq!(s.endpoint(), "http://collector:2000");
            assert_eq!(s.rules_interval(), Duration::from_secs(60));
        }
        other => panic!("{other:?}"),
    }
    let err = config("polling_interval=soon").unwrap_err().to_string();
    assert!(err.contains("OTEL_TRACES_SAMPLER_ARG"), "{err}");
    let err = config("endpoint=http://proxy:2000,sigv4=true")
        .unwrap_err()
        .to_string();
    assert!(err.contains("AWS_REGION"), "sigv4 without a region: {err}");
}
