//! `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG`: the sampler settings, and those of X-Ray
//! centralized sampling (`xray`), kept as plain data so the configuration stays `Clone + Debug`
//! and parses the same with or without the `xray-sampling` feature.

use std::time::Duration;

use opentelemetry_sdk::trace::Sampler;

use super::sigv4::{is_region, xray_region};
use crate::telemetry::error::TelemetryError;

/// The variable holding the endpoint and the polling intervals.
pub(crate) const ARG_VAR: &str = "OTEL_TRACES_SAMPLER_ARG";

/// Where the sampling rules come from unless told otherwise: the sampling proxy of the ADOT
/// collector (`awsproxy` extension), the CloudWatch agent or the X-Ray daemon.
pub(crate) const DEFAULT_ENDPOINT: &str = "http://localhost:2000";

/// How often the rules are fetched unless told otherwise (ADOT's and the X-Ray SDKs' 5 min).
pub(crate) const DEFAULT_RULES_INTERVAL: Duration = Duration::from_secs(300);

/// How often the reservoir quotas are fetched, until X-Ray's answer names another interval.
pub(crate) const DEFAULT_TARGETS_INTERVAL: Duration = Duration::from_secs(10);

/// `OTEL_TRACES_SAMPLER` parsed; kept as data so the config stays `Clone + Debug`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SamplerSetting {
    AlwaysOn,
    AlwaysOff,
    Ratio(f64),
    ParentBasedAlwaysOn,
    ParentBasedAlwaysOff,
    ParentBasedRatio(f64),
    /// `xray`: X-Ray centralized sampling (built by `init` with its poller; parent-based).
    #[cfg(feature = "xray-sampling")]
    Xray(Box<XraySampling>),
}

impl SamplerSetting {
    /// The SDK sampler, plus the sampler a root span would get (for `Sampled=?` parents).
    pub(crate) fn build(&self) -> (Sampler, Sampler) {
        let parent_based = |root: Sampler| (Sampler::ParentBased(Box::new(root.clone())), root);
        match *self {
            SamplerSetting::AlwaysOn => (Sampler::AlwaysOn, Sampler::AlwaysOn),
            SamplerSetting::AlwaysOff => (Sampler::AlwaysOff, Sampler::AlwaysOff),
            SamplerSetting::Ratio(r) => {
                (Sampler::TraceIdRatioBased(r), Sampler::TraceIdRatioBased(r))
            }
            SamplerSetting::ParentBasedAlwaysOn => parent_based(Sampler::AlwaysOn),
            SamplerSetting::ParentBasedAlwaysOff => parent_based(Sampler::AlwaysOff),
            SamplerSetting::ParentBasedRatio(r) => parent_based(Sampler::TraceIdRatioBased(r)),
            // `init` builds the remote sampler itself; this is only its fixed-rate part of the
            // local default (1 request per second, then 5 %), for completeness.
            #[cfg(feature = "xray-sampling")]
            SamplerSetting::Xray(_) => parent_based(Sampler::TraceIdRatioBased(0.05)),
        }
    }
}

pub(crate) fn parse_sampler(
    name: Option<&str>,
    arg: Option<&str>,
) -> Result<SamplerSetting, TelemetryError> {
    let ratio = || -> Result<f64, TelemetryError> {
        match arg.map(str::trim) {
            None | Some("") => Ok(1.0),
            Some(v) => match v.parse::<f64>() {
                Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
                _ => Err(TelemetryError::InvalidVar {
                    var: "OTEL_TRACES_SAMPLER_ARG",
                    value: v.to_owned(),
                    expected: "a probability between 0.0 and 1.0",
                }),
            },
        }
    };
    let name = name.map(|n| n.trim().to_ascii_lowercase());
    Ok(match name.as_deref() {
        None | Some("") | Some("parentbased_always_on") => SamplerSetting::ParentBasedAlwaysOn,
        Some("always_on") => SamplerSetting::AlwaysOn,
        Some("always_off") => SamplerSetting::AlwaysOff,
        Some("traceidratio") => SamplerSetting::Ratio(ratio()?),
        Some("parentbased_always_off") => SamplerSetting::ParentBasedAlwaysOff,
        Some("parentbased_traceidratio") => SamplerSetting::ParentBasedRatio(ratio()?),
        #[cfg(feature = "xray-sampling")]
        Some("xray") => {
            SamplerSetting::Xray(Box::new(XraySampling::from_arg(arg.unwrap_or_default())?))
        }
        #[cfg(not(feature = "xray-sampling"))]
        Some("xray") => {
            return Err(TelemetryError::InvalidVar {
                var: "OTEL_TRACES_SAMPLER",
                value: "xray".to_owned(),
                expected: "a sampler this build has: X-Ray centralized sampling needs the \
                           apprunner-kit feature `xray-sampling` (on by default)",
            });
        }
        Some(other) => {
            return Err(TelemetryError::InvalidVar {
                var: "OTEL_TRACES_SAMPLER",
                value: other.to_owned(),
                expected: "always_on, always_off, traceidratio, parentbased_always_on, \
                           parentbased_always_off, parentbased_traceidratio or xray",
            });
        }
    })
}

