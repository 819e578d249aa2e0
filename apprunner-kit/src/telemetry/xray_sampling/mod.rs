//! X-Ray centralized sampling (`OTEL_TRACES_SAMPLER=xray`): the sampling rules set in the
//! X-Ray console (or CloudFormation, Terraform, the API) decide which requests are traced,
//! as every X-Ray SDK and ADOT distribution does.
//!
//! - **Rules** come from `GetSamplingRules` every polling interval (5 min by default); a
//!   `GetSamplingTargets` answer saying the rules changed since makes the next fetch happen at
//!   once. They are tried in priority order (then by name); the first whose service name,
//!   service type (from `cloud.platform`: `AWS::ECS::Container`, `AWS::EC2::Instance`, ...),
//!   resource ARN, host, HTTP method, URL path and attributes all match decides. Patterns take
//!   `*` (any run of characters) and `?` (one character), without regard to case; a pattern
//!   other than `*` needs the span to carry the value. The request's facts are read from the
//!   attributes its span starts with (`http.request.method`, `server.address`, `url.path`, and
//!   the older `http.method`, `http.host`, `http.target`, `http.url`), the service's from the
//!   resource (`service.name`, `cloud.platform`, `aws.ecs.container.arn` or
//!   `cloud.resource_id`).
//! - **A rule samples** from its reservoir first, up to the quota per second X-Ray assigned
//!   this instance (`GetSamplingTargets`, every 10 s by default, or the `Interval` X-Ray names),
//!   then at its fixed rate (decided from the trace id). Until its first quota arrives, a rule
//!   with a reservoir borrows one request per second; after a quota's `ReservoirQuotaTTL`
//!   only the fixed rate applies. Each `GetSamplingTargets` call reports, per rule, the
//!   requests seen, sampled and borrowed since the last one (`ClientID`: 24 hex digits, new
//!   for each process).
//! - **The local default**, 1 request per second then 5 %, applies before the first rules
//!   arrive and once the rules fetched last are 12 polling intervals old (an hour by default:
//!   the X-Ray SDKs' cache lifetime) because the endpoint stopped answering. Failures are
//!   logged once, with what to do, and once on recovery.
//! - **Polling never blocks a request**: it runs on the kit's `apprunner-xray-sampling` thread;
//!   a decision reads the rules in memory. The thread stops with
//!   [`TelemetryGuard::shutdown`](super::TelemetryGuard::shutdown).
//! - **A parent's decision always wins**: the rules only decide for spans that start a trace,
//!   and for App Runner's `Sampled=?` (decision deferred to this service).
//!
//! The endpoint is the sampling proxy of the ADOT collector (`awsproxy` extension), the
//! CloudWatch agent or the X-Ray daemon (`http://localhost:2000` by default; requests are sent
//! unsigned, the proxy signs them), or the X-Ray API itself (`https://xray.<region>.amazonaws.com`:
//! signed with SigV4, credentials from the `aws-config` chain; the role needs
//! `xray:GetSamplingRules` and `xray:GetSamplingTargets`). See [`XraySampling`](super::XraySampling)
//! for `OTEL_TRACES_SAMPLER_ARG`.
//!
//! ```no_run
//! // OTEL_TRACES_SAMPLER=xray
//! // OTEL_TRACES_SAMPLER_ARG=endpoint=http://localhost:2000,polling_interval=300
//! // or, in code:
//! use apprunner::telemetry::{TelemetryConfig, XraySampling};
//!
//! let telemetry = TelemetryConfig::from_env()?
//!     .xray_sampling(XraySampling::default().endpoint_set("https://xray.eu-west-1.amazonaws.com"))
//!     .init()?;
//! # drop(telemetry);
//! # Ok::<(), apprunner::telemetry::TelemetryError>(())
//! ```

mod matcher;
mod poller;
mod reservoir;
mod rules;
mod sampler;

use std::sync::Arc;

use opentelemetry_sdk::Resource;

pub(crate) use poller::Poller;

use super::config::XraySampling;
use super::error::TelemetryError;

/// The root sampler of X-Ray centralized sampling and its running poller.
pub(crate) fn start(
    settings: &XraySampling,
    resource: &Resource,
) -> Result<(sampler::XrayRemoteSampler, Poller), TelemetryError> {
    let state = Arc::new(sampler::SamplingState::new(
        matcher::ServiceFacts::from_resource(resource),
        settings.rules_interval(),
    ));
    let poller = poller::spawn(settings.clone(), state.clone())?;
    Ok((sampler::XrayRemoteSampler { state }, poller))
}
