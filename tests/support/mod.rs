//! Shared integration-test harness for apprunner-kit: real peers for real tests.
//!
//! - [`OtlpReceiver`]: an OTLP trace receiver (gRPC and http/protobuf, plain, TLS or mutual TLS,
//!   gzip) recording every span; [`TestCa`]: the certificates its TLS uses.
//! - [`Probe`]: runs the `telemetry-probe` binary as a child process and reads its result.
//! - [`Postgres`]: a throwaway PostgreSQL cluster (or `APPRUNNER_TEST_DATABASE_URL`).
//! - [`MariaDb`]: a throwaway MariaDB server (or `APPRUNNER_TEST_MYSQL_URL`).
//! - [`SecretsEmulator`]: a moto Secrets Manager server.
//! - [`XrayOtlpPeer`]: X-Ray's OTLP endpoint verifying SigV4 with botocore, plus ECS container
//!   credentials and task metadata endpoints (Python, in the test virtualenv).
//! - [`SamplingPeer`]: X-Ray's `GetSamplingRules` / `GetSamplingTargets`, every request and
//!   answer held to botocore's X-Ray model (Python, in the test virtualenv).
//! - [`LogCapture`]: log output collected in memory.
//! - [`load::Load`]: steady load from concurrent workers, every result recorded and classed.
//! - [`AuroraProxy`]: a TCP proxy playing Aurora Serverless v2's pause and resume.
//! - [`rotation`]: the Secrets Manager rotation function's steps, and [`CountingProxy`]
//!   counting the AWS calls a service makes.
//! - [`xray`]: a replay of how the collector's X-Ray exporter names spans (the service map).
//!
//! Run everything with `./scripts/test` (it installs the peers these need).

pub mod aurora_proxy;
pub mod load;
pub mod logs;
pub mod mariadb;
pub mod otlp;
mod peer_control;
pub mod postgres;
pub mod probe;
pub mod rotation;
pub mod secrets_emulator;
pub mod sigv4;
pub mod xray;
pub mod xray_sampling;

pub use aurora_proxy::AuroraProxy;
pub use logs::LogCapture;
pub use mariadb::MariaDb;
pub use otlp::{
    AttrValue, CountingTraceService, ExportCounts, ExportRequestInfo, OtlpProtocol, OtlpReceiver,
    OtlpReceiverBuilder, ReceiverBehavior, SpanEvent, SpanKind, SpanLink, SpanRecord, SpanStatus,
    StatusCode, TestCa, collector_incoming,
};
pub use postgres::Postgres;
pub use probe::{Probe, ProbeStats, block_on, grpc_env, one};
pub use rotation::CountingProxy;
pub use secrets_emulator::{IamUser, RecordedRequest, SecretsEmulator};
pub use sigv4::{PEER_REGION, XrayOtlpPeer};
pub use xray_sampling::SamplingPeer;

/// A TCP port on 127.0.0.1 that was free a moment ago (bound, read, released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0 to find a free port")
        .port()
}

/// Temporary directories named `{prefix}*` (under /tmp and `$TMPDIR`) whose owning test process,
/// recorded in their `owner.pid`, is gone: servers a killed test left behind.
pub(crate) fn orphaned_temp_dirs(prefix: &str) -> Vec<std::path::PathBuf> {
    let bases = [std::path::PathBuf::from("/tmp"), std::env::temp_dir()];
    let mut found = Vec::new();
    for base in bases.iter().collect::<std::collections::BTreeSet<_>>() {
        let Ok(entries) = std::fs::read_dir(base) else {
            continue;
        };
        for entry in entries.flatten() {
            if !entry.file_name().to_string_lossy().starts_with(prefix) {
                continue;
            }
            let dir = entry.path();
            let Some(owner) = std::fs::read_to_string(dir.join("owner.pid"))
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok())
            else {
                continue;
            };
            if !std::path::Path::new(&format!("/proc/{owner}")).exists() {
                found.push(dir);
            }
        }
    }
    found
}
