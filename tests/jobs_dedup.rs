//! `apprunner::jobs`: each job runs once per SNS `MessageId`, on PostgreSQL, MariaDB and SQLite
//! (the kit's `apprunner_jobs` table in the service's own database), through the real endpoint
//! served over HTTP: redelivery, a second delivery while the first runs, a failed run retried, a run past its
//! budget, a panicking run, and a claim left behind by a runner that died.
//!
//! Signatures are not what is tested here (see `jobs_signature.rs`): these endpoints run with
//! the emulator setting.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use apprunner::db::{DbConfig, MySqlPool, PgPool, SqlitePool};
use apprunner::jobs::{JobStore, Jobs};
use apprunner_kit_tests::{MariaDb, Postgres};
use serde::Deserialize;
use serde_json::json;

const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:jobs";

#[derive(Deserialize)]
struct Work {
    /// Fail the first run.
    #[serde(default)]
    fail_first: bool,
    /// Sleep this long before finishing.
    #[serde(default)]
    sleep_ms: u64,
    /// Panic on the first run.
    #[serde(default)]
    panic_first: bool,
    /// Say it started, then wait for the test's go before finishing.
    #[serde(default)]
    hold: bool,
}

/// The test's hold on a running job: `started` when it runs, `release` to let it finish.
#[derive(Default)]
struct Hold {
    started: tokio::sync::Notify,
    release: tokio::sync::Notify,
}

