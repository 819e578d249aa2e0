//! Sampling rules as `GetSamplingRules` gives them, each with its reservoir, its quota from
//! `GetSamplingTargets` and its statistics; and the decision for one request.

use std::sync::Mutex;
use std::sync::PoisonError;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use opentelemetry::KeyValue;
use opentelemetry::trace::TraceId;

use super::matcher::{RequestFacts, ServiceFacts, attributes_match, field_match};
use super::reservoir::Reservoir;

/// One sampling rule (only version 1 rules exist; others are skipped when fetched).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Rule {
    pub(crate) name: String,
    pub(crate) priority: i32,
    pub(crate) fixed_rate: f64,
    pub(crate) reservoir_size: i32,
    pub(crate) service_name: String,
    pub(crate) service_type: String,
    pub(crate) host: String,
    pub(crate) http_method: String,
    pub(crate) url_path: String,
    pub(crate) resource_arn: String,
    pub(crate) attributes: Vec<(String, String)>,
}

impl Rule {
    /// Whether the rule applies to this service (resource) and request (span attributes).
    pub(crate) fn matches(
        &self,
        service: &ServiceFacts,
        request: &RequestFacts<'_>,
        attributes: &[KeyValue],
    ) -> bool {
        field_match(&self.service_name, service.name.as_deref())
            && field_match(&self.service_type, service.service_type)
            && field_match(&self.resource_arn, service.resource_arn.as_deref())
            && field_match(&self.http_method, request.method)
            && field_match(&self.url_path, request.path)
            && field_match(&self.host, request.host)
            && attributes_match(&self.attributes, attributes)
    }
}

/// A quota from `GetSamplingTargets`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Target {
    pub(crate) fixed_rate: f64,
    /// Requests per second this client may sample from the reservoir; `None`: none.
    pub(crate) quota: Option<u32>,
    /// When the quota stops applying (then only the fixed rate does).
    pub(crate) quota_expires: Option<SystemTime>,
}

/// Counts since the last report to `GetSamplingTargets`.
#[derive(Debug, Default)]
pub(crate) struct Statistics {
    requests: AtomicU64,
    sampled: AtomicU64,
    borrowed: AtomicU64,
}

/// What one report carries for a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StatisticsSnapshot {
    pub(crate) rule_name: String,
    pub(crate) requests: u64,
    pub(crate) sampled: u64,
    pub(crate) borrowed: u64,
}

/// A rule in use: its definition, reservoir, quota and statistics.
#[derive(Debug)]
pub(crate) struct Applier {
    pub(crate) rule: Rule,
    reservoir: Reservoir,
    target: Mutex<Option<Target>>,
    stats: Statistics,
}

/// How a request was sampled, for the statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    Reservoir,
    Borrowed,
    FixedRate,
    NotSampled,
}

impl Decision {
    pub(crate) fn sampled(self) -> bool {
        self != Decision::NotSampled
    }
}

/// The fixed-rate part of a decision: from the trace id, so that every service seeing the
/// same trace id with the same rate decides alike (the SDK's `TraceIdRatioBased` rule: the
/// low 63 bits of the trace id's last 8 bytes against the rate).
pub(crate) fn fixed_rate_samples(rate: f64, trace_id: TraceId) -> bool {
    if rate >= 1.0 {
        return true;
    }
    if rate <= 0.0 || rate.is_nan() {
        return false;
    }
    let bytes = trace_id.to_bytes();
    let mut low = [0u8; 8];
    low.copy_from_slice(&bytes[8..16]);
    let x = u64::from_be_bytes(low) >> 1;
    // rate is in (0, 1): the product fits in a u64.
    let bound = (rate * (1u64 << 63) as f64) as u64;
    x < bound
}

impl Applier {
    pub(crate) fn new(rule: Rule) -> Self {
        Self {
            rule,
            reservoir: Reservoir::default(),
            target: Mutex::new(None),
            stats: Statistics::default(),
        }
    }

    /// A new applier for `rule` that keeps `old`'s quota when the rule did not change, and
    /// `old`'s statistics not reported yet either way.
    pub(crate) fn succeeding(rule: Rule, old: &Applier) -> Self {
        let new = Self::new(rule);
        if new.rule == old.rule {
            *new.target.lock().unwrap_or_else(PoisonError::into_inner) = old.target();
        }
        let take = |c: &AtomicU64| c.swap(0, Ordering::Relaxed);
        new.stats
            .requests
            .store(take(&old.stats.requests), Ordering::Relaxed);
        new.stats
            .sampled
            .store(take(&old.stats.sampled), Ordering::Relaxed);
        new.stats
            .borrowed
            .store(take(&old.stats.borrowed), Ordering::Relaxed);
        new
    }

