//! Cost of `apprunner::db`: a primary-key `SELECT` through the traced pool against the same
//! query on a raw `sqlx` pool, side by side in one run, on SQLite (in memory) and PostgreSQL (a
//! throwaway cluster from the test harness). (The statement sanitizer is crate-private: its
//! cost shows in the first run of each distinct statement.)
//!
//! Telemetry is on for both pools (100% sampling, OTLP/gRPC export to a live receiver that
//! decodes every export and counts its spans, as a collector forwarding them would), and
//! each query runs inside its own request span, as in a service: the only difference is the
//! CLIENT span the traced pool adds. Each iteration runs `CONCURRENCY` queries concurrently;
//! criterion reports queries per second. A final interleaved pass (alternating rounds of both
//! pools) prints the throughput ratio. Target: traced ≥ 0.95 × raw.
//!
//! Run with: `cargo bench -p apprunner-kit-benches --bench db`
//! (`DB_BENCH_EXPORTER=reject`: the receiver rejects without decoding; `none`: spans are
//! recorded, not exported).
#![allow(clippy::print_stderr)]
// `criterion_group!` generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use apprunner::db::{DbConfig, Pool};
use apprunner::telemetry::{TelemetryConfig, TelemetryGuard, TracesExporter};
use apprunner_kit_tests::{OtlpReceiver, Postgres, ReceiverBehavior};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tracing::Instrument as _;

#[path = "common.rs"]
mod common;
use common::{
    flushed_stats, process_cpu, report_pass_spans, round_ratios, selected, shutdown_and_report,
};

const CONCURRENCY: usize = 8;
const ROWS: i64 = 1000;
const RATIO_ROUNDS: usize = 40;
const RATIO_BATCHES: usize = 100;

/// The statement a service runs most: one row by primary key.
trait PkSelect: Clone + Send + Sync + 'static {
    fn select(&self, id: i64) -> impl Future<Output = ()> + Send;
}

macro_rules! pk_select {
    ($pool:ty, $sql:literal) => {
        impl PkSelect for $pool {
            async fn select(&self, id: i64) {
                let row: (i64, String) = sqlx::query_as($sql)
                    .bind(id)
                    .fetch_one(self)
                    .await
                    .expect("select");
                black_box(row);
            }
        }
    };
}

pk_select!(sqlx::SqlitePool, "SELECT id, email FROM users WHERE id = ?");
pk_select!(
    Pool<sqlx::Sqlite>,
    "SELECT id, email FROM users WHERE id = ?"
);
pk_select!(sqlx::PgPool, "SELECT id, email FROM users WHERE id = $1");
pk_select!(
    Pool<sqlx::Postgres>,
    "SELECT id, email FROM users WHERE id = $1"
);

/// `CONCURRENCY` requests, each a request span around one query.
async fn batch(pool: &impl PkSelect, round: usize) {
    let queries = (0..CONCURRENCY).map(|i| {
        let pool = pool.clone();
        let id = ((round * CONCURRENCY + i) as i64 % ROWS) + 1;
        let request = tracing::info_span!("request", otel.kind = "server");
        tokio::spawn(async move { pool.select(id).await }.instrument(request))
    });
    for query in futures_util::future::join_all(queries).await {
        query.expect("query task");
    }
}

fn compare<R: PkSelect, T: PkSelect>(
    c: &mut Criterion,
    runtime: &tokio::runtime::Runtime,
    receiver: &OtlpReceiver,
    telemetry: &TelemetryGuard,
    engine: &str,
    raw: &R,
    traced: &T,
) {
    let mut group = c.benchmark_group(format!("pk_select_{engine}"));
    group.throughput(Throughput::Elements(CONCURRENCY as u64));
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("raw_sqlx", |b| {
        b.iter_custom(|iters| {
            receiver.clear();
            runtime.block_on(async {
                let started = Instant::now();
                for round in 0..iters as usize {
                    batch(raw, round).await;
                }
                started.elapsed()
            })
        });
    });
    group.bench_function("apprunner_traced", |b| {
        b.iter_custom(|iters| {
            receiver.clear();
            runtime.block_on(async {
                let started = Instant::now();
                for round in 0..iters as usize {
                    batch(traced, round).await;
                }
                started.elapsed()
            })
        });
    });
    group.finish();

    // The same comparison, interleaved, so that load drifting during the run (other processes
    // on a small machine) hits both sides alike. Not in test mode (`cargo test` runs each
    // benchmark once, without `--bench`).
    // Nor in criterion's profiling mode (`--profile-time`, as under callgrind).
    if !std::env::args().any(|a| a == "--bench") || std::env::args().any(|a| a == "--profile-time")
    {
        return;
    }
    let stats_before = flushed_stats(telemetry);
    let mut rounds: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    let mut cpu = [Duration::ZERO; 2];
    runtime.block_on(async {
        for round_pair in 0..RATIO_ROUNDS {
            // Rounds alternate which pool goes first (ABBA…), so neither always runs right
            // after a switch.
            let order = if round_pair % 2 == 0 { [0, 1] } else { [1, 0] };
            for side in order {
                let rounds = &mut rounds[side];
                receiver.clear();
                let cpu_before = process_cpu();
                let started = Instant::now();
                for round in 0..RATIO_BATCHES {
                    if side == 0 {
                        batch(raw, round).await;
                    } else {
                        batch(traced, round).await;
                    }
                }
                rounds.push(started.elapsed());
                cpu[side] += process_cpu().saturating_sub(cpu_before);
            }
        }
    });
    let queries = (RATIO_ROUNDS * RATIO_BATCHES * CONCURRENCY) as f64;
    let [raw_qps, traced_qps] = rounds
        .each_ref()
        .map(|times| queries / times.iter().sum::<Duration>().as_secs_f64());
    let (median, min, max) = round_ratios(&rounds[0], &rounds[1]);
    eprintln!(
        "interleaved {engine}: raw_sqlx {raw_qps:.0} q/s, apprunner_traced {traced_qps:.0} q/s, \
         ratio {:.3}; per round: median {median:.3} (min {min:.3}, max {max:.3})",
        traced_qps / raw_qps
    );
    report_pass_spans(&format!("interleaved {engine}"), telemetry, &stats_before);
    // This process's CPU per query (the pools, SQLite itself, the export and the in-process
    // receiver; not the PostgreSQL server's processes).
    let [raw_us, traced_us] = cpu.map(|time| time.as_secs_f64() * 1e6 / queries);
    eprintln!(
        "interleaved {engine} CPU per query in this process: raw_sqlx {raw_us:.1} µs, \
         apprunner_traced {traced_us:.1} µs"
    );
}

