//! Background jobs over SNS HTTP push, end to end with real peers: the users API on PostgreSQL
//! with its secrets in the AWS emulator (moto), whose SNS really POSTs notifications to the
//! service's `/jobs/sns` (moto's messages are not signed by AWS, so the service runs with the
//! emulator setting, whose start-up warning is asserted), spans to an OTLP receiver.
//!
//! And the one-off `users-api migrate` command, twice at once against one PostgreSQL.

mod support;

use std::time::{Duration, Instant};

use apprunner_kit_tests::{Postgres, SpanKind, SpanRecord};
use serde_json::json;
use support::{AppRunnerPeers, Call, Http, Service, TraceHeader};

/// The emulator setting: signatures are not verified.
const SKIP: &str = "APPRUNNER_JOBS_SKIP_SIGNATURE_CHECK_FOR_EMULATOR";

async fn sns_client(moto: &apprunner_kit_tests::SecretsEmulator) -> aws_sdk_sns::Client {
    aws_sdk_sns::Client::new(&moto.sdk_config())
}

/// Waits until `check` holds (20 s at most).
async fn eventually<F: AsyncFn() -> bool>(what: &str, check: F) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_up_publishes_a_welcome_job_that_runs_once_in_the_same_trace() {
    let pg = Postgres::start();
    let db_url = url::Url::parse(&pg.create_database("users_jobs")).unwrap();
    let db = sqlx::PgPool::connect(db_url.as_str()).await.unwrap();
    let AppRunnerPeers {
        moto,
        receiver,
        mut env,
        ..
    } = AppRunnerPeers::start(
        &pg,
        &db_url,
        "unused-by-a-trusting-cluster",
        &"k".repeat(64),
    )
    .await;
    let sns = sns_client(&moto).await;
    let topic = sns
        .create_topic()
        .name("users-api-jobs")
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    env.push(("APPRUNNER_JOBS_TOPIC_ARN".into(), topic.clone()));
    env.push((SKIP.into(), "true".into()));
    let dir = tempfile::tempdir().unwrap();
    let mut service = tokio::task::block_in_place(|| Service::start(dir.path(), &env));
    // The emulator setting is loud.
    assert!(
        service.logs().iter().any(|l| l["level"] == "WARN"
            && l["message"]
                .as_str()
                .is_some_and(|m| m.contains("SNS SIGNATURE VERIFICATION IS OFF"))),
        "{}",
        service.output()
    );
    let endpoint = service.url("/jobs/sns");
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("http")
        .endpoint(&endpoint)
        .send()
        .await
        .unwrap();

    let http = Http::new();
    let base = service.url("");
    // A subscription confirmation for the service's topic is confirmed (with the emulator:
    // through its ConfirmSubscription API); one for another topic is refused.
    let confirmation = |topic: &str| {
        json!({
            "Type": "SubscriptionConfirmation",
            "MessageId": "c0nf1rm-0000-0000-0000-000000000001",
            "Token": "2336412f37fb687f5d51e6e2425c464de12884c4",
            "TopicArn": topic,
            "Message": "You have chosen to subscribe to the topic.",
            "SubscribeURL": format!(
                "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn={topic}&Token=2336412f"
            ),
            "Timestamp": "2026-12-07T00:00:00.000Z",
            "SignatureVersion": "2",
            "Signature": "bm90LXNpZ25lZA==",
            "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000.pem"
        })
    };
    let confirmed = http
        .send(
            &base,
            &Call::new("POST", "/jobs/sns").json(&confirmation(&topic)),
            None,
        )
        .await;
    assert_eq!(confirmed.status, 200, "{}", service.output());
    let confirm_calls = || {
        moto.requests()
            .iter()
            .filter(|r| r.raw_body.contains("Action=ConfirmSubscription"))
            .filter(|r| {
                r.raw_body
                    .contains("Token=2336412f37fb687f5d51e6e2425c464de12884c4")
            })
            .count()
    };
    assert_eq!(
        confirm_calls(),
        1,
        "the emulator saw no ConfirmSubscription"
    );
    let other = http
        .send(
            &base,
            &Call::new("POST", "/jobs/sns").json(&confirmation(
                "arn:aws:sns:us-east-1:123456789012:someone-elses",
            )),
            None,
        )
        .await;
    assert_eq!(other.status, 403);
    assert_eq!(
        confirm_calls(),
        1,
        "a foreign topic's subscription was confirmed"
    );

    // Sign-up: answered at once; the welcome job runs in the background.
    let trace = TraceHeader::new();
    let ada = json!({"email": "ada@example.com", "password": "ada's long password"});
    let signup = http
        .send(
            &base,
            &Call::new("POST", "/signup").json(&ada),
            Some(&trace),
        )
        .await;
    assert_eq!(signup.status, 201, "{}", service.output());
    let user_id = signup.json()["data"]["id"].as_str().unwrap().to_owned();
    let welcomes = async || -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM welcomes WHERE user_id = $1")
            .bind(&user_id)
            .fetch_one(&db)
            .await
            .unwrap()
    };
    eventually("the welcome job", async || welcomes().await == 1).await;
    let (message_id, state): (String, String) =
        sqlx::query_as("SELECT message_id, state FROM apprunner_jobs WHERE job = 'welcome'")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(state, "done");

    // The same message delivered again: acknowledged, not run again.
    let again = json!({
        "Type": "Notification",
        "MessageId": message_id,
        "TopicArn": topic,
        "Message": json!({"job": "welcome", "payload": {"user_id": user_id}}).to_string(),
        "Timestamp": "2026-12-07T00:00:00.000Z",
        "SignatureVersion": "2",
        "Signature": "bm90LXNpZ25lZA==",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000.pem"
    });
    let duplicate = http
        .send(&base, &Call::new("POST", "/jobs/sns").json(&again), None)
        .await;
    assert_eq!(duplicate.status, 200);
    assert_eq!(duplicate.body.as_ref(), b"duplicate");
    assert_eq!(welcomes().await, 1, "the job ran twice");

    // The operational job: `migrate`, published by an operator.
    let migrate_id = sns
        .publish()
        .topic_arn(&topic)
        .message(json!({"job": "migrate", "payload": null}).to_string())
        .send()
        .await
        .unwrap()
        .message_id
        .unwrap();
    let migrate_state: (String,) =
        sqlx::query_as("SELECT state FROM apprunner_jobs WHERE message_id = $1")
            .bind(&migrate_id)
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(migrate_state.0, "done", "{}", service.output());

    service.sigterm();
    assert!(service.wait_exit().success(), "{}", service.output());

    // One trace: sign-up → publish → delivery → the job's query.
    let spans = receiver
        .wait_until(
            |spans| spans.iter().any(|s| s.name.starts_with("process ")),
            Duration::from_secs(20),
        )
        .await;
    let in_trace: Vec<&SpanRecord> = spans
        .iter()
        .filter(|s| s.trace_id == trace.trace_id)
        .collect();
    let one = |pred: &dyn Fn(&SpanRecord) -> bool, what: &str| -> &SpanRecord {
        let found: Vec<_> = in_trace.iter().copied().filter(|s| pred(s)).collect();
        assert_eq!(
            found.len(),
            1,
            "one {what} in the sign-up's trace: {in_trace:#?}"
        );
        found[0]
    };
    let server = one(
        &|s| s.kind == SpanKind::Server && s.attr_str("http.route") == Some("/signup"),
        "sign-up SERVER span",
    );
    let publish = one(&|s| s.name == "publish welcome", "publish span");
    assert_eq!(
        publish.parent_span_id.as_deref(),
        Some(server.span_id.as_str())
    );
    let sns_call = one(&|s| s.name == "SNS.Publish", "SNS.Publish span");
    assert_eq!(
        sns_call.parent_span_id.as_deref(),
        Some(publish.span_id.as_str())
    );
    assert_eq!(sns_call.kind, SpanKind::Client);
    let delivery = one(&|s| s.name == "process users-api-jobs", "delivery span");
    assert_eq!(delivery.kind, SpanKind::Consumer);
    assert_eq!(
        delivery.parent_span_id.as_deref(),
        Some(publish.span_id.as_str())
    );
    assert_eq!(delivery.attr_str("messaging.system"), Some("aws_sns"));
    assert_eq!(
        delivery.attr_str("messaging.destination.name"),
        Some("users-api-jobs")
    );
    assert_eq!(
        delivery.attr_str("messaging.message.id"),
        Some(message_id.as_str())
    );
    assert_eq!(delivery.attr_str("apprunner.job"), Some("welcome"));
    // The POST that carried it is linked.
    assert_eq!(delivery.links.len(), 1, "{delivery:#?}");
    let insert = one(
        &|s| {
            s.kind == SpanKind::Client
                && s.attr_str("db.query.summary")
                    .is_some_and(|q| q.contains("welcomes"))
        },
        "the job's INSERT",
    );
    assert_eq!(
        insert.parent_span_id.as_deref(),
        Some(delivery.span_id.as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_migrate_commands_at_once_apply_each_migration_once() {
    let pg = Postgres::start();
    let db_url = pg.create_database("users_migrate");
    let run = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_users-api"))
            .arg("migrate")
            .env_clear()
            .env("DATABASE_URL", &db_url)
            .env("OTEL_TRACES_EXPORTER", "none")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start users-api migrate")
    };
    let (a, b) = (run(), run());
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "users-api migrate failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("migrate: the database is up to date"),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let db = sqlx::PgPool::connect(&db_url).await.unwrap();
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .unwrap()
        .count();
    let applied: Vec<(i64, bool)> =
        sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&db)
            .await
            .unwrap();
    assert_eq!(applied.len(), files, "{applied:?}");
    assert!(applied.iter().all(|(_, ok)| *ok));
    // The tables exist, once.
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_name IN ('users', 'welcomes')",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(tables, 2);
}
