//! `apprunner::secrets::bootstrap` against a real Secrets Manager (moto).
//!
//! Each scenario runs the `secrets-probe` binary as a child process — a fresh, single-threaded
//! process with exactly the environment under test — because bootstrap modifies the process
//! environment and refuses to run once other threads exist (as they do in a test harness).
//! Every scenario also checks that no secret value appears in the child's logs and spans
//! (captured at TRACE level, all targets, AWS SDK included), in error texts or in the report.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use apprunner_kit_tests::{OtlpReceiver, SecretsEmulator, SpanKind, SpanRecord, xray};
use serde_json::{Value, json};

/// A password with every character that breaks naive URL building.
const NASTY_PASSWORD: &str = "p@ss:w/rd%#?&= 40+x";

struct Probe {
    result: Value,
    stdout: String,
    stderr: String,
}

impl Probe {
    /// Runs `secrets-probe <scenario>` with only `env` (plus `PROBE_VARS`) in its environment.
    fn run(scenario: &str, env: &[(String, String)], vars: &[&str]) -> Probe {
        let output = Command::new(env!("CARGO_BIN_EXE_secrets-probe"))
            .arg(scenario)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("PROBE_VARS", vars.join(","))
            .output()
            .expect("run secrets-probe");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(
            output.status.success(),
            "probe failed: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
            output.status
        );
        let line = stdout
            .lines()
            .find_map(|l| l.strip_prefix("PROBE_RESULT "))
            .unwrap_or_else(|| panic!("no result line in:\n{stdout}"));
        let result = serde_json::from_str(line).expect("result is JSON");
        Probe {
            result,
            stdout,
            stderr,
        }
    }

    fn ok(&self) -> &Self {
        assert_eq!(self.result["ok"], true, "bootstrap failed: {}", self.result);
        self
    }

    fn error(&self) -> String {
        assert_eq!(
            self.result["ok"], false,
            "bootstrap succeeded: {}",
            self.result
        );
        self.result["error"].as_str().unwrap().to_owned()
    }

    fn var(&self, name: &str) -> Option<String> {
        self.result["vars"][name].as_str().map(str::to_owned)
    }

    /// Everything the child printed or reported, except the deliberate `vars` channel.
    fn observable_text(&self) -> String {
        let mut result = self.result.clone();
        result.as_object_mut().unwrap().remove("vars");
        result.as_object_mut().unwrap().remove("cache_value");
        let stdout: Vec<&str> = self
            .stdout
            .lines()
            .filter(|l| !l.starts_with("PROBE_RESULT "))
            .collect();
        format!("{result}\n{}\n{}", stdout.join("\n"), self.stderr)
    }

    /// Asserts that none of `values` (nor their URL-encoded form) was printed, logged, traced
    /// or put into an error or the report.
    fn assert_no_leak(&self, values: &[&str]) {
        let text = self.observable_text();
        for value in values {
            let encoded: String = url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
            for needle in [value.to_string(), encoded] {
                assert!(
                    !text.contains(&needle),
                    "secret value {needle:?} leaked into logs, spans, errors or the report:\n{text}"
                );
            }
        }
    }
}

fn env_with(moto: &SecretsEmulator, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = moto.env();
    env.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    env
}

const DB_VARS: [&str; 6] = [
    "DB_USER",
    "DB_PASSWORD",
    "DB_HOST",
    "DB_PORT",
    "DB_DATABASE",
    "DATABASE_URL",
];

