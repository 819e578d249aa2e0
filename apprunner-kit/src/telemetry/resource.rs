//! The OpenTelemetry resource: who is emitting the spans.
//!
//! `cloud.platform=aws_app_runner` is never guessed: App Runner documents no environment
//! variable or metadata endpoint that proves a process runs on it, so the kit takes the
//! platform from configuration (`OTEL_RESOURCE_ATTRIBUTES`, which the infrastructure example
//! sets, or [`TelemetryConfig::resource_attribute`]). With it, the collector's X-Ray exporter
//! gives the segment the origin `AWS::AppRunner::Service`.
//!
//! On ECS (`ECS_CONTAINER_METADATA_URI_V4` set by the agent), the task metadata endpoint says
//! where the process runs: see the `ecs` module.

use opentelemetry::KeyValue;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::resource::TelemetryResourceDetector;
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};

use super::config::TelemetryConfig;

/// A random UUID (version 4) for `service.instance.id`.
fn instance_id() -> String {
    let raw = RandomIdGenerator::default().new_trace_id().to_bytes();
    let mut b = raw;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The resource for `config`, following the precedence documented on [`TelemetryConfig`].
pub(crate) fn resource(config: &TelemetryConfig) -> Resource {
    let mut attrs: Vec<(String, String)> = config.resource_attributes.clone();
    let has = |attrs: &[(String, String)], key: &str| attrs.iter().any(|(k, _)| k == key);

    attrs.retain(|(k, _)| k != "service.name");
    attrs.push(("service.name".into(), config.resolved_service_name()));
    if let Some(version) = &config.service_version {
        attrs.retain(|(k, _)| k != "service.version");
        attrs.push(("service.version".into(), version.clone()));
    }
    if !has(&attrs, "service.instance.id") {
        attrs.push(("service.instance.id".into(), instance_id()));
    }
    // Detected on ECS; what the configuration says wins.
    let detected: Vec<KeyValue> = config
        .ecs_metadata_uri
        .as_deref()
        .map(super::ecs::detect)
        .unwrap_or_default()
        .into_iter()
        .filter(|kv| !has(&attrs, kv.key.as_str()))
        .collect();
    let detected_has = |key: &str| detected.iter().any(|kv| kv.key.as_str() == key);
    if let Some(region) = &config.region
        && !has(&attrs, "cloud.region")
        && !detected_has("cloud.region")
    {
        attrs.push(("cloud.region".into(), region.clone()));
    }
    let on_aws = config.region.is_some()
        || !detected.is_empty()
        || attrs
            .iter()
            .any(|(k, v)| k == "cloud.platform" && v.starts_with("aws_"));
    if on_aws && !has(&attrs, "cloud.provider") && !detected_has("cloud.provider") {
        attrs.push(("cloud.provider".into(), "aws".into()));
    }

    Resource::builder_empty()
        .with_detector(Box::new(TelemetryResourceDetector))
        .with_attributes(detected)
        .with_attributes(attrs.into_iter().map(|(k, v)| KeyValue::new(k, v)))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::Key;

    fn get(r: &Resource, k: &'static str) -> Option<String> {
        r.get(&Key::from_static_str(k)).map(|v| v.to_string())
    }

    #[test]
    fn app_runner_is_only_claimed_when_configured() {
        let local = TelemetryConfig::from_lookup(|_| None)
            .unwrap()
            .service_name("svc");
        let r = resource(&local);
        assert_eq!(get(&r, "service.name").as_deref(), Some("svc"));
        assert_eq!(get(&r, "cloud.platform"), None);
        assert_eq!(get(&r, "cloud.provider"), None);
        assert!(get(&r, "service.instance.id").is_some());
        assert_eq!(get(&r, "telemetry.sdk.language").as_deref(), Some("rust"));

        let on_app_runner = TelemetryConfig::from_lookup(|k| match k {
            "AWS_REGION" => Some("eu-west-1".into()),
            "OTEL_RESOURCE_ATTRIBUTES" => Some("cloud.platform=aws_app_runner".into()),
            _ => None,
        })
        .unwrap();
        let r = resource(&on_app_runner);
        assert_eq!(get(&r, "cloud.platform").as_deref(), Some("aws_app_runner"));
        assert_eq!(get(&r, "cloud.provider").as_deref(), Some("aws"));
        assert_eq!(get(&r, "cloud.region").as_deref(), Some("eu-west-1"));
    }

    #[test]
    fn instance_ids_are_uuid_v4() {
        let id = instance_id();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert_ne!(id, instance_id());
    }
}
