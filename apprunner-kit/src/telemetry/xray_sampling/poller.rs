//! The poller: `GetSamplingRules` every polling interval, `GetSamplingTargets` (with the
//! statistics X-Ray asks for) every targets interval, on the kit's own thread so that a slow
//! or absent endpoint never blocks a request; stopped by the telemetry guard.
//!
//! A thread of its own rather than the export thread: that one exists only when spans leave
//! the process (not with `OTEL_TRACES_EXPORTER=none`), and a poll waiting up to its timeout on
//! an unanswered endpoint must not delay an export on the same current-thread runtime.
//!
//! The two calls go through `aws-sdk-xray`: botocore-conformant requests, retries, timeouts,
//! and for the X-Ray API SigV4 with the `aws-config` credential chain. A sampling proxy (the
//! ADOT collector's `awsproxy` extension, the CloudWatch agent, the X-Ray daemon) signs the
//! requests itself, so towards a proxy the client is built without credentials and with
//! `allow_no_auth`: the requests go out unsigned, as every X-Ray SDK sends them.

use std::fmt;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_xray::Client;
use aws_sdk_xray::config::{BehaviorVersion, Region, retry::RetryConfig, timeout::TimeoutConfig};
use aws_sdk_xray::error::SdkError;
use aws_sdk_xray::types::{SamplingRule, SamplingStatisticsDocument};
use aws_smithy_types::DateTime;
use aws_smithy_types::error::display::DisplayErrorContext;
use opentelemetry_sdk::trace::{IdGenerator as _, RandomIdGenerator};
use tokio::sync::oneshot;

use super::rules::{Rule, RuleSet, Target};
use super::sampler::SamplingState;
use crate::telemetry::config::XraySampling;
use crate::telemetry::error::TelemetryError;

/// How long one call may take (the X-Ray SDKs wait a few seconds too).
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// The first wait after a failed `GetSamplingRules` while no rules are in force; doubled after
/// each failure, up to the polling interval.
const FIRST_RETRY: Duration = Duration::from_secs(1);

/// `GetSamplingTargets` takes at most this many statistics documents per call.
const MAX_DOCUMENTS: usize = 25;

/// A client id as X-Ray wants it: 24 hex digits, new for each process.
pub(crate) fn client_id() -> String {
    let id = RandomIdGenerator::default().new_trace_id().to_string();
    id[..24].to_owned()
}

/// The running poller thread; [`stop`](Self::stop) (or drop) ends it.
pub(crate) struct Poller {
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

impl fmt::Debug for Poller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Poller").finish_non_exhaustive()
    }
}

impl Poller {
    pub(crate) fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts the poller thread (`apprunner-xray-sampling`) for `state`.
pub(crate) fn spawn(
    settings: XraySampling,
    state: Arc<SamplingState>,
) -> Result<Poller, TelemetryError> {
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(TelemetryError::Thread)?;
    let handle = std::thread::Builder::new()
        .name("apprunner-xray-sampling".to_owned())
        .spawn(move || {
            runtime.block_on(async move {
                tokio::select! {
                    _ = stop_rx => {}
                    () = run(settings, state) => {}
                }
            });
            runtime.shutdown_timeout(Duration::from_secs(1));
        })
        .map_err(TelemetryError::Thread)?;
    Ok(Poller {
        stop: Some(stop_tx),
        handle: Some(handle),
    })
}

/// The SDK client for `settings`: signed for the X-Ray API, unsigned for a proxy.
async fn client(settings: &XraySampling) -> Client {
    let timeouts = TimeoutConfig::builder()
        .operation_timeout(CALL_TIMEOUT)
        .build();
    let builder = match settings.signing_region() {
        Some(region) => {
            let shared = aws_config::defaults(BehaviorVersion::latest())
                .region(Region::new(region.to_owned()))
                .load()
                .await;
            aws_sdk_xray::config::Builder::from(&shared)
        }
        // A region is still needed to resolve the endpoint's parameters; it is not sent.
        None => aws_sdk_xray::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::from_static("us-east-1"))
            .allow_no_auth(),
    };
    // One attempt per poll: the next poll is the retry, and a request is never waiting on it.
    let config = builder
        .endpoint_url(settings.endpoint())
        .retry_config(RetryConfig::disabled())
        .timeout_config(timeouts)
        .build();
    Client::from_conf(config)
}