    pub(crate) fn target(&self) -> Option<Target> {
        *self.target.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn set_target(&self, target: Target) {
        *self.target.lock().unwrap_or_else(PoisonError::into_inner) = Some(target);
    }

    /// Decides for one request this rule matched: the reservoir first (the quota X-Ray gave,
    /// or, before any quota came, one borrowed request per second), then the fixed rate.
    pub(crate) fn decide(&self, now: SystemTime, trace_id: TraceId) -> Decision {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let target = self.target();
        let decision = match target {
            None => {
                if self.rule.reservoir_size > 0 && self.reservoir.take(now, 1) {
                    Decision::Borrowed
                } else if fixed_rate_samples(self.rule.fixed_rate, trace_id) {
                    Decision::FixedRate
                } else {
                    Decision::NotSampled
                }
            }
            Some(t) => {
                let quota_valid = t.quota_expires.is_none_or(|expires| now < expires);
                let quota = if quota_valid { t.quota.unwrap_or(0) } else { 0 };
                if self.reservoir.take(now, quota) {
                    Decision::Reservoir
                } else if fixed_rate_samples(t.fixed_rate, trace_id) {
                    Decision::FixedRate
                } else {
                    Decision::NotSampled
                }
            }
        };
        if decision.sampled() {
            self.stats.sampled.fetch_add(1, Ordering::Relaxed);
        }
        if decision == Decision::Borrowed {
            self.stats.borrowed.fetch_add(1, Ordering::Relaxed);
        }
        decision
    }

    /// The counts since the last call, which starts a new period.
    pub(crate) fn take_statistics(&self) -> StatisticsSnapshot {
        // Requests first: a decision running concurrently is counted in this period or the
        // next, never as sampled without its request.
        let requests = self.stats.requests.swap(0, Ordering::AcqRel);
        let sampled = self.stats.sampled.swap(0, Ordering::AcqRel);
        let borrowed = self.stats.borrowed.swap(0, Ordering::AcqRel);
        StatisticsSnapshot {
            rule_name: self.rule.name.clone(),
            requests,
            sampled,
            borrowed,
        }
    }
}

/// The rules in use, in the order they are tried: priority, then name.
#[derive(Debug)]
pub(crate) struct RuleSet {
    pub(crate) appliers: Vec<Applier>,
    /// When these rules were fetched.
    pub(crate) fetched_at: SystemTime,
}

impl RuleSet {
    /// The new set for `rules`, carrying over from `old` what [`Applier::succeeding`] keeps.
    pub(crate) fn new(mut rules: Vec<Rule>, old: Option<&RuleSet>, now: SystemTime) -> Self {
        rules.sort_by(|a, b| a.priority.cmp(&b.priority).then(a.name.cmp(&b.name)));
        let appliers = rules
            .into_iter()
            .map(|rule| {
                match old.and_then(|o| o.appliers.iter().find(|a| a.rule.name == rule.name)) {
                    Some(previous) => Applier::succeeding(rule, previous),
                    None => Applier::new(rule),
                }
            })
            .collect();
        Self {
            appliers,
            fetched_at: now,
        }
    }