/// Settings of X-Ray centralized sampling (`OTEL_TRACES_SAMPLER=xray`, feature
/// `xray-sampling`): the sampling rules set in the X-Ray console (or CloudFormation,
/// Terraform, the API) decide which requests are traced, as with every X-Ray SDK and ADOT
/// distribution.
///
/// - **Rules** come from `GetSamplingRules` every polling interval (5 min by default); a
///   `GetSamplingTargets` answer saying the rules changed since makes the next fetch happen at
///   once. They are tried in priority order (then by name); the first whose service name,
///   service type (from `cloud.platform`: `AWS::ECS::Container`, `AWS::EC2::Instance`,
///   `AWS::AppRunner::Service`, ...), resource ARN, host, HTTP method, URL path and attributes
///   all match decides. Patterns take `*` (any run of characters) and `?` (one character),
///   without regard to case; a pattern other than `*` needs the span to carry the value. The
///   request's facts are the attributes its span starts with (`http.request.method`,
///   `server.address`, `url.path`, or the older `http.method`, `http.host`, `http.target`,
///   `http.url`: the kit's HTTP layer sets the first three), the service's come from the
///   resource (`service.name`, `cloud.platform`, `aws.ecs.container.arn` or
///   `cloud.resource_id`).
/// - **A rule samples** from its reservoir first, up to the quota per second X-Ray assigned
///   this instance (`GetSamplingTargets`, every 10 s by default or the `Interval` X-Ray names),
///   then at its fixed rate, decided from the trace id. Until its first quota arrives, a rule
///   with a reservoir borrows one request per second; after a quota's `ReservoirQuotaTTL`
///   only the fixed rate applies. Each `GetSamplingTargets` call reports, per rule, the
///   requests seen, sampled and borrowed since the last call (`ClientID`: 24 hex digits, new
///   for each process).
/// - **The local default**, 1 request per second then 5 %, applies before the first rules
///   arrive (until then a failed fetch is retried after 1, 2, 4, ... seconds, so a sampling
///   proxy starting after the service takes over within seconds), and once the rules fetched last are 12 polling intervals old (an hour by default,
///   the X-Ray SDKs' cache lifetime) because the endpoint stopped answering: a short outage
///   does not change sampling. Failures are logged once, with what to do, and once on
///   recovery.
/// - **Polling never blocks a request**: it runs on the kit's `apprunner-xray-sampling`
///   thread, and a decision only reads the rules in memory. The thread stops with
///   [`TelemetryGuard::shutdown`](crate::telemetry::TelemetryGuard::shutdown).
/// - **A parent's decision always wins** (`Sampled=1` or `Sampled=0` in App Runner's
///   `X-Amzn-Trace-Id`, a `traceparent`'s flag): the rules decide for spans that start a trace,
///   and for App Runner's `Sampled=?` (the decision left to this service).
///
/// The endpoint is a sampling proxy: the ADOT collector's `awsproxy` extension, the CloudWatch
/// agent or the X-Ray daemon (`http://localhost:2000` by default; the calls go out unsigned
/// and the proxy signs them with its own credentials), or the X-Ray API itself
/// (`https://xray.<region>.amazonaws.com`: signed with SigV4, credentials from the
/// `aws-config` chain; the role needs `xray:GetSamplingRules` and `xray:GetSamplingTargets`).
///
/// Read from `OTEL_TRACES_SAMPLER_ARG`, in ADOT's format: comma-separated `key=value` pairs.
///
/// | key | default | meaning |
/// |---|---|---|
/// | `endpoint` | `http://localhost:2000` | the sampling proxy of the ADOT collector, the CloudWatch agent or the X-Ray daemon (plain HTTP, unsigned: the proxy signs), or the X-Ray API itself, `https://xray.<region>.amazonaws.com` (signed with SigV4, credentials from the `aws-config` chain) |
/// | `polling_interval` | `300` | seconds between two `GetSamplingRules` calls (decimals accepted) |
/// | `targets_polling_interval` | `10` | the kit's: seconds between two `GetSamplingTargets` calls until X-Ray's answer names its own `Interval` |
/// | `sigv4` | auto | the kit's: `true`, `false` or a region; unset, requests are signed when the endpoint's host is `xray.<region>.amazonaws.com[.cn]` |
///
/// ```
/// use std::time::Duration;
/// use apprunner::telemetry::XraySampling;
///
/// let sampling = XraySampling::from_arg("endpoint=http://collector:2000,polling_interval=60")?;
/// assert_eq!(sampling.endpoint(), "http://collector:2000");
/// assert_eq!(sampling.rules_interval(), Duration::from_secs(60));
/// assert_eq!(sampling.signing_region(), None);
///
/// let api = XraySampling::default().endpoint_set("https://xray.eu-west-1.amazonaws.com");
/// assert_eq!(api.signing_region(), Some("eu-west-1"));
/// # Ok::<(), apprunner::telemetry::TelemetryError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct XraySampling {
    endpoint: String,
    rules_interval: Duration,
    targets_interval: Duration,
    /// `None`: decided from the endpoint's host.
    sigv4: Option<Signed>,
    /// The region of the environment (`AWS_REGION`), for `sigv4=true` on another host.
    env_region: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