async fn fill<DB: apprunner::db::Driver>(pool: &Pool<DB>) {
    sqlx::raw_sql("CREATE TABLE users (id BIGINT PRIMARY KEY, email TEXT NOT NULL)")
        .execute(pool)
        .await
        .expect("create table");
    let mut tx = pool.begin().await.expect("begin");
    for id in 1..=ROWS {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "INSERT INTO users (id, email) VALUES ({id}, 'user{id}@example.com')"
        )))
        .execute(&mut *tx)
        .await
        .expect("insert");
    }
    tx.commit().await.expect("commit");
}

/// Whether the command line's filters (`cargo bench --bench db -- <filter>`) select any of
/// `ids`: the PostgreSQL cluster and the interleaved pass are only set up when they do.
fn pk_select(c: &mut Criterion) {
    if !selected(&[
        "pk_select_sqlite/raw_sqlx",
        "pk_select_sqlite/apprunner_traced",
        "pk_select_postgres/raw_sqlx",
        "pk_select_postgres/apprunner_traced",
    ]) {
        return;
    }
    let exporter = std::env::var("DB_BENCH_EXPORTER").unwrap_or_default();
    let receiver = OtlpReceiver::start_blocking_with(match exporter.as_str() {
        "reject" => ReceiverBehavior::Unavailable,
        _ => ReceiverBehavior::Count,
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    // On 2 cores, the export and the in-process receiver's decoding compete with the queries
    // for the CPU. DB_BENCH_EXPORTER=reject: the receiver answers UNAVAILABLE without decoding
    // (the application still builds, encodes and sends every batch, as it would to a collector
    // elsewhere); DB_BENCH_EXPORTER=none: spans are recorded, not exported.
    let telemetry = runtime.block_on(async {
        let config =
            TelemetryConfig::from_lookup(|key| (key == "RUST_LOG").then(|| "error".to_owned()))
                .expect("config")
                .service_name("bench-db")
                .otlp_endpoint(receiver.grpc_endpoint());
        let config = match exporter.as_str() {
            "none" => config.traces_exporter_set(TracesExporter::None),
            _ => config,
        };
        config.init().expect("telemetry init")
    });

    // SQLite: one shared in-memory database per pool, the same rows in both.
    let (raw, traced) = runtime.block_on(async {
        let traced = apprunner::db::SqlitePool::connect_with(
            DbConfig::from_url("sqlite::memory:")
                .unwrap()
                .max_connections(CONCURRENCY as u32),
        )
        .await
        .expect("traced sqlite pool");
        fill(&traced).await;
        let raw = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(CONCURRENCY as u32)
            .connect_with(traced.as_sqlx().connect_options().as_ref().clone())
            .await
            .expect("raw sqlite pool");
        (raw, traced)
    });
    compare(c, &runtime, &receiver, &telemetry, "sqlite", &raw, &traced);

    // PostgreSQL: both pools on the same database of a throwaway cluster.
    let pg = Postgres::start();
    let url = pg.create_database("bench");
    let (raw, traced) = runtime.block_on(async {
        let traced = apprunner::db::PgPool::connect_with(
            DbConfig::from_url(url.clone())
                .unwrap()
                .max_connections(CONCURRENCY as u32),
        )
        .await
        .expect("traced postgres pool");
        fill(&traced).await;
        let raw = sqlx::postgres::PgPoolOptions::new()
            .max_connections(CONCURRENCY as u32)
            .connect(&url)
            .await
            .expect("raw postgres pool");
        (raw, traced)
    });
    compare(
        c, &runtime, &receiver, &telemetry, "postgres", &raw, &traced,
    );

    let stats = shutdown_and_report(&runtime, telemetry);
    assert!(
        matches!(exporter.as_str(), "none" | "reject") || stats.spans_exported > 0,
        "no span exported: {stats:?}"
    );
}

criterion_group!(benches, pk_select);
criterion_main!(benches);
