//! # apprunner-kit
//!
//! Tracing, secrets and database access done right for Rust services on
//! [AWS App Runner](https://aws.amazon.com/apprunner/), traced end to end in AWS X-Ray.
//!
//! | module | what it does |
//! |---|---|
//! | [`telemetry`] | OpenTelemetry with X-Ray trace ids, X-Ray + W3C propagation, OTLP export, JSON logs carrying the X-Ray trace id |
//! | [`http`] | a tower layer turning each request into a SERVER span, and an App Runner server runner |
//! | `secrets` | AWS Secrets Manager to environment at start-up, before any thread exists |
//!
//! ## Feature flags
//!
//! | feature | default | enables |
//! |---|---|---|
//! | `macros` | yes | `#[apprunner::main]` |
//! | `http` | yes | `apprunner::http` |
//! | `secrets` | yes | `apprunner::secrets` |
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

#[allow(unused_extern_crates)]
extern crate self as apprunner;

pub mod telemetry;

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