enum Signed {
    Off,
    On(Option<String>),
}

impl Default for XraySampling {
    fn default() -> Self {
        Self {
            endpoint: DEFAULT_ENDPOINT.to_owned(),
            rules_interval: DEFAULT_RULES_INTERVAL,
            targets_interval: DEFAULT_TARGETS_INTERVAL,
            sigv4: None,
            env_region: None,
        }
    }
}

fn invalid(value: &str, expected: &'static str) -> TelemetryError {
    TelemetryError::InvalidVar {
        var: ARG_VAR,
        value: value.to_owned(),
        expected,
    }
}

fn seconds(whole: &str, value: &str) -> Result<Duration, TelemetryError> {
    value
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.05 && *s <= 86_400.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| {
            invalid(
                whole,
                "a number of seconds between 0.05 and 86400 for polling_interval and \
                 targets_polling_interval",
            )
        })
}

impl XraySampling {
    /// Parses `OTEL_TRACES_SAMPLER_ARG` (`endpoint=http://localhost:2000,polling_interval=300`);
    /// an empty value gives the defaults. A malformed value is an error naming the variable.
    ///
    /// ```
    /// use apprunner::telemetry::XraySampling;
    ///
    /// assert_eq!(XraySampling::from_arg("")?, XraySampling::default());
    /// let err = XraySampling::from_arg("polling_interval=often").unwrap_err();
    /// assert!(err.to_string().contains("OTEL_TRACES_SAMPLER_ARG"));
    /// # Ok::<(), apprunner::telemetry::TelemetryError>(())
    /// ```
    pub fn from_arg(arg: &str) -> Result<Self, TelemetryError> {
        let mut out = Self::default();
        for pair in arg.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((key, value)) = pair.split_once('=') else {
                return Err(invalid(
                    arg,
                    "comma-separated key=value pairs such as \
                     endpoint=http://localhost:2000,polling_interval=300",
                ));
            };
            let value = value.trim();
            match key.trim().to_ascii_lowercase().as_str() {
                "endpoint" => {
                    let ok = (value.starts_with("http://") || value.starts_with("https://"))
                        && value.len() > "https://".len();
                    if !ok {
                        return Err(invalid(
                            arg,
                            "endpoint=http://host:port (a sampling proxy) or \
                             endpoint=https://xray.<region>.amazonaws.com (the X-Ray API)",
                        ));
                    }
                    out.endpoint = value.trim_end_matches('/').to_owned();
                }
                "polling_interval" => out.rules_interval = seconds(arg, value)?,
                "targets_polling_interval" => out.targets_interval = seconds(arg, value)?,
                "sigv4" => {
                    out.sigv4 = Some(if value.eq_ignore_ascii_case("true") {
                        Signed::On(None)
                    } else if value.eq_ignore_ascii_case("false") {
                        Signed::Off
                    } else if is_region(value) {
                        Signed::On(Some(value.to_ascii_lowercase()))
                    } else {
                        return Err(invalid(
                            arg,
                            "sigv4=true, sigv4=false or sigv4=<region> such as eu-west-1",
                        ));
                    });
                }
                _ => {
                    return Err(invalid(
                        arg,
                        "keys endpoint, polling_interval, targets_polling_interval and sigv4",
                    ));
                }
            }
        }
        Ok(out)
    }

    /// Sets the endpoint (a sampling proxy, `http://localhost:2000`, or the X-Ray API,
    /// `https://xray.<region>.amazonaws.com`).
    ///
    /// ```
    /// let s = apprunner::telemetry::XraySampling::default().endpoint_set("http://10.0.0.5:2000");
    /// assert_eq!(s.endpoint(), "http://10.0.0.5:2000");
    /// ```
    pub fn endpoint_set(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = endpoint.into().trim_end_matches('/').to_owned();
        self
    }

    /// Sets how often the sampling rules are fetched (default 5 min).
    ///
    /// ```
    /// use std::time::Duration;
    /// let s = apprunner::telemetry::XraySampling::default().rules_interval_set(Duration::from_secs(60));
    /// assert_eq!(s.rules_interval(), Duration::from_secs(60));
    /// ```
    pub fn rules_interval_set(mut self, interval: Duration) -> Self {
        self.rules_interval = interval.max(Duration::from_millis(50));
        self
    }

    /// Sets how often reservoir quotas are fetched until X-Ray names its own interval
    /// (default 10 s).
    ///
    /// ```
    /// use std::time::Duration;
    /// let s = apprunner::telemetry::XraySampling::default().targets_interval_set(Duration::from_secs(5));
    /// assert_eq!(s.targets_interval(), Duration::from_secs(5));
    /// ```
    pub fn targets_interval_set(mut self, interval: Duration) -> Self {
        self.targets_interval = interval.max(Duration::from_millis(50));
        self
    }

    /// The endpoint, without a trailing `/`.
    ///
    /// ```
    /// assert_eq!(apprunner::telemetry::XraySampling::default().endpoint(), "http://localhost:2000");
    /// ```
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// How often the sampling rules are fetched.
    ///
    /// ```
    /// use std::time::Duration;
    /// assert_eq!(apprunner::telemetry::XraySampling::default().rules_interval(), Duration::from_secs(300));
    /// ```
    pub fn rules_interval(&self) -> Duration {
        self.rules_interval
    }

    /// How often reservoir quotas are fetched until X-Ray names its own interval.
    ///
    /// ```
    /// use std::time::Duration;
    /// assert_eq!(apprunner::telemetry::XraySampling::default().targets_interval(), Duration::from_secs(10));
    /// ```
    pub fn targets_interval(&self) -> Duration {
        self.targets_interval
    }

    /// The region requests are signed for, or `None` when they are sent unsigned (a proxy).
    ///
    /// ```
    /// use apprunner::telemetry::XraySampling;
    /// assert_eq!(XraySampling::default().signing_region(), None);
    /// let s = XraySampling::from_arg("endpoint=https://vpce-1.xray.eu-west-1.vpce.amazonaws.com,sigv4=eu-west-1")?;
    /// assert_eq!(s.signing_region(), Some("eu-west-1"));
    /// # Ok::<(), apprunner::telemetry::TelemetryError>(())
    /// ```
    pub fn signing_region(&self) -> Option<&str> {
        match &self.sigv4 {
            Some(Signed::Off) => None,
            Some(Signed::On(Some(region))) => Some(region),
            Some(Signed::On(None)) => self.host_region().or(self.env_region.as_deref()),
            None => self.host_region(),
        }
    }

    /// The region of an `xray.<region>.amazonaws.com[.cn]` endpoint.
    fn host_region(&self) -> Option<&str> {
        let region = xray_region(&self.endpoint)?;
        // `xray_region` gives an owned lowercase copy; find it in the endpoint to borrow.
        let lower = self.endpoint.to_ascii_lowercase();
        let at = lower.find(&region)?;
        Some(&self.endpoint[at..at + region.len()])
    }

    /// Records the environment's region (for `sigv4=true` on a host that names none); an error
    /// when signing is asked for and no region is known.
    #[cfg(feature = "xray-sampling")]
    pub(crate) fn with_env_region(
        mut self,
        region: Option<String>,
    ) -> Result<Self, TelemetryError> {
        self.env_region = region;
        if self.sigv4 == Some(Signed::On(None)) && self.signing_region().is_none() {
            return Err(invalid(
                &format!("endpoint={},sigv4=true", self.endpoint),
                "sigv4=<region> (such as eu-west-1), AWS_REGION set, or an \
                 xray.<region>.amazonaws.com endpoint",
            ));
        }
        Ok(self)
    }
}

