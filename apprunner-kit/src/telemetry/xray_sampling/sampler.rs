//! The sampler: the rules fetched last, or the local default while there are none.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use opentelemetry::trace::{Link, SpanKind, TraceId};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{SamplingDecision, SamplingResult, ShouldSample};

use super::matcher::ServiceFacts;
use super::reservoir::Reservoir;
use super::rules::{RuleSet, fixed_rate_samples};

/// The local default: 1 request per second, then 5 % (the X-Ray SDKs' and ADOT's).
pub(crate) const DEFAULT_PER_SECOND: u32 = 1;
/// See [`DEFAULT_PER_SECOND`].
pub(crate) const DEFAULT_FIXED_RATE: f64 = 0.05;

/// Rules not refreshed for this many polling intervals are dropped for the local default: an
/// hour at the default 5 minutes, the X-Ray SDKs' and ADOT's rule cache lifetime.
pub(crate) const RULES_LIFETIME_INTERVALS: u32 = 12;

/// What the sampler and the poller share.
#[derive(Debug)]
pub(crate) struct SamplingState {
    pub(crate) rules: RwLock<Option<Arc<RuleSet>>>,
    pub(crate) service: ServiceFacts,
    /// How old rules may get before the local default applies again.
    pub(crate) rules_lifetime: Duration,
    fallback: Reservoir,
}

impl SamplingState {
    pub(crate) fn new(service: ServiceFacts, rules_interval: Duration) -> Self {
        Self {
            rules: RwLock::new(None),
            service,
            rules_lifetime: rules_interval * RULES_LIFETIME_INTERVALS,
            fallback: Reservoir::default(),
        }
    }

    /// The rules in force at `now`: `None` before the first fetch and once they are too old.
    pub(crate) fn current(&self, now: SystemTime) -> Option<Arc<RuleSet>> {
        let rules = self
            .rules
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()?;
        let age = now.duration_since(rules.fetched_at).unwrap_or_default();
        (age <= self.rules_lifetime).then_some(rules)
    }

    pub(crate) fn replace(&self, rules: RuleSet) {
        *self.rules.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(rules));
    }

    /// The decision for a span that starts a trace (or whose parent deferred the decision).
    pub(crate) fn decide(
        &self,
        now: SystemTime,
        trace_id: TraceId,
        attributes: &[KeyValue],
    ) -> bool {
        if let Some(rules) = self.current(now)
            && let Some(applier) = rules.matching(&self.service, attributes)
        {
            return applier.decide(now, trace_id).sampled();
        }
        self.fallback.take(now, DEFAULT_PER_SECOND)
            || fixed_rate_samples(DEFAULT_FIXED_RATE, trace_id)
    }
}

/// X-Ray centralized sampling for root spans; wrapped in a parent-based sampler by `init`, so a
/// parent's decision always wins.
#[derive(Debug, Clone)]
pub(crate) struct XrayRemoteSampler {
    pub(crate) state: Arc<SamplingState>,
}

impl ShouldSample for XrayRemoteSampler {
    fn should_sample(
        &self,
        _parent_context: Option<&Context>,
        trace_id: TraceId,
        _name: &str,
        _span_kind: &SpanKind,
        attributes: &[KeyValue],
        _links: &[Link],
    ) -> SamplingResult {
        let sampled = self.state.decide(SystemTime::now(), trace_id, attributes);
        SamplingResult {
            decision: if sampled {
                SamplingDecision::RecordAndSample
            } else {
                SamplingDecision::Drop
            },
            attributes: Vec::new(),
            trace_state: Default::default(),
        }
    }
}