/// A version 1 rule of the API as the sampler uses it; `None` for other versions.
fn rule(rule: &SamplingRule) -> Option<Rule> {
    if rule.version() != 1 {
        return None;
    }
    let mut attributes: Vec<(String, String)> = rule
        .attributes()
        .map(|a| a.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    attributes.sort();
    Some(Rule {
        name: rule.rule_name()?.to_owned(),
        priority: rule.priority(),
        fixed_rate: rule.fixed_rate(),
        reservoir_size: rule.reservoir_size(),
        service_name: rule.service_name().to_owned(),
        service_type: rule.service_type().to_owned(),
        host: rule.host().to_owned(),
        http_method: rule.http_method().to_owned(),
        url_path: rule.url_path().to_owned(),
        resource_arn: rule.resource_arn().to_owned(),
        attributes,
    })
}

/// Every page of `GetSamplingRules`.
async fn fetch_rules(client: &Client) -> Result<Vec<Rule>, String> {
    let mut rules = Vec::new();
    let mut next = None;
    loop {
        let page = client
            .get_sampling_rules()
            .set_next_token(next)
            .send()
            .await
            .map_err(describe)?;
        rules.extend(
            page.sampling_rule_records()
                .iter()
                .filter_map(|r| r.sampling_rule())
                .filter_map(rule),
        );
        match page.next_token() {
            Some(token) if !token.is_empty() => next = Some(token.to_owned()),
            _ => return Ok(rules),
        }
    }
}

/// What one `GetSamplingTargets` round gave.
struct TargetsOutcome {
    /// The smallest `Interval` X-Ray asked for.
    interval: Option<Duration>,
    /// The rules changed after `rules` were fetched: fetch them again now.
    rules_changed: bool,
}

/// Reports the statistics of every rule and applies the quotas X-Ray answers with.
async fn report(
    client: &Client,
    rules: &RuleSet,
    client_id: &str,
) -> Result<TargetsOutcome, String> {
    let now = DateTime::from(SystemTime::now());
    let documents: Vec<SamplingStatisticsDocument> = rules
        .appliers
        .iter()
        .map(|a| a.take_statistics())
        .filter_map(|s| {
            let count = |n: u64| i32::try_from(n).unwrap_or(i32::MAX);
            SamplingStatisticsDocument::builder()
                .rule_name(s.rule_name)
                .client_id(client_id)
                .timestamp(now)
                .request_count(count(s.requests))
                .sampled_count(count(s.sampled))
                .borrow_count(count(s.borrowed))
                .build()
                .ok()
        })
        .collect();
    let mut outcome = TargetsOutcome {
        interval: None,
        rules_changed: false,
    };
    for chunk in documents.chunks(MAX_DOCUMENTS) {
        let out = client
            .get_sampling_targets()
            .set_sampling_statistics_documents(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(describe)?;
        for doc in out.sampling_target_documents() {
            let Some(applier) = doc
                .rule_name()
                .and_then(|name| rules.appliers.iter().find(|a| a.rule.name == name))
            else {
                continue;
            };
            applier.set_target(Target {
                fixed_rate: doc.fixed_rate(),
                quota: doc.reservoir_quota().map(|q| u32::try_from(q).unwrap_or(0)),
                quota_expires: doc
                    .reservoir_quota_ttl()
                    .and_then(|t| SystemTime::try_from(*t).ok()),
            });
            if let Some(seconds) = doc.interval().filter(|s| *s > 0) {
                let interval = Duration::from_secs(u64::from(seconds.unsigned_abs()));
                outcome.interval = Some(outcome.interval.map_or(interval, |i| i.min(interval)));
            }
        }
        for unprocessed in out.unprocessed_statistics() {
            tracing::debug!(
                target: "apprunner::telemetry",
                rule = unprocessed.rule_name().unwrap_or_default(),
                code = unprocessed.error_code().unwrap_or_default(),
                message = unprocessed.message().unwrap_or_default(),
                "X-Ray did not take the sampling statistics of a rule"
            );
        }
        if let Some(modified) = out
            .last_rule_modification()
            .and_then(|t| SystemTime::try_from(*t).ok())
            && modified > rules.fetched_at
        {
            outcome.rules_changed = true;
        }
    }
    Ok(outcome)
}

/// The error and what caused it, with the service's error code when it answered.
fn describe<E, R>(err: SdkError<E, R>) -> String
where
    E: std::error::Error + aws_sdk_xray::error::ProvideErrorMetadata + 'static,
    R: fmt::Debug,
{
    let text = DisplayErrorContext(&err).to_string();
    match err.as_service_error().and_then(|e| e.code()) {
        Some(code) => format!("{code}: {text}"),
        None => text,
    }
}

/// What to do about a failing call.
fn advice(settings: &XraySampling, error: &str) -> String {
    if error.contains("AccessDenied") || error.contains("UnrecognizedClient") {
        "give the service's role xray:GetSamplingRules and xray:GetSamplingTargets (the managed \
         policy AWSXrayWriteOnlyAccess has both)"
            .to_owned()
    } else if settings.signing_region().is_some() {
        "check the endpoint, the network path to it (NAT gateway or an X-Ray VPC endpoint) and \
         the AWS credentials"
            .to_owned()
    } else {
        format!(
            "run a sampling proxy on {} (the ADOT collector's awsproxy extension, the CloudWatch \
             agent or the X-Ray daemon), or point OTEL_TRACES_SAMPLER_ARG's endpoint at one or at \
             https://xray.<region>.amazonaws.com",
            settings.endpoint()
        )
    }
}

/// Logs a call's failure once, and its recovery once.
#[derive(Default)]
struct Failing(bool);

impl Failing {
    fn failed(&mut self, what: &str, settings: &XraySampling, error: &str) {
        if !std::mem::replace(&mut self.0, true) {
            tracing::warn!(
                target: "apprunner::telemetry",
                endpoint = settings.endpoint(),
                error = %error,
                "cannot {what}: {}; until it answers, the rules fetched last apply (for up to 12 \
                 polling intervals), else the local default of 1 request per second then 5 % \
                 (logged once)",
                advice(settings, error)
            );
        }
    }

    fn succeeded(&mut self, what: &str, settings: &XraySampling) {
        if std::mem::take(&mut self.0) {
            tracing::info!(
                target: "apprunner::telemetry",
                endpoint = settings.endpoint(),
                "{what}: the endpoint answers again"
            );
        }
    }
}

/// Up to a tenth of `interval` (at most 5 s), so that a fleet's instances spread their calls.
fn jitter(interval: Duration) -> Duration {
    let spread = (interval / 10).min(Duration::from_secs(5));
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    spread.mul_f64(f64::from(nanos % 1000) / 1000.0)
}

/// The polling loop; runs until the thread is stopped.
async fn run(settings: XraySampling, state: Arc<SamplingState>) {
    let client = client(&settings).await;
    let client_id = client_id();
    let (mut rules_failing, mut targets_failing) = (Failing::default(), Failing::default());
    let mut next_rules = Instant::now();
    let mut next_targets = Instant::now() + settings.targets_interval();
    let mut retry = FIRST_RETRY;
    loop {
        tokio::time::sleep_until(next_rules.min(next_targets).into()).await;
        if Instant::now() >= next_rules {
            let interval = settings.rules_interval();
            let mut wait = interval + jitter(interval);
            match fetch_rules(&client).await {
                Ok(rules) => {
                    let now = SystemTime::now();
                    let old = state.current(now);
                    state.replace(RuleSet::new(rules, old.as_deref(), now));
                    rules_failing.succeeded("GetSamplingRules", &settings);
                    retry = FIRST_RETRY;
                }
                Err(error) => {
                    rules_failing.failed(
                        "fetch the X-Ray sampling rules (GetSamplingRules)",
                        &settings,
                        &error,
                    );
                    // Without rules in force (a collector starting after the service), try
                    // again soon rather than a whole polling interval later.
                    if state.current(SystemTime::now()).is_none() {
                        wait = wait.min(retry);
                        retry = (retry * 2).min(interval);
                    }
                }
            }
            next_rules = Instant::now() + wait;
        }
        if Instant::now() >= next_targets {
            let mut interval = settings.targets_interval();
            if let Some(rules) = state.current(SystemTime::now()) {
                match report(&client, &rules, &client_id).await {
                    Ok(outcome) => {
                        targets_failing.succeeded("GetSamplingTargets", &settings);
                        interval = outcome.interval.unwrap_or(interval);
                        if outcome.rules_changed {
                            next_rules = Instant::now();
                        }
                    }
                    Err(error) => targets_failing.failed(
                        "fetch the X-Ray reservoir quotas (GetSamplingTargets)",
                        &settings,
                        &error,
                    ),
                }
            }
            next_targets = Instant::now() + interval;
        }
    }
}
