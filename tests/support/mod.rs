//! Shared integration-test harness for apprunner-kit: real peers for real tests.
//!
//! - [`OtlpReceiver`]: an OTLP trace receiver (gRPC and http/protobuf) recording every span.
//! - [`Postgres`]: a throwaway PostgreSQL cluster (or `APPRUNNER_TEST_DATABASE_URL`).
//! - [`MariaDb`]: a throwaway MariaDB server (or `APPRUNNER_TEST_MYSQL_URL`).
//! - [`SecretsEmulator`]: a moto Secrets Manager server.
//!
//! Run everything with `./scripts/test` (it installs the peers these need).

pub mod mariadb;
pub mod otlp;
pub mod postgres;
pub mod secrets_emulator;

pub use mariadb::MariaDb;
pub use otlp::{
    AttrValue, ExportRequestInfo, OtlpProtocol, OtlpReceiver, ReceiverBehavior, SpanEvent,
    SpanKind, SpanLink, SpanRecord, SpanStatus, StatusCode,
};
pub use postgres::Postgres;
pub use secrets_emulator::{IamUser, RecordedRequest, SecretsEmulator};

/// A TCP port on 127.0.0.1 that was free a moment ago (bound, read, released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0 to find a free port")
        .port()
}
