//! # apprunner-kit
//!
//! Tracing, secrets and database access done right for Rust services on
//! [AWS App Runner](https://aws.amazon.com/apprunner/), traced end to end in AWS X-Ray.
//!
//! ## Map
//!
//! | module | what it does |
//! |---|---|
//! | [`App`], [`main`](macro@main) | the entry point: secrets, then the runtime, then telemetry, then the service, then a flushing shutdown |
//! | [`telemetry`] | OpenTelemetry with X-Ray trace ids, X-Ray + W3C propagation, OTLP export, JSON logs carrying the X-Ray trace id |
//! | [`http`] | a tower layer turning each request into a SERVER span, and an App Runner server runner |
//! | `secrets` | AWS Secrets Manager to environment at start-up, before any thread exists |
//! | [`db`] | sqlx pools in which every statement is a CLIENT span, with start-up retry, credential rotation and migrations |
//! | [`client`] | calls out of the service as CLIENT spans carrying the trace headers (`reqwest`, AWS SDK clients) |
//! | `jobs` | background jobs over SNS HTTP push: a verified, deduplicated, traced endpoint and a publisher (feature `jobs`) |
//!
//! A request's path through them:
//!
//! ```text
//!  App Runner front end ── X-Amzn-Trace-Id ──▶ http: continues the trace, opens the SERVER span
//!                                                │
//!                                                ▼
//!                                              your handler (tracing spans and logs carry the trace id)
//!                                                │
//!                                                ▼
//!                                              db: one CLIENT span per statement, opened through
//!                                                  the telemetry API, child of the request's span
//!                                                │
//!  X-Ray ◀── OTLP (collector or SigV4) ── telemetry: batches finished spans, exports them
//!                                                   on its own thread
//! ```
//!
//! `http`, `db` and `secrets` open their spans through `telemetry`; `telemetry` depends on none
//! of them, so a service that brings its own server or database client still gets X-Ray-ready
//! traces from [`telemetry::init`].
//!
//! ## Feature flags
//!
//! | feature | default | enables |
//! |---|---|---|
//! | `macros` | yes | `#[apprunner::main]` |
//! | `http` | yes | `apprunner::http` |
//! | `secrets` | yes | `apprunner::secrets` |
//! | `db` | yes | `apprunner::db` (sqlx 0.9: PostgreSQL, MySQL/MariaDB, SQLite) |
//! | `client` | yes | `apprunner::client` (a `reqwest-middleware` middleware) |
//! | `aws-sdk` | yes | `apprunner::client::AwsTracing`, an interceptor for AWS SDK clients, and `apprunner::aws_client!` |
//! | `xray-sampling` | yes | X-Ray centralized sampling: the console's sampling rules and reservoir quotas (`OTEL_TRACES_SAMPLER=xray`; `aws-sdk-xray`) |
//! | `aws-s3`, `aws-sqs`, `aws-sns`, `aws-dynamodb` | no | the interceptor's service-specific attributes (`aws.s3.bucket`, `messaging.*`, `aws.dynamodb.table_names`), read from the service crate's typed input |
//! | `jobs` | no | `apprunner::jobs`: background jobs over SNS HTTP push, a verified, deduplicated, traced endpoint and a publisher (needs `http`, `db`, `aws-sns`) |
//! | `xray-otlp` | yes | SigV4-signed OTLP/HTTP export straight to X-Ray's OTLP endpoint (`APPRUNNER_OTLP_SIGV4`; `aws-config`, `aws-sigv4`) |
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings), allow(dead_code, unused_variables))))]

#[allow(unused_extern_crates)]
extern crate self as apprunner;

mod entry;
mod error;
pub mod telemetry;

pub use entry::{App, AppContext, FromContext, IntoOutcome};
pub use error::{Error, Result};

#[cfg(feature = "macros")]
#[cfg_attr(docsrs, doc(cfg(feature = "macros")))]
#[doc(inline)]
pub use apprunner_kit_macros::main;

/// What `#[apprunner::main]` expands to. Not public API: no stability guarantee.
#[doc(hidden)]
pub mod __private {
    pub use crate::entry::{App, AppContext, FromContext, IntoOutcome};

    /// Finishes the service with its return value. The returned future's type does not
    /// mention `T`, so an unsupported return type gets one error, not two.
    pub fn outcome<'a, T: IntoOutcome + 'a>(
        value: T,
        cx: &'a AppContext,
    ) -> ::std::pin::Pin<Box<dyn ::std::future::Future<Output = crate::Result<()>> + 'a>> {
        Box::pin(value.into_outcome(cx))
    }

    /// Stands in for a migrator when the `db` feature is off (the `migrate!` placeholder has
    /// already reported the error).
    #[cfg(not(feature = "db"))]
    #[derive(Debug)]
    pub struct NoDb;

    /// Placeholder for the `migrate` option when the `db` feature is off.
    #[cfg(not(feature = "db"))]
    #[macro_export]
    #[doc(hidden)]
    macro_rules! __apprunner_migrate_needs_db {
        ($($t:tt)*) => {{
            ::core::compile_error!(
                "the `migrate` option of #[apprunner::main] needs the `db` feature of apprunner-kit"
            );
            $crate::__private::NoDb
        }};
    }
    #[cfg(feature = "db")]
    pub use crate::db::sqlx::migrate;
    #[cfg(not(feature = "db"))]
    pub use __apprunner_migrate_needs_db as migrate;
}

#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod http;

#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
#[doc(inline)]
pub use http::serve;

#[cfg(feature = "secrets")]
#[cfg_attr(docsrs, doc(cfg(feature = "secrets")))]
pub mod secrets;

#[cfg(feature = "db")]
#[cfg_attr(docsrs, doc(cfg(feature = "db")))]
pub mod db;

#[cfg(feature = "client")]
#[cfg_attr(docsrs, doc(cfg(feature = "client")))]
pub mod client;
#[cfg(feature = "jobs")]
#[cfg_attr(docsrs, doc(cfg(feature = "jobs")))]
pub mod jobs;
