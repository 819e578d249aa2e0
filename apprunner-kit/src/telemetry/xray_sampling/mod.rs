//! X-Ray centralized sampling (`OTEL_TRACES_SAMPLER=xray`), documented for users on
//! [`XraySampling`](super::XraySampling): `matcher` (rule fields against the resource and the
//! span's attributes, wildcards), `reservoir` (per-second quotas), `rules` (rules, quotas,
//! statistics, one decision), `sampler` (the rules in force or the local default), `poller`
//! (the `aws-sdk-xray` client and the polling thread).

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