#[tokio::test]
async fn rds_secret_expands_into_db_vars_and_a_database_url_that_parses_back() {
    let moto = SecretsEmulator::start();
    let secret = json!({
        "username": "app_user",
        "password": NASTY_PASSWORD,
        "host": "users.cluster-abc.us-east-1.rds.amazonaws.com",
        "port": 5432,
        "dbname": "users",
        "engine": "postgres",
        "dbClusterIdentifier": "users"
    });
    moto.create_secret("prod/users-db", &secret.to_string())
        .await;

    let probe = Probe::run(
        "bootstrap",
        &env_with(&moto, &[("DB_SECRET_NAME", "prod/users-db")]),
        &DB_VARS,
    );
    probe.ok();

    assert_eq!(probe.var("DB_USER").as_deref(), Some("app_user"));
    assert_eq!(probe.var("DB_PASSWORD").as_deref(), Some(NASTY_PASSWORD));
    assert_eq!(
        probe.var("DB_HOST").as_deref(),
        Some("users.cluster-abc.us-east-1.rds.amazonaws.com")
    );
    assert_eq!(probe.var("DB_PORT").as_deref(), Some("5432"));
    assert_eq!(probe.var("DB_DATABASE").as_deref(), Some("users"));

    // An independent URL parser gets every part back, the password intact.
    let raw = probe.var("DATABASE_URL").expect("DATABASE_URL set");
    let url = url::Url::parse(&raw).expect("DATABASE_URL parses");
    assert_eq!(url.scheme(), "postgres");
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .unwrap()
            .into_owned()
    };
    assert_eq!(decode(url.username()), "app_user");
    assert_eq!(decode(url.password().expect("a password")), NASTY_PASSWORD);
    assert_eq!(
        url.host_str(),
        Some("users.cluster-abc.us-east-1.rds.amazonaws.com")
    );
    assert_eq!(url.port(), Some(5432));
    assert_eq!(url.path(), "/users");
    assert_eq!(url.query(), None, "`?` must not start a query");
    assert_eq!(url.fragment(), None, "`#` must not start a fragment");

    assert_eq!(probe.result["set"], json!(DB_VARS));
    assert_eq!(probe.result["fetched"], json!(["prod/users-db"]));
    assert_eq!(moto.get_secret_value_calls("prod/users-db"), 1);

    // The call's request id (its span, recorded by the AWS SDK interceptor before telemetry
    // exists, is exported once it does: `otlp_scenario_…` below asserts it).
    let request_ids = probe.result["request_ids"].as_array().expect("request_ids");
    assert_eq!(request_ids.len(), 1, "{}", probe.result);
    assert!(request_ids[0].as_str().is_some_and(|id| !id.is_empty()));

    probe.assert_no_leak(&[NASTY_PASSWORD, &raw]);
}

#[tokio::test]
async fn general_mappings_take_one_key_or_the_whole_secret_by_name_or_arn() {
    let moto = SecretsEmulator::start();
    moto.create_secret(
        "my-app/jwt",
        r#"{"key":"jwt-signing-key-0451","issuer":"users-api"}"#,
    )
    .await;
    let api_arn = moto
        .create_secret("my-app/api-key", "api-key-plain-text-9931")
        .await;
    // The service-specific endpoint variable alone is enough (no AWS_ENDPOINT_URL).
    let mut env: Vec<(String, String)> = moto
        .env()
        .into_iter()
        .filter(|(k, _)| k != "AWS_ENDPOINT_URL")
        .collect();
    env.push(("AWS_ENDPOINT_URL_SECRETS_MANAGER".into(), moto.endpoint()));
    env.push((
        "APPRUNNER_SECRETS".into(),
        format!("JWT_SECRET=my-app/jwt#key,\n API_KEY={api_arn}"),
    ));

    let probe = Probe::run("bootstrap", &env, &["JWT_SECRET", "API_KEY"]);
    probe.ok();
    assert_eq!(
        probe.var("JWT_SECRET").as_deref(),
        Some("jwt-signing-key-0451")
    );
    assert_eq!(
        probe.var("API_KEY").as_deref(),
        Some("api-key-plain-text-9931")
    );
    assert_eq!(probe.result["set"], json!(["JWT_SECRET", "API_KEY"]));
    assert_eq!(moto.get_secret_value_calls("my-app/jwt"), 1);
    assert_eq!(moto.get_secret_value_calls(&api_arn), 1);
    assert_eq!(
        probe.result["request_ids"].as_array().map(Vec::len),
        Some(2)
    );
    probe.assert_no_leak(&["jwt-signing-key-0451", "api-key-plain-text-9931"]);
}