    /// The first rule matching, if any (X-Ray always has its `Default` rule, matching all).
    pub(crate) fn matching(
        &self,
        service: &ServiceFacts,
        attributes: &[KeyValue],
    ) -> Option<&Applier> {
        let request = RequestFacts::from_attributes(attributes);
        self.appliers
            .iter()
            .find(|a| a.rule.matches(service, &request, attributes))
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    pub(crate) fn rule(name: &str, priority: i32, path: &str, reservoir: i32, rate: f64) -> Rule {
        Rule {
            name: name.to_owned(),
            priority,
            fixed_rate: rate,
            reservoir_size: reservoir,
            service_name: "*".to_owned(),
            service_type: "*".to_owned(),
            host: "*".to_owned(),
            http_method: "*".to_owned(),
            url_path: path.to_owned(),
            resource_arn: "*".to_owned(),
            attributes: Vec::new(),
        }
    }

    /// Deterministic, well-spread trace ids (a 64-bit LCG).
    fn ids(n: usize) -> Vec<TraceId> {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        (0..n)
            .map(|_| {
                x = x
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                TraceId::from(u128::from(x) | (u128::from(x.rotate_left(17)) << 64))
            })
            .collect()
    }

    fn at(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(1_700_000_000_000 + ms)
    }

    #[test]
    fn rules_are_tried_by_priority_then_name() {
        let set = RuleSet::new(
            vec![
                rule("Default", 10000, "*", 1, 0.05),
                rule("b-api", 5, "/api/*", 0, 1.0),
                rule("a-api", 5, "/api/*", 0, 1.0),
                rule("health", 1, "/health", 0, 0.0),
            ],
            None,
            at(0),
        );
        let service = ServiceFacts::default();
        let name = |path: &str| {
            let attrs = [KeyValue::new("url.path", path.to_owned())];
            set.matching(&service, &attrs).map(|a| a.rule.name.clone())
        };
        assert_eq!(name("/health").as_deref(), Some("health"));
        assert_eq!(name("/api/users").as_deref(), Some("a-api"));
        assert_eq!(name("/other").as_deref(), Some("Default"));
    }

    #[test]
    fn service_and_request_fields_all_count() {
        let mut r = rule("r", 1, "/orders/*", 0, 1.0);
        r.http_method = "POST".into();
        r.host = "*.example.com".into();
        r.service_name = "users-*".into();
        r.service_type = "AWS::ECS::Container".into();
        let service = ServiceFacts {
            name: Some("users-api".into()),
            service_type: Some("AWS::ECS::Container"),
            resource_arn: None,
        };
        let attrs = |method: &str, host: &str| {
            vec![
                KeyValue::new("http.request.method", method.to_owned()),
                KeyValue::new("server.address", host.to_owned()),
                KeyValue::new("url.path", "/orders/7"),
            ]
        };
        let yes = attrs("post", "shop.example.com");
        assert!(r.matches(&service, &RequestFacts::from_attributes(&yes), &yes));
        let wrong_method = attrs("GET", "shop.example.com");
        assert!(!r.matches(
            &service,
            &RequestFacts::from_attributes(&wrong_method),
            &wrong_method
        ));
        let wrong_host = attrs("POST", "example.org");
        assert!(!r.matches(
            &service,
            &RequestFacts::from_attributes(&wrong_host),
            &wrong_host
        ));
        let other_service = ServiceFacts {
            service_type: Some("AWS::EC2::Instance"),
            ..service.clone()
        };
        assert!(!r.matches(&other_service, &RequestFacts::from_attributes(&yes), &yes));
        r.resource_arn = "arn:aws:ecs:*".into();
        assert!(
            !r.matches(&service, &RequestFacts::from_attributes(&yes), &yes),
            "a resource ARN pattern needs the resource to name one"
        );
    }

    #[test]
    fn the_quota_comes_first_then_the_fixed_rate() {
        let applier = Applier::new(rule("r", 1, "*", 10, 0.0));
        applier.set_target(Target {
            fixed_rate: 0.0,
            quota: Some(3),
            quota_expires: Some(at(10_000)),
        });
        let decisions: Vec<Decision> = ids(50)
            .into_iter()
            .map(|id| applier.decide(at(0), id))
            .collect();
        assert_eq!(decisions.iter().filter(|d| d.sampled()).count(), 3);
        assert!(
            decisions[..3].iter().all(|d| *d == Decision::Reservoir),
            "{decisions:?}"
        );
        assert_eq!(
            applier.decide(at(1_000), ids(1)[0]),
            Decision::Reservoir,
            "next second"
        );
        // After the quota's TTL only the fixed rate applies.
        assert_eq!(applier.decide(at(20_000), ids(1)[0]), Decision::NotSampled);
        let s = applier.take_statistics();
        assert_eq!((s.requests, s.sampled, s.borrowed), (52, 4, 0));
        let s = applier.take_statistics();
        assert_eq!(
            (s.requests, s.sampled, s.borrowed),
            (0, 0, 0),
            "a new period"
        );
    }

    #[test]
    fn before_its_first_quota_a_rule_borrows_one_per_second() {
        let applier = Applier::new(rule("r", 1, "*", 50, 0.0));
        let first: Vec<Decision> = ids(10)
            .into_iter()
            .map(|id| applier.decide(at(100), id))
            .collect();
        assert_eq!(first[0], Decision::Borrowed);
        assert!(first[1..].iter().all(|d| *d == Decision::NotSampled));
        assert_eq!(applier.decide(at(1_100), ids(1)[0]), Decision::Borrowed);
        let s = applier.take_statistics();
        assert_eq!((s.requests, s.sampled, s.borrowed), (11, 2, 2));
        let no_reservoir = Applier::new(rule("r", 1, "*", 0, 0.0));
        assert_eq!(no_reservoir.decide(at(0), ids(1)[0]), Decision::NotSampled);
    }

    #[test]
    fn the_fixed_rate_follows_the_trace_id() {
        let ids = ids(20_000);
        for rate in [0.05, 0.25, 0.5] {
            let n = ids
                .iter()
                .filter(|id| fixed_rate_samples(rate, **id))
                .count() as f64;
            let expected = rate * ids.len() as f64;
            let sd = (ids.len() as f64 * rate * (1.0 - rate)).sqrt();
            assert!(
                (n - expected).abs() < 5.0 * sd,
                "rate {rate}: {n} of {}",
                ids.len()
            );
        }
        assert!(ids.iter().all(|id| fixed_rate_samples(1.0, *id)));
        assert!(!ids.iter().any(|id| fixed_rate_samples(0.0, *id)));
    }

    #[test]
    fn a_new_rule_set_keeps_quotas_of_unchanged_rules_and_all_statistics() {
        let old = RuleSet::new(
            vec![rule("same", 1, "*", 1, 0.1), rule("edited", 2, "*", 1, 0.1)],
            None,
            at(0),
        );
        let target = Target {
            fixed_rate: 0.2,
            quota: Some(4),
            quota_expires: None,
        };
        for a in &old.appliers {
            a.set_target(target);
            a.decide(at(0), ids(1)[0]);
        }
        let new = RuleSet::new(
            vec![rule("same", 1, "*", 1, 0.1), rule("edited", 2, "*", 1, 0.9)],
            Some(&old),
            at(5),
        );
        assert_eq!(new.appliers[0].target(), Some(target));
        assert_eq!(new.appliers[1].target(), None, "a changed rule starts over");
        for a in &new.appliers {
            assert_eq!(a.take_statistics().requests, 1, "{}", a.rule.name);
        }
    }
}
