use std::collections::HashMap;

use super::target::url_password;
use super::*;

fn config(vars: &[(&str, &str)]) -> Result<DbConfig, DbError> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    DbConfig::from_lookup(|k| map.get(k).cloned())
}

#[test]
fn defaults() {
    let c = config(&[("DB_HOST", "db")]).unwrap();
    assert_eq!(c.engine(), DbEngine::Postgres);
    assert_eq!(c.endpoint(), "db:5432");
    assert_eq!(c.pool.max_connections, 10);
    assert_eq!(c.pool.acquire_timeout, Duration::from_secs(5));
    assert_eq!(c.pool.idle_timeout, Some(Duration::from_secs(600)));
    assert_eq!(c.pool.startup_timeout, Duration::from_secs(45));
    assert_eq!(c.tracing.query_text, QueryText::Sanitized);
    assert!(c.tracing.legacy_attributes);
    assert!(!c.tracing.root_spans);
}

#[test]
fn nothing_configured() {
    assert!(matches!(config(&[]), Err(DbError::NotConfigured)));
    assert!(matches!(
        config(&[("DB_USER", "app")]),
        Err(DbError::NotConfigured)
    ));
    let sqlite = config(&[("DB_ENGINE", "sqlite"), ("DB_DATABASE", "app.db")]).unwrap();
    assert_eq!(sqlite.endpoint(), "app.db");
}

#[test]
fn url_wins_and_names_the_engine() {
    let c = config(&[
        ("DATABASE_URL", "mysql://app:pw@db.example:3307/users"),
        ("DB_HOST", "ignored"),
    ])
    .unwrap();
    assert_eq!(c.engine(), DbEngine::MySql);
    assert_eq!(c.endpoint(), "db.example:3307");
    assert_eq!(c.target.password().as_deref(), Some("pw"));
    let err = config(&[("DATABASE_URL", "oracle://x")]).unwrap_err();
    assert!(err.to_string().contains("DATABASE_URL"), "{err}");
    let v6 = config(&[("DATABASE_URL", "postgres://u@[::1]/d")]).unwrap();
    assert_eq!(v6.endpoint(), "[::1]:5432");
}

#[test]
fn passwords_never_print() {
    let c = config(&[
        ("DATABASE_URL", "postgres://app:hunter2@db/users"),
        ("DB_PASSWORD", "also-secret"),
    ])
    .unwrap();
    let debug = format!("{c:?}");
    assert!(
        !debug.contains("hunter2") && !debug.contains("also-secret"),
        "{debug}"
    );
    let c = config(&[("DB_HOST", "db"), ("DB_PASSWORD", "p@ss")]).unwrap();
    assert!(!format!("{c:?}").contains("p@ss"));
    assert_eq!(
        url_password("postgres://app:p%40ss%3A@db/x").as_deref(),
        Some("p@ss:")
    );
}

#[test]
fn pool_and_timeouts_from_env() {
    let c = config(&[
        ("DB_HOST", "db"),
        ("DB_PORT", "6543"),
        ("DB_POOL_MAX_CONNECTIONS", "3"),
        ("DB_POOL_ACQUIRE_TIMEOUT", "750ms"),
        ("DB_POOL_IDLE_TIMEOUT", "off"),
        ("DB_POOL_MAX_LIFETIME", "2m"),
        ("DB_STARTUP_TIMEOUT", "90"),
    ])
    .unwrap();
    assert_eq!(c.endpoint(), "db:6543");
    assert_eq!(c.pool.max_connections, 3);
    assert_eq!(c.pool.acquire_timeout, Duration::from_millis(750));
    assert_eq!(c.pool.idle_timeout, None);
    assert_eq!(c.pool.max_lifetime, Some(Duration::from_secs(120)));
    assert_eq!(c.pool.startup_timeout, Duration::from_secs(90));
    for (var, value) in [
        ("DB_POOL_MAX_CONNECTIONS", "0"),
        ("DB_POOL_MAX_CONNECTIONS", "ten"),
        ("DB_POOL_ACQUIRE_TIMEOUT", "5 parsecs"),
        ("DB_PORT", "70000"),
        ("DB_ENGINE", "oracle"),
        ("DB_TRACE_QUERY_TEXT", "loud"),
        ("DB_TRACE_ROOT_SPANS", "maybe"),
    ] {
        let err = config(&[("DB_HOST", "db"), (var, value)]).unwrap_err();
        assert!(err.to_string().contains(var), "{var}: {err}");
    }
}

#[test]
fn tracing_settings() {
    let c = config(&[
        ("DB_HOST", "db"),
        ("DB_TRACE_QUERY_TEXT", "raw"),
        ("DB_TRACE_ROOT_SPANS", "true"),
        ("DB_PEER_SERVICE", "users-db"),
    ])
    .unwrap();
    assert_eq!(c.tracing.query_text, QueryText::Raw);
    assert!(c.tracing.root_spans);
    assert_eq!(c.tracing.peer_service.as_deref(), Some("users-db"));
    let stable = config(&[
        ("DB_HOST", "db"),
        ("OTEL_SEMCONV_STABILITY_OPT_IN", "http,database"),
    ])
    .unwrap();
    assert!(!stable.tracing.legacy_attributes);
    let dup = config(&[
        ("DB_HOST", "db"),
        ("OTEL_SEMCONV_STABILITY_OPT_IN", "database/dup,database"),
    ])
    .unwrap();
    assert!(dup.tracing.legacy_attributes);
    let forced = config(&[
        ("DB_HOST", "db"),
        ("OTEL_SEMCONV_STABILITY_OPT_IN", "database"),
        ("DB_TRACE_LEGACY_ATTRIBUTES", "true"),
    ])
    .unwrap();
    assert!(forced.tracing.legacy_attributes);
}