#[tokio::test]
async fn injected_json_expands_the_same_way_without_any_api_call() {
    let moto = SecretsEmulator::start();
    let injected = json!({
        "username": "admin",
        "password": NASTY_PASSWORD,
        "host": "db.internal",
        "port": "3306",
        "engine": "aurora-mysql"
    })
    .to_string();
    let probe = Probe::run(
        "bootstrap",
        &env_with(
            &moto,
            &[
                ("DB_SECRET", &injected),
                // The name is ignored when the JSON was injected: no call for it.
                ("DB_SECRET_NAME", "prod/never-fetched"),
                ("SMTP_JSON", r#"{"password":"smtp-pass-7781"}"#),
                ("APPRUNNER_SECRETS", "SMTP_PASSWORD=env:SMTP_JSON#password"),
            ],
        ),
        &[
            "DB_USER",
            "DB_PASSWORD",
            "DB_PORT",
            "DB_DATABASE",
            "DATABASE_URL",
            "SMTP_PASSWORD",
        ],
    );
    probe.ok();
    assert_eq!(probe.var("DB_USER").as_deref(), Some("admin"));
    assert_eq!(probe.var("DB_PASSWORD").as_deref(), Some(NASTY_PASSWORD));
    assert_eq!(probe.var("DB_PORT").as_deref(), Some("3306"));
    assert_eq!(probe.var("DB_DATABASE"), None, "no dbname in the secret");
    let raw = probe.var("DATABASE_URL").unwrap();
    let url = url::Url::parse(&raw).unwrap();
    assert_eq!(url.scheme(), "mysql");
    assert_eq!(
        percent_encoding::percent_decode_str(url.password().unwrap())
            .decode_utf8()
            .unwrap(),
        NASTY_PASSWORD
    );
    assert_eq!(
        probe.var("SMTP_PASSWORD").as_deref(),
        Some("smtp-pass-7781")
    );
    assert_eq!(probe.result["injected"], json!(["DB_SECRET", "SMTP_JSON"]));
    assert_eq!(probe.result["fetched"], json!([]));
    assert!(moto.requests().is_empty(), "{:?}", moto.requests());
    assert_eq!(probe.result["request_ids"], json!([]));
    probe.assert_no_leak(&[NASTY_PASSWORD, &raw, "smtp-pass-7781"]);
}

#[tokio::test]
async fn existing_variables_win_unless_overwrite_is_on() {
    let moto = SecretsEmulator::start();
    moto.create_secret(
        "prod/db",
        &json!({"username":"u","password":"from-secret-1234","host":"h","port":5432,
                "dbname":"d","engine":"postgres"})
        .to_string(),
    )
    .await;
    let local = [
        ("DB_SECRET_NAME", "prod/db"),
        ("DATABASE_URL", "postgres://dev:dev@localhost/dev"),
        ("DB_PASSWORD", "dev"),
    ];

    let kept = Probe::run("bootstrap", &env_with(&moto, &local), &DB_VARS);
    kept.ok();
    assert_eq!(
        kept.var("DATABASE_URL").as_deref(),
        Some("postgres://dev:dev@localhost/dev")
    );
    assert_eq!(kept.var("DB_PASSWORD").as_deref(), Some("dev"));
    assert_eq!(
        kept.var("DB_HOST").as_deref(),
        Some("h"),
        "unset ones are filled"
    );
    assert_eq!(kept.result["kept"], json!(["DB_PASSWORD", "DATABASE_URL"]));
    kept.assert_no_leak(&["from-secret-1234"]);

    let mut env = env_with(&moto, &local);
    env.push(("PROBE_OVERWRITE".into(), "1".into()));
    let replaced = Probe::run("bootstrap", &env, &DB_VARS);
    replaced.ok();
    assert_eq!(
        replaced.var("DATABASE_URL").as_deref(),
        Some("postgres://u:from-secret-1234@h:5432/d")
    );
    assert_eq!(
        replaced.var("DB_PASSWORD").as_deref(),
        Some("from-secret-1234")
    );
    assert_eq!(replaced.result["kept"], json!([]));
    assert_eq!(moto.get_secret_value_calls("prod/db"), 2);
}

#[tokio::test]
async fn nothing_is_fetched_when_nothing_is_declared_or_everything_is_set() {
    let moto = SecretsEmulator::start();
    let nothing = Probe::run("bootstrap", &moto.env(), &["DATABASE_URL"]);
    nothing.ok();
    assert_eq!(nothing.result["report"], "secrets: nothing declared");
    assert_eq!(nothing.var("DATABASE_URL"), None);

    // Every variable of the declaration is set: the (nonexistent) secret is not even asked for.
    let mut all_set: Vec<(&str, &str)> = DB_VARS.iter().map(|v| (*v, "local")).collect();
    all_set.push(("DB_SECRET_NAME", "does/not/exist"));
    let probe = Probe::run("bootstrap", &env_with(&moto, &all_set), &["DATABASE_URL"]);
    probe.ok();
    assert_eq!(probe.var("DATABASE_URL").as_deref(), Some("local"));
    assert_eq!(probe.result["kept"], json!(DB_VARS));
    assert!(moto.requests().is_empty(), "{:?}", moto.requests());
}

#[tokio::test]
async fn a_missing_secret_is_named_and_leaves_the_environment_alone() {
    let moto = SecretsEmulator::start();
    moto.create_secret("ok/token", "token-value-5521").await;
    let probe = Probe::run(
        "bootstrap",
        &env_with(
            &moto,
            &[
                ("DB_SECRET_NAME", "prod/missing-db"),
                ("APPRUNNER_SECRETS", "TOKEN=ok/token"),
            ],
        ),
        &["TOKEN", "DATABASE_URL"],
    );
    let error = probe.error();
    assert_eq!(
        error,
        "secret `prod/missing-db` was not found in Secrets Manager (stage AWSCURRENT, region \
         us-east-1): check the name or ARN and the region"
    );
    assert_eq!(
        probe.var("TOKEN"),
        None,
        "nothing is set when one secret fails"
    );
    probe.assert_no_leak(&["token-value-5521"]);
}

#[tokio::test]
async fn not_json_missing_key_and_binary_secrets_are_clear_errors_without_values() {
    let moto = SecretsEmulator::start();
    moto.create_secret("plain", "plain-text-s3cret-value").await;
    moto.create_secret("json", r#"{"present":"json-s3cret-value"}"#)
        .await;
    moto.create_binary_secret("binary", b"binary-s3cret-value")
        .await;
    moto.create_secret("good", "good-s3cret-value").await;
    let values = [
        "plain-text-s3cret-value",
        "json-s3cret-value",
        "binary-s3cret-value",
        "good-s3cret-value",
    ];

    let cases = [
        (
            "GOOD=good,A=plain#key",
            "secret `plain` is not a JSON object (JSON syntax error at line 1, column 1)",
        ),
        (
            "GOOD=good,A=json#absent",
            "secret `json` has no key `absent`",
        ),
        ("GOOD=good,A=binary", "secret `binary` holds binary data"),
    ];
    for (spec, expected) in cases {
        let probe = Probe::run(
            "bootstrap",
            &env_with(&moto, &[("APPRUNNER_SECRETS", spec)]),
            &["GOOD", "A"],
        );
        let error = probe.error();
        assert!(error.starts_with(expected), "{spec}: {error}");
        assert_eq!(probe.var("GOOD"), None, "{spec}: set despite the failure");
        assert_eq!(probe.var("A"), None);
        probe.assert_no_leak(&values);
    }

    // An RDS expansion of a non-JSON secret, too.
    let probe = Probe::run(
        "bootstrap",
        &env_with(&moto, &[("DB_SECRET_NAME", "plain")]),
        &["DATABASE_URL"],
    );
    assert!(
        probe
            .error()
            .contains("secret `plain` is not a JSON object")
    );
    probe.assert_no_leak(&values);
}

#[tokio::test]
async fn no_region_is_an_error_naming_aws_region() {
    let moto = SecretsEmulator::start();
    let env: Vec<(String, String)> = moto
        .env()
        .into_iter()
        .filter(|(k, _)| k != "AWS_REGION")
        .chain([
            ("DB_SECRET_NAME".to_owned(), "prod/db".to_owned()),
            (
                "AWS_CONFIG_FILE".to_owned(),
                "/nonexistent/config".to_owned(),
            ),
        ])
        .collect();
    let probe = Probe::run("bootstrap", &env, &[]);
    let error = probe.error();
    assert!(error.contains("no AWS region configured"), "{error}");
    assert!(error.contains("AWS_REGION"), "{error}");
    assert!(moto.requests().is_empty());
}

#[tokio::test]
async fn access_denied_names_the_iam_action() {
    // Three requests are free (creating the secret, the user and its key); then IAM applies.
    let moto = SecretsEmulator::start_enforcing_iam(3);
    moto.create_secret("prod/locked", "locked-s3cret-value")
        .await;
    let user = moto.create_iam_user_without_permissions("no-permissions");
    let env: Vec<(String, String)> = moto
        .env()
        .into_iter()
        .map(|(k, v)| match k.as_str() {
            "AWS_ACCESS_KEY_ID" => (k, user.access_key_id.clone()),
            "AWS_SECRET_ACCESS_KEY" => (k, user.secret_access_key.clone()),
            _ => (k, v),
        })
        .chain([(
            "APPRUNNER_SECRETS".to_owned(),
            "LOCKED=prod/locked".to_owned(),
        )])
        .collect();
    let probe = Probe::run("bootstrap", &env, &["LOCKED"]);
    let error = probe.error();
    assert!(
        error.starts_with("access denied reading secret `prod/locked` (region us-east-1)"),
        "{error}"
    );
    assert!(error.contains("secretsmanager:GetSecretValue"), "{error}");
    assert_eq!(probe.var("LOCKED"), None);
    probe.assert_no_leak(&["locked-s3cret-value", &user.secret_access_key]);
}

#[tokio::test]
async fn bootstrap_refuses_to_run_once_other_threads_exist() {
    let moto = SecretsEmulator::start();
    moto.create_secret("t", "thread-s3cret").await;
    let probe = Probe::run(
        "bootstrap",
        &env_with(
            &moto,
            &[("PROBE_SPAWN_THREAD", "1"), ("APPRUNNER_SECRETS", "T=t")],
        ),
        &["T"],
    );
    let error = probe.error();
    assert!(
        error.starts_with(
            "secrets must be put into the environment before any other thread exists, but this \
             process has 2 threads"
        ),
        "{error}"
    );
    assert_eq!(probe.var("T"), None);
    assert_eq!(
        moto.get_secret_value_calls("t"),
        0,
        "fetched although it could not set"
    );
}

/// What `#[apprunner::main]` will do: bootstrap, telemetry, replayed start-up spans, a live
/// cache read; everything exported over OTLP to a real receiver.
#[tokio::test]
async fn start_up_and_cache_fetches_reach_the_collector_as_client_spans_without_values() {
    let receiver = OtlpReceiver::start().await;
    let moto = SecretsEmulator::start();
    moto.create_secret(
        "prod/db",
        &json!({"username":"u","password":NASTY_PASSWORD,"host":"h","engine":"postgres"})
            .to_string(),
    )
    .await;
    moto.create_secret("prod/api-key", "cache-read-s3cret-6612")
        .await;

    let probe = Probe::run(
        "otlp",
        &env_with(
            &moto,
            &[
                ("DB_SECRET_NAME", "prod/db"),
                ("PROBE_CACHE_SECRET", "prod/api-key"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.grpc_endpoint()),
                ("OTEL_SERVICE_NAME", "secrets-probe"),
                ("APPRUNNER_LOG_FORMAT", "json"),
            ],
        ),
        &["DATABASE_URL"],
    );
    probe.ok();
    assert_eq!(probe.result["cache_value"], "cache-read-s3cret-6612");

    let spans = receiver
        .wait_until(
            |spans| {
                spans
                    .iter()
                    .filter(|s| s.name == "SecretsManager.GetSecretValue")
                    .count()
                    >= 2
            },
            Duration::from_secs(20),
        )
        .await;
    let root = one(&spans, |s| s.name == "secrets bootstrap");
    assert_eq!(root.kind, SpanKind::Internal);
    assert!(root.is_root());
    // An X-Ray local root named after the service, not after itself.
    assert_eq!(root.attr_str("aws.span.kind"), Some("LOCAL_ROOT"));
    assert_eq!(root.attr_str("aws.local.service"), Some("secrets-probe"));
    let startup = one(&spans, |s| {
        s.name == "SecretsManager.GetSecretValue"
            && s.attr_str("aws.secretsmanager.secret_id") == Some("prod/db")
    });
    let cached = one(&spans, |s| {
        s.name == "SecretsManager.GetSecretValue"
            && s.attr_str("aws.secretsmanager.secret_id") == Some("prod/api-key")
    });
    assert_eq!(
        startup.parent_span_id.as_deref(),
        Some(root.span_id.as_str())
    );
    assert_eq!(startup.trace_id, root.trace_id);
    assert!(startup.start_time_unix_nano >= root.start_time_unix_nano);
    assert!(startup.end_time_unix_nano <= root.end_time_unix_nano);
    for span in [startup, cached] {
        assert_eq!(span.kind, SpanKind::Client, "{}", span.summary());
        assert_eq!(span.attr_str("rpc.system"), Some("aws-api"));
        assert_eq!(span.attr_str("rpc.service"), Some("SecretsManager"));
        assert_eq!(span.attr_str("rpc.method"), Some("GetSecretValue"));
        assert_eq!(span.attr_str("cloud.region"), Some("us-east-1"));
        assert_eq!(
            span.attr_str("aws.secretsmanager.version_stage"),
            Some("AWSCURRENT")
        );
        assert_eq!(span.attr_i64("http.response.status_code"), Some(200));
        assert!(
            span.attr_str("aws.request_id")
                .is_some_and(|id| !id.is_empty()),
            "{}",
            span.summary()
        );
    }
    // The cache read ran outside any span: a local root too, named after the service.
    assert!(cached.is_root());
    assert_eq!(cached.attr_str("aws.span.kind"), Some("LOCAL_ROOT"));
    assert_eq!(cached.attr_str("aws.local.service"), Some("secrets-probe"));
    assert_eq!(startup.attr_str("aws.span.kind"), None);
    // On the X-Ray service map: the service, and Secrets Manager downstream of it.
    let map = xray::service_map(&spans);
    assert_eq!(
        map.services,
        BTreeSet::from(["secrets-probe".to_owned()]),
        "{map:?}"
    );
    assert_eq!(
        map.remotes,
        BTreeSet::from(["SecretsManager".to_owned()]),
        "{map:?}"
    );
    assert_eq!(
        probe.result["request_ids"],
        json!([startup.attr_str("aws.request_id").unwrap()])
    );

    // No value anywhere in what reached the collector, nor in the logs.
    let exported = format!("{spans:?}");
    for value in [NASTY_PASSWORD, "cache-read-s3cret-6612"] {
        assert!(!exported.contains(value), "{value:?} exported in spans");
    }
    probe.assert_no_leak(&[NASTY_PASSWORD, "cache-read-s3cret-6612"]);
    assert!(
        probe.stdout.contains("[REDACTED]"),
        "the cache read is logged with its value redacted:\n{}",
        probe.stdout
    );
}

fn one(spans: &[SpanRecord], pred: impl Fn(&SpanRecord) -> bool) -> &SpanRecord {
    let found: Vec<&SpanRecord> = spans.iter().filter(|s| pred(s)).collect();
    assert_eq!(
        found.len(),
        1,
        "expected one matching span, got {}: {:#?}",
        found.len(),
        spans.iter().map(SpanRecord::summary).collect::<Vec<_>>()
    );
    found[0]
}
