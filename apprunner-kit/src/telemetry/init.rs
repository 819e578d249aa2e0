//! [`init`] and [`TelemetryConfig::init`]: builds the pipeline and installs the globals.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

use super::config::{self, LogFormat, TelemetryConfig};
use super::error::TelemetryError;
use super::export;
use super::guard::TelemetryGuard;
use super::kit_span::{kit_scope, set_kit_tracer, set_local_service_name};
use super::logs::JsonFormat;
use super::resource;
use super::xray::{self, XrayIdGenerator};

/// Initialises telemetry from the environment: `TelemetryConfig::from_env()?.init()`.
///
/// ```no_run
/// # async fn run() -> Result<(), apprunner::telemetry::TelemetryError> {
/// let telemetry = apprunner::telemetry::init()?;
/// // ... serve ...
/// telemetry.shutdown().await?;
/// # Ok(()) }
/// ```
pub fn init() -> Result<TelemetryGuard, TelemetryError> {
    TelemetryConfig::from_env()?.init()
}

fn env_filter(var: &'static str, directives: &str) -> Result<EnvFilter, TelemetryError> {
    EnvFilter::try_new(directives).map_err(|_| TelemetryError::InvalidVar {
        var,
        value: directives.to_owned(),
        expected: "tracing filter directives such as `info` or `info,my_crate=debug`",
    })
}

impl TelemetryConfig {
    /// Installs the tracer provider, the propagator and (unless disabled) the global `tracing`
    /// subscriber. Call it once per process; it does not need a Tokio runtime.
    ///
    /// ```no_run
    /// let telemetry = apprunner::telemetry::TelemetryConfig::from_env()?
    ///     .service_name("users-api")
    ///     .init()?;
    /// # drop(telemetry);
    /// # Ok::<(), apprunner::telemetry::TelemetryError>(())
    /// ```
    pub fn init(self) -> Result<TelemetryGuard, TelemetryError> {
        let log_filter = env_filter("RUST_LOG", &self.log_filter)?;
        let span_filter = env_filter("APPRUNNER_SPAN_FILTER", &self.span_filter)?;

        let resource = resource::resource(&self);
        #[cfg(feature = "xray-sampling")]
        let mut sampling_poller = None;
        let sampler = match &self.sampler {
            #[cfg(feature = "xray-sampling")]
            config::SamplerSetting::Xray(settings) if !self.disabled => {
                // Parent-based: the rules decide only for spans starting a trace (and for
                // App Runner's deferred `Sampled=?`, through the root sampler).
                let (root, poller) = super::xray_sampling::start(settings, &resource)?;
                sampling_poller = Some(poller);
                xray::XrayAwareSampler::with_root(
                    opentelemetry_sdk::trace::Sampler::ParentBased(Box::new(root.clone())),
                    Box::new(root),
                )
            }
            setting => {
                let (sampler, root) = if self.disabled {
                    config::SamplerSetting::AlwaysOff.build()
                } else {
                    setting.build()
                };
                xray::XrayAwareSampler::new(sampler, root)
            }
        };
        let builder = SdkTracerProvider::builder()
            .with_id_generator(XrayIdGenerator::default())
            .with_sampler(sampler)
            .with_span_limits(self.limits.sdk())
            .with_resource(resource);
        let export::Pipeline {
            provider,
            thread,
            counters,
        } = export::pipeline(&self, builder)?;

        let tracer = provider.tracer_with_scope(kit_scope());
        let mut guard = TelemetryGuard::new(
            provider.clone(),
            thread,
            counters,
            tracer.clone(),
            self.shutdown_timeout,
        );
        #[cfg(feature = "xray-sampling")]
        guard.set_sampling_poller(sampling_poller);

        if self.install_subscriber {
            // Source locations, thread ids and busy/idle timings would only add noise to
            // X-Ray segments (and cost on every span).
            let otel_layer = tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_location(false)
                .with_threads(false)
                .with_target(false)
                .with_tracked_inactivity(false)
                .with_filter(span_filter);
            let json = match self.log_format {
                LogFormat::Json => true,
                LogFormat::Text => false,
                LogFormat::Auto => !std::io::IsTerminal::is_terminal(&std::io::stdout()),
            };
            let fmt_layer = if json {
                tracing_subscriber::fmt::layer()
                    .event_format(JsonFormat::default().service_name(self.resolved_service_name()))
                    .with_writer(std::io::stdout)
                    .boxed()
            } else {
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stdout)
                    .boxed()
            };
            let installed = tracing_subscriber::registry()
                .with(otel_layer)
                .with(fmt_layer.with_filter(log_filter))
                .try_init();
            if installed.is_err() {
                // Stop what was started; nothing global has been replaced yet.
                let _ = guard.shutdown_inner();
                return Err(TelemetryError::SubscriberAlreadySet);
            }
        }
        opentelemetry::global::set_text_map_propagator(self.propagator());
        opentelemetry::global::set_tracer_provider(provider);
        set_kit_tracer(Some(guard.tracer()));
        set_local_service_name(Some(self.resolved_service_name().into()));
        for warning in &self.warnings.0 {
            tracing::warn!(target: "apprunner::telemetry", "{warning}");
        }
        Ok(guard)
    }
}
