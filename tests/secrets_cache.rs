//! `apprunner::secrets::SecretCache` against a real Secrets Manager (moto): TTL, forced refresh
//! after a rotation, the AWSPENDING stage, errors, and the CLIENT spans of each fetch.
//!
//! Fetches are counted on the emulator's side (moto records every request it receives), so
//! "served from the cache" means no request reached Secrets Manager. Logs of the whole binary are
//! captured by one global subscriber, and spans (the AWS SDK interceptor's, started through the
//! global tracer provider as no kit telemetry is installed) by one global provider exporting to
//! memory: this binary's own global state.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use apprunner::secrets::{SecretCache, SecretsError, VersionStage};
use apprunner_kit_tests::SecretsEmulator;
use opentelemetry::trace::{SpanKind, Status};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use serde_json::{Map, Value, json};

/// Log lines (JSON, TRACE level, all targets) of the whole test binary, and its finished
/// spans.
///
/// One global subscriber rather than one per test: `tracing` caches per call site whether it is
/// enabled, and with thread-scoped subscribers that cache goes wrong across threads (a call site
/// first hit on a thread without a subscriber stays disabled for everyone). Tests therefore
/// tell their spans apart by their (unique) secret ids.
struct Capture {
    logs: apprunner_kit_tests::LogCapture,
    spans: SpanMemory,
}

/// Finished spans, exported as they end.
#[derive(Debug, Clone, Default)]
struct SpanMemory(Arc<Mutex<Vec<SpanData>>>);

impl SpanExporter for SpanMemory {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(batch);
        Ok(())
    }
}

/// The binary's capture, installed as the global subscriber and tracer provider on first use.
fn capture() -> &'static Capture {
    static CAPTURE: OnceLock<Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let logs = apprunner_kit_tests::LogCapture::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::TRACE)
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
            .with_current_span(true)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("install the capture");
        let spans = SpanMemory::default();
        opentelemetry::global::set_tracer_provider(
            SdkTracerProvider::builder()
                .with_simple_exporter(spans.clone())
                .build(),
        );
        Capture { logs, spans }
    })
}

impl Capture {
    /// Each finished `SecretsManager.GetSecretValue` span for `secret_id`, in the order they
    /// ended, as JSON: its attributes, plus `otel.kind` and `otel.status_code`
    /// (`unset`/`ok`/`error`).
    fn fetch_spans(&self, secret_id: &str) -> Vec<Value> {
        let spans = self.spans.0.lock().unwrap_or_else(PoisonError::into_inner);
        spans
            .iter()
            .filter(|s| s.name == "SecretsManager.GetSecretValue")
            .map(|s| {
                let mut fields: Map<String, Value> = s
                    .attributes
                    .iter()
                    .map(|kv| {
                        let value = match &kv.value {
                            opentelemetry::Value::I64(i) => json!(i),
                            other => json!(other.to_string()),
                        };
                        (kv.key.to_string(), value)
                    })
                    .collect();
                let kind = match s.span_kind {
                    SpanKind::Client => "client",
                    _ => "other",
                };
                let status = match s.status {
                    Status::Unset => "unset",
                    Status::Ok => "ok",
                    Status::Error { .. } => "error",
                };
                fields.insert("otel.kind".into(), json!(kind));
                fields.insert("otel.status_code".into(), json!(status));
                fields.insert("otel.events".into(), json!(s.events.len()));
                Value::Object(fields)
            })
            .filter(|s| s["aws.secretsmanager.secret_id"] == secret_id)
            .collect()
    }

    /// The log lines, and every finished span's `Debug` form.
    fn text(&self) -> String {
        let spans = self.spans.0.lock().unwrap_or_else(PoisonError::into_inner);
        format!("{}\n{spans:?}", self.logs.text())
    }

    /// None of `values` appears in any log line or span.
    fn assert_no_leak(&self, values: &[&str]) {
        let text = self.text();
        for value in values {
            assert!(
                !text.contains(value),
                "{value:?} leaked into logs or spans:\n{text}"
            );
        }
    }
}

fn cache(moto: &SecretsEmulator) -> SecretCache {
    SecretCache::from_sdk_config(&moto.sdk_config())
        .expect("the emulator's config has a region")
        .ttl(Duration::from_secs(3600))
}