#[cfg(feature = "xray-sampling")]
impl super::TelemetryConfig {
    /// Samples with X-Ray centralized sampling (wins over `OTEL_TRACES_SAMPLER`): the
    /// console's sampling rules and reservoir quotas, fetched as `settings` say; a parent's
    /// decision still wins.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use apprunner::telemetry::{TelemetryConfig, XraySampling};
    ///
    /// let telemetry = TelemetryConfig::from_env()?
    ///     .xray_sampling(XraySampling::default().rules_interval_set(Duration::from_secs(60)))
    ///     .init()?;
    /// # drop(telemetry);
    /// # Ok::<(), apprunner::telemetry::TelemetryError>(())
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "xray-sampling")))]
    pub fn xray_sampling(mut self, settings: XraySampling) -> Self {
        if settings.env_region.is_none() {
            let region = self.region.clone();
            let mut settings = settings;
            settings.env_region = region;
            self.sampler = super::SamplerSetting::Xray(Box::new(settings));
        } else {
            self.sampler = super::SamplerSetting::Xray(Box::new(settings));
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adot_format_with_defaults() {
        let s = XraySampling::from_arg(" endpoint=http://127.0.0.1:2000/ , polling_interval=0.5 ")
            .unwrap();
        assert_eq!(s.endpoint(), "http://127.0.0.1:2000");
        assert_eq!(s.rules_interval(), Duration::from_millis(500));
        assert_eq!(s.targets_interval(), DEFAULT_TARGETS_INTERVAL);
        assert_eq!(s.signing_region(), None);
    }

    #[test]
    fn malformed_args_name_the_variable() {
        for bad in [
            "endpoint",
            "endpoint=localhost:2000",
            "polling_interval=-1",
            "polling_interval=0",
            "targets_polling_interval=NaN",
            "sigv4=maybe",
            "interval=5",
        ] {
            let err = XraySampling::from_arg(bad).unwrap_err().to_string();
            assert!(err.contains(ARG_VAR), "{bad}: {err}");
        }
    }

    #[cfg(feature = "xray-sampling")]
    #[test]
    fn signing_follows_the_host_unless_told() {
        let api =
            XraySampling::from_arg("endpoint=https://xray.cn-north-1.amazonaws.com.cn").unwrap();
        assert_eq!(api.signing_region(), Some("cn-north-1"));
        let off =
            XraySampling::from_arg("endpoint=https://xray.eu-west-1.amazonaws.com,sigv4=false")
                .unwrap();
        assert_eq!(off.signing_region(), None);
        let on = XraySampling::from_arg("endpoint=http://proxy:2000,sigv4=true")
            .unwrap()
            .with_env_region(Some("ap-south-1".into()))
            .unwrap();
        assert_eq!(on.signing_region(), Some("ap-south-1"));
        let nowhere = XraySampling::from_arg("endpoint=http://proxy:2000,sigv4=true").unwrap();
        assert!(nowhere.with_env_region(None).is_err());
    }
}