/// A served jobs endpoint counting the runs that succeeded.
struct Served {
    base: String,
    runs: Arc<AtomicUsize>,
    hold: Arc<Hold>,
    http: reqwest::Client,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(store: JobStore) -> Served {
    let runs = Arc::new(AtomicUsize::new(0));
    let failed_once = Arc::new(AtomicUsize::new(0));
    let panicked_once = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&runs);
    let hold = Arc::new(Hold::default());
    let held = Arc::clone(&hold);
    let router = Jobs::new()
        .topic(TOPIC)
        .store(store)
        .budget(Duration::from_millis(800))
        .skip_signature_check_for_emulator()
        .handle("work", move |work: Work| {
            let runs = Arc::clone(&counted);
            let failed_once = Arc::clone(&failed_once);
            let panicked_once = Arc::clone(&panicked_once);
            let held = Arc::clone(&held);
            async move {
                if work.hold {
                    held.started.notify_one();
                    held.release.notified().await;
                }
                tokio::time::sleep(Duration::from_millis(work.sleep_ms)).await;
                if work.panic_first && panicked_once.fetch_add(1, Ordering::SeqCst) == 0 {
                    panic!("first run panics on purpose");
                }
                if work.fail_first && failed_once.fetch_add(1, Ordering::SeqCst) == 0 {
                    return Err(std::io::Error::other("first run fails on purpose"));
                }
                runs.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        })
        .router()
        .await
        .expect("the jobs router");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    Served {
        base,
        runs,
        hold,
        http: reqwest::Client::new(),
        task,
    }
}

impl Served {
    /// Delivers message `id` with `payload` for job `work`: the status and the body.
    async fn deliver(&self, id: &str, payload: serde_json::Value) -> (u16, String) {
        let message = json!({
            "Type": "Notification",
            "MessageId": id,
            "TopicArn": TOPIC,
            "Message": json!({"job": "work", "payload": payload}).to_string(),
            "Timestamp": "2026-12-07T00:00:00.000Z",
            "SignatureVersion": "2",
            "Signature": "bm90LXNpZ25lZA==",
            "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0.pem"
        });
        let response = self
            .http
            .post(format!("{}{}", self.base, Jobs::PATH))
            .header("x-amz-sns-message-type", "Notification")
            .body(message.to_string())
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }
}

/// Every scenario against one engine; `stale` inserts a `running` claim made long ago by a
/// runner that died, for message `id`.
async fn scenarios<S, F>(store: JobStore, stale: S)
where
    S: Fn(&'static str) -> F,
    F: Future<Output = ()>,
{
    let served = serve(store).await;

    // Once per message id.
    assert_eq!(served.deliver("m1", json!({})).await, (200, "done".into()));
    assert_eq!(
        served.deliver("m1", json!({})).await,
        (200, "duplicate".into())
    );
    assert_eq!(served.runs(), 1);

    // A failed run is answered 500 and runs again on the next delivery.
    let failing = json!({"fail_first": true});
    assert_eq!(
        served.deliver("m2", failing.clone()).await,
        (500, "failed".into())
    );
    assert_eq!(served.runs(), 1);
    assert_eq!(served.deliver("m2", failing).await, (200, "done".into()));
    assert_eq!(served.runs(), 2);

    // A second delivery while the first runs the job: told to come back (503), and the job
    // runs once.
    let held = json!({"hold": true});
    let first = served.deliver("m3", held.clone());
    let second = async {
        served.hold.started.notified().await;
        let answer = served.deliver("m3", held.clone()).await;
        served.hold.release.notify_one();
        answer
    };
    let (first, second) = tokio::join!(first, second);
    assert_eq!(first, (200, "done".into()));
    assert_eq!(second, (503, "in_progress".into()));
    assert_eq!(served.runs(), 3);
    assert_eq!(served.deliver("m3", held).await, (200, "duplicate".into()));

    // Past its budget (800 ms): stopped, answered 504, and the claim given back.
    let too_slow = json!({"sleep_ms": 3000});
    assert_eq!(
        served.deliver("m4", too_slow).await,
        (504, "timeout".into())
    );
    assert_eq!(served.deliver("m4", json!({})).await, (200, "done".into()));
    assert_eq!(served.runs(), 4);

    // A panicking run gives its claim back: the next delivery runs it.
    let panicking = json!({"panic_first": true});
    assert_eq!(
        served.deliver("m6", panicking.clone()).await,
        (500, "panicked".into())
    );
    assert_eq!(served.runs(), 4);
    assert_eq!(served.deliver("m6", panicking).await, (200, "done".into()));
    assert_eq!(served.runs(), 5);

    // A claim whose runner died (older than the lease) is taken over.
    stale("m5").await;
    assert_eq!(served.deliver("m5", json!({})).await, (200, "done".into()));
    assert_eq!(served.runs(), 6);
}

/// The statement leaving a dead runner's claim; `$1`/`?` for the id.
fn stale_claim(placeholder: &str) -> String {
    format!(
        "INSERT INTO apprunner_jobs (message_id, job, state, claimed_at_ms) \
         VALUES ({placeholder}, 'work', 'running', 0)"
    )
}

/// Runs [`scenarios`] on `pool`, whose engine writes parameter 1 as `placeholder`.
macro_rules! on_pool {
    ($pool:expr, $placeholder:literal) => {{
        let pool = $pool;
        let sql = stale_claim($placeholder);
        let stale_pool = pool.clone();
        scenarios(pool.into(), move |id| {
            let (pool, sql) = (stale_pool.clone(), sql.clone());
            async move {
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(id)
                    .execute(&pool)
                    .await
                    .unwrap();
            }
        })
        .await;
    }};
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_runs_each_job_once() {
    let pg = Postgres::start();
    let url = pg.create_database("jobs");
    on_pool!(
        PgPool::connect_with(DbConfig::from_url(url).unwrap())
            .await
            .unwrap(),
        "$1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_runs_each_job_once() {
    let server = MariaDb::start();
    let url = server.create_database("jobs");
    on_pool!(
        MySqlPool::connect_with(DbConfig::from_url(url).unwrap())
            .await
            .unwrap(),
        "?"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_runs_each_job_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("jobs.db").display());
    on_pool!(
        SqlitePool::connect_with(DbConfig::from_url(url).unwrap())
            .await
            .unwrap(),
        "?1"
    );
}