#[tokio::test]
async fn rotation_refresh_returns_the_new_value_and_cached_reads_do_not_call_the_api() {
    let capture = capture();
    let mut moto = SecretsEmulator::start();
    moto.create_secret("prod/token", "token-v1-8841").await;
    let cache = cache(&moto);

    assert_eq!(
        cache.get("prod/token").await.unwrap().expose(),
        "token-v1-8841"
    );
    assert_eq!(moto.get_secret_value_calls("prod/token"), 1);

    // Rotation: a new AWSCURRENT version.
    moto.update_secret("prod/token", "token-v2-8842").await;

    // Within the TTL the cached value is served and Secrets Manager is not asked.
    assert_eq!(
        cache.get("prod/token").await.unwrap().expose(),
        "token-v1-8841"
    );
    assert_eq!(moto.get_secret_value_calls("prod/token"), 1);

    // A forced refresh asks and returns the rotated value, which is then cached.
    assert_eq!(
        cache.refresh("prod/token").await.unwrap().expose(),
        "token-v2-8842"
    );
    assert_eq!(moto.get_secret_value_calls("prod/token"), 2);
    assert_eq!(
        cache.get("prod/token").await.unwrap().expose(),
        "token-v2-8842"
    );
    assert_eq!(moto.get_secret_value_calls("prod/token"), 2);

    // With Secrets Manager gone, cached reads still work; a refresh fails, naming the secret,
    // and keeps the cached value.
    moto.stop();
    assert_eq!(
        cache.get("prod/token").await.unwrap().expose(),
        "token-v2-8842"
    );
    let err = cache.refresh("prod/token").await.unwrap_err();
    assert!(matches!(err, SecretsError::Request { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("could not call Secrets Manager GetSecretValue for secret `prod/token`"),
        "{err}"
    );
    assert_eq!(
        cache.get("prod/token").await.unwrap().expose(),
        "token-v2-8842"
    );

    // One span per request that was made (2 answered, 1 failed), none for cached reads.
    let spans = capture.fetch_spans("prod/token");
    assert_eq!(spans.len(), 3, "{}", capture.text());
    for span in &spans[..2] {
        assert_eq!(span["otel.kind"], "client");
        assert_eq!(span["rpc.system"], "aws-api");
        assert_eq!(span["rpc.service"], "SecretsManager");
        assert_eq!(span["rpc.method"], "GetSecretValue");
        assert_eq!(span["cloud.region"], "us-east-1");
        assert_eq!(span["aws.secretsmanager.secret_id"], "prod/token");
        assert_eq!(span["aws.secretsmanager.version_stage"], "AWSCURRENT");
        assert_eq!(span["http.response.status_code"], 200);
        assert_eq!(span["otel.status_code"], "unset");
        assert!(
            span["aws.request_id"]
                .as_str()
                .is_some_and(|id| !id.is_empty())
        );
    }
    assert_eq!(spans[2]["otel.status_code"], "error");
    // No answer: the connection was refused.
    assert_eq!(spans[2]["error.type"], "io");

    let debug = format!("{cache:?} {err:?}");
    assert!(debug.contains("SecretCache"), "{debug}");
    for value in ["token-v1-8841", "token-v2-8842"] {
        assert!(!debug.contains(value) && !err.to_string().contains(value));
    }
    capture.assert_no_leak(&["token-v1-8841", "token-v2-8842"]);
}

#[tokio::test]
async fn a_zero_ttl_asks_every_time() {
    let capture = capture();
    let moto = SecretsEmulator::start();
    moto.create_secret("uncached", "u-4410").await;
    let cache = cache(&moto).ttl(Duration::ZERO);
    for _ in 0..3 {
        assert_eq!(cache.get("uncached").await.unwrap().expose(), "u-4410");
    }
    assert_eq!(moto.get_secret_value_calls("uncached"), 3);
    assert_eq!(capture.fetch_spans("uncached").len(), 3);
    capture.assert_no_leak(&["u-4410"]);
}

#[tokio::test]
async fn the_pending_stage_is_readable_during_a_rotation() {
    let capture = capture();
    let moto = SecretsEmulator::start();
    moto.create_secret("prod/db-pass", "current-pass-1001")
        .await;
    moto.put_pending("prod/db-pass", "pending-pass-1002").await;
    let cache = cache(&moto);

    assert_eq!(
        cache.get("prod/db-pass").await.unwrap().expose(),
        "current-pass-1001"
    );
    assert_eq!(
        cache
            .get_stage("prod/db-pass", VersionStage::Pending)
            .await
            .unwrap()
            .expose(),
        "pending-pass-1002"
    );
    // Stages are cached separately; the pending read asked for AWSPENDING.
    let stages: Vec<Value> = moto
        .requests()
        .into_iter()
        .filter(|r| r.target == "secretsmanager.GetSecretValue")
        .map(|r| r.body["VersionStage"].clone())
        .collect();
    assert_eq!(stages, ["AWSCURRENT", "AWSPENDING"]);
    assert_eq!(
        capture.fetch_spans("prod/db-pass")[1]["aws.secretsmanager.version_stage"],
        "AWSPENDING"
    );

    // A stage no version has is "not found", naming the stage.
    let err = cache
        .get_stage("prod/db-pass", VersionStage::Previous)
        .await
        .unwrap_err();
    assert!(
        err.to_string().starts_with(
            "secret `prod/db-pass` was not found in Secrets Manager (stage AWSPREVIOUS"
        ),
        "{err}"
    );
    capture.assert_no_leak(&["current-pass-1001", "pending-pass-1002"]);
}

#[tokio::test]
async fn rds_credentials_follow_a_rotated_password_on_refresh() {
    let capture = capture();
    let moto = SecretsEmulator::start();
    let secret = |password: &str| {
        serde_json::json!({"username":"app","password":password,"host":"db","port":5432,
                           "dbname":"users","engine":"aurora-postgresql"})
        .to_string()
    };
    moto.create_secret("prod/users-db", &secret("old:pass@1"))
        .await;
    let cache = cache(&moto);

    let creds = cache.rds("prod/users-db").await.unwrap();
    assert_eq!(creds.password().expose(), "old:pass@1");
    assert_eq!(
        creds.database_url().expose(),
        "postgres://app:old%3Apass%401@db:5432/users"
    );

    moto.update_secret("prod/users-db", &secret("new/pass#2"))
        .await;
    assert_eq!(
        cache
            .rds("prod/users-db")
            .await
            .unwrap()
            .password()
            .expose(),
        "old:pass@1",
        "cached within the TTL"
    );
    let fresh = cache.refresh_rds("prod/users-db").await.unwrap();
    assert_eq!(fresh.password().expose(), "new/pass#2");
    assert_eq!(
        fresh.database_url().expose(),
        "postgres://app:new%2Fpass%232@db:5432/users"
    );
    assert!(!format!("{fresh:?}").contains("new/pass#2"));
    assert_eq!(moto.get_secret_value_calls("prod/users-db"), 2);
    capture.assert_no_leak(&[
        "old:pass@1",
        "new/pass#2",
        "old%3Apass%401",
        "new%2Fpass%232",
    ]);
}

#[tokio::test]
async fn errors_name_the_secret_and_never_the_value() {
    let capture = capture();
    let moto = SecretsEmulator::start();
    moto.create_secret("not-json", "raw-s3cret-text-3301").await;
    let cache = cache(&moto);

    let missing = cache.get("prod/absent").await.unwrap_err();
    assert!(
        matches!(missing, SecretsError::NotFound { .. }),
        "{missing:?}"
    );
    assert!(
        missing
            .to_string()
            .contains("secret `prod/absent` was not found")
    );
    let spans = capture.fetch_spans("prod/absent");
    assert_eq!(spans.len(), 1, "{}", capture.text());
    let span = &spans[0];
    assert_eq!(span["otel.status_code"], "error");
    assert_eq!(span["error.type"], "ResourceNotFoundException");
    assert!(
        span["aws.request_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty())
    );

    let not_json = cache.rds("not-json").await.unwrap_err();
    assert!(
        matches!(not_json, SecretsError::NotJson { .. }),
        "{not_json:?}"
    );
    let text = format!("{not_json} {not_json:?}");
    assert!(
        text.contains("secret `not-json` is not a JSON object"),
        "{text}"
    );
    assert!(!text.contains("raw-s3cret-text-3301"), "{text}");
    capture.assert_no_leak(&["raw-s3cret-text-3301"]);
}
