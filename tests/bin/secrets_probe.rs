//! A tiny service `main` for the secrets tests, run as a child process so each scenario has a
//! fresh, single-threaded process and its own environment.
//!
//! Scenario (first argument):
//! - `bootstrap`: installs a `tracing` subscriber writing every span (on close, with its
//!   fields) and every event at TRACE level, all targets, as JSON lines to stderr; spawns a
//!   thread first when `PROBE_SPAWN_THREAD` is set; then calls
//!   `apprunner::secrets::bootstrap_from_env()` as the first real work of `main` (with
//!   `overwrite(true)` when `PROBE_OVERWRITE` is set).
//! - `otlp`: what `#[apprunner::main]` does: `bootstrap_from_env()`, then telemetry from the
//!   `OTEL_*` environment, `Report::emit_spans(service name)`, then a multi-thread runtime in which a
//!   `SecretCache` named after the service reads `PROBE_CACHE_SECRET` (a live CLIENT span
//!   outside any span), then shutdown.
//!
//! The last stdout line is `PROBE_RESULT {json}`: the outcome (error text and `Debug`), the
//! report, and the values of the variables listed in `PROBE_VARS` (comma-separated) — this line
//! is the tests' assertion channel and the only place a value is printed on purpose.
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;

use serde_json::json;

fn main() {
    let scenario = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "bootstrap".into());
    let result = match scenario.as_str() {
        "bootstrap" => bootstrap(),
        "otlp" => otlp(),
        other => panic!("unknown scenario {other}"),
    };
    println!("PROBE_RESULT {result}");
}

fn bootstrap() -> serde_json::Value {
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_current_span(true)
        .with_span_list(true)
        .with_writer(std::io::stderr)
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("set the capture subscriber");
    let _parked = std::env::var_os("PROBE_SPAWN_THREAD")
        .map(|_| std::thread::spawn(|| std::thread::sleep(std::time::Duration::from_secs(30))));

    let outcome = if std::env::var_os("PROBE_OVERWRITE").is_some() {
        apprunner::secrets::Plan::from_env()
            .and_then(|plan| apprunner::secrets::bootstrap(&plan.overwrite(true)))
    } else {
        apprunner::secrets::bootstrap_from_env()
    };
    tracing::info!(outcome = ?outcome, "bootstrap finished");
    result(&outcome)
}

fn otlp() -> serde_json::Value {
    let outcome = apprunner::secrets::bootstrap_from_env();
    let report = match &outcome {
        Ok(report) => report,
        Err(_) => return result(&outcome),
    };
    let config = apprunner::telemetry::TelemetryConfig::from_env()
        .expect("telemetry configuration")
        .default_service_name("secrets-probe");
    let service_name = config.resolved_service_name();
    let telemetry = config.init().expect("telemetry init");
    report.emit_spans(&service_name);
    tracing::info!(report = %report, "secrets bootstrapped");

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let cache_id = std::env::var("PROBE_CACHE_SECRET").expect("PROBE_CACHE_SECRET");
    let cached = runtime.block_on(async {
        // Named after the service, as `#[apprunner::main]` provides it.
        let cache = apprunner::secrets::SecretCache::from_env()
            .await
            .expect("cache from env")
            .service_name(&service_name);
        let value = cache.get(&cache_id).await.expect("cache read");
        tracing::info!(secret = ?value, cache = ?cache, "cache read done");
        value.expose().clone()
    });
    drop(runtime);
    let stats = telemetry.shutdown_blocking().expect("telemetry shutdown");
    let mut out = result(&outcome);
    out["cache_value"] = json!(cached);
    out["spans_exported"] = json!(stats.spans_exported);
    out
}

fn result(
    outcome: &Result<apprunner::secrets::Report, apprunner::secrets::SecretsError>,
) -> serde_json::Value {
    let vars: BTreeMap<String, Option<String>> = std::env::var("PROBE_VARS")
        .unwrap_or_default()
        .split(',')
        .filter(|v| !v.is_empty())
        .map(|name| (name.to_owned(), std::env::var(name).ok()))
        .collect();
    match outcome {
        Ok(report) => json!({
            "ok": true,
            "report": report.to_string(),
            "report_debug": format!("{report:?}"),
            "set": report.set_vars(),
            "kept": report.kept_vars(),
            "injected": report.injected_vars(),
            "fetched": report.fetched_secrets(),
            "request_ids": report.request_ids(),
            "vars": vars,
        }),
        Err(err) => json!({
            "ok": false,
            "error": err.to_string(),
            "error_debug": format!("{err:?}"),
            "error_kind": format!("{err:?}").split([' ', '{', '(']).next().unwrap_or_default(),
            "vars": vars,
        }),
    }
}
