//! Start-up: fetch on a throwaway current-thread runtime, drop it, then set the variables.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue};

use super::env::{self, SingleThreaded};
use super::error::SecretsError;
use super::fetch::{self, Fetcher};
use super::plan::{Plan, SecretSource, Target};
use super::rds::{self, RdsCredentials};
use super::secret::Secret;
use crate::client::{
    AWS_LOCAL_SERVICE, AWS_SPAN_KIND, AwsTracing, LOCAL_ROOT, RecordedCall, Recorder,
};

/// How long dropping the fetch runtime may wait for its blocking threads (DNS lookups).
const RUNTIME_SHUTDOWN: Duration = Duration::from_secs(10);

/// Puts the declared secrets into the process environment. Call it first in `main`, before
/// any thread or async runtime exists (`#[apprunner::main]` does exactly that).
///
/// What it does, in this order:
///
/// 1. returns at once, fetching nothing, if the plan is empty or every variable it would set is
///    already set (and [`Plan::overwrite`] is off);
/// 2. checks that the current thread is the only one (on Linux, by counting
///    `/proc/self/task`) and returns [`SecretsError::ThreadsRunning`] otherwise — misuse is an
///    error, not undefined behaviour;
/// 3. fetches the Secrets Manager secrets (stage `AWSCURRENT`) on a current-thread tokio runtime,
///    through the standard AWS configuration chain (`AWS_REGION`, `AWS_ENDPOINT_URL`,
///    `AWS_ENDPOINT_URL_SECRETS_MANAGER`, the instance or task role…), each call in a CLIENT
///    span `SecretsManager.GetSecretValue`;
/// 4. shuts that runtime down, joining its blocking threads, and checks again that one thread
///    is left;
/// 5. expands every declaration (RDS JSON, JSON keys, whole texts, injected variables) and, only
///    if all of them succeeded, sets the variables — those already set keep their value unless
///    [`Plan::overwrite`] is on.
///
/// Tracing: no exporter can run yet at this point, so the returned [`Report`] keeps the calls
/// (never the values); [`Report::emit_spans`] replays them once telemetry is up.
///
/// # Errors
///
/// A [`SecretsError`] naming the secret and the cause; the environment is then left untouched.
///
/// # Examples
///
/// ```no_run
/// use apprunner::secrets::{self, Plan, SecretSource};
///
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     // First thing in main: no thread exists yet.
///     let report = secrets::bootstrap(
///         &Plan::new().rds(SecretSource::secrets_manager("prod/users-db")),
///     )?;
///     let runtime = tokio::runtime::Runtime::new()?;
///     runtime.block_on(async {
///         // telemetry init, then:
///         report.emit_spans("my-service");
///         let url = std::env::var("DATABASE_URL")?;
///         # let _ = url;
///         Ok(())
///     })
/// }
/// ```
pub fn bootstrap(plan: &Plan) -> Result<Report, SecretsError> {
    plan.validate()?;
    let overwrite = plan.overwrites();
    // Declarations whose variables are all set already need nothing (not even a fetch).
    let (pending, skipped): (Vec<_>, Vec<_>) = plan
        .declarations()
        .iter()
        .partition(|d| overwrite || !d.target().vars().into_iter().all(env::is_set));
    let mut report = Report::default();
    for declaration in &skipped {
        report
            .kept
            .extend(declaration.target().vars().into_iter().map(str::to_owned));
    }
    if pending.is_empty() {
        return Ok(report);
    }
    let _ = SingleThreaded::check()?;

    // 3. Fetch each distinct Secrets Manager secret once.
    let mut ids: Vec<&str> = pending
        .iter()
        .filter_map(|d| match d.source() {
            SecretSource::SecretsManager(id) => Some(id.as_str()),
            _ => None,
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let mut texts: BTreeMap<String, Secret<String>> = BTreeMap::new();
    if !ids.is_empty() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(SecretsError::Runtime)?;
        let fetched = runtime.block_on(fetch_all(&ids, plan.timeout_duration()));
        // 4. Join the runtime's blocking threads before anything touches the environment.
        runtime.shutdown_timeout(RUNTIME_SHUTDOWN);
        let (fetched, calls) = fetched?;
        for (id, value) in fetched {
            report.fetched.push(id.clone());
            texts.insert(id, value);
        }
        report.calls = calls;
    }

    // 5. Expand everything first, so a failure leaves the environment untouched.
    let mut assignments: Vec<(String, Secret<String>)> = Vec::new();
    for declaration in &pending {
        let (described, text) = match declaration.source() {
            SecretSource::SecretsManager(id) => {
                let text = texts
                    .get(id)
                    .expect("every Secrets Manager source was fetched");
                (fetch::describe(id), text.clone())
            }
            SecretSource::Injected(var) => {
                let text = match std::env::var_os(var).map(|v| v.into_string()) {
                    Some(Ok(text)) => text,
                    Some(Err(_)) => {
                        return Err(SecretsError::invalid_config(
                            var.as_str(),
                            "the injected secret is not UTF-8",
                        ));
                    }
                    None => return Err(SecretsError::InjectedMissing { var: var.clone() }),
                };
                report.injected.push(var.clone());
                (declaration.source().to_string(), Secret::new(text))
            }
        };
        match declaration.target() {
            Target::Rds => {
                let credentials = RdsCredentials::parse(&described, text.expose())?;
                assignments.extend(credentials.env_vars());
            }
            Target::Var { name, key: None } => assignments.push((name.clone(), text)),
            Target::Var {
                name,
                key: Some(key),
            } => {
                let object = rds::parse_object(&described, text.expose())?;
                assignments.push((name.clone(), rds::key_value(&described, &object, key)?));
            }
        }
    }
    if let Some((var, _)) = assignments.iter().find(|(_, v)| v.expose().contains('\0')) {
        return Err(SecretsError::NulInValue { var: var.clone() });
    }

    let proof = SingleThreaded::check().map_err(|err| match err {
        SecretsError::ThreadsRunning { threads } => SecretsError::LingeringThreads { threads },
        other => other,
    })?;
    for (name, value) in &assignments {
        if !overwrite && env::is_set(name) {
            report.kept.push(name.clone());
        } else {
            env::set(&proof, name, value);
            report.set.push(name.clone());
        }
    }
    Ok(report)
}

/// [`bootstrap`] with the plan read from the environment ([`Plan::from_env`]): `DB_SECRET` or
/// `DB_SECRET_NAME` for an RDS expansion, `APPRUNNER_SECRETS` for general mappings. Does nothing
/// when none of them is set.
///
/// This is what `#[apprunner::main]` calls before it builds the multi-thread runtime.
///
/// # Errors
///
/// As [`Plan::from_env`] and [`bootstrap`].
///
/// # Examples
///
/// ```no_run
/// fn main() -> Result<(), apprunner::secrets::SecretsError> {
///     let report = apprunner::secrets::bootstrap_from_env()?;
///     eprintln!("{report}");
///     Ok(())
/// }
/// ```
pub fn bootstrap_from_env() -> Result<Report, SecretsError> {
    bootstrap(&Plan::from_env()?)
}

/// The secrets' texts by id, and the `GetSecretValue` calls as the interceptor recorded them
/// (telemetry does not exist yet: [`Report::emit_spans`] starts them later).
async fn fetch_all(
    ids: &[&str],
    timeout: Duration,
) -> Result<(Vec<(String, Secret<String>)>, Vec<RecordedCall>), SecretsError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let first = ids.first().copied().unwrap_or_default();
    let recorder = Recorder::default();
    let fetcher = tokio::time::timeout_at(
        deadline,
        Fetcher::from_env(AwsTracing::recording(recorder.clone())),
    )
    .await
    .map_err(|_| SecretsError::Timeout {
        secret: fetch::describe(first),
        after: timeout,
    })??;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let value = tokio::time::timeout_at(deadline, fetcher.get(id, "AWSCURRENT"))
            .await
            .map_err(|_| SecretsError::Timeout {
                secret: fetch::describe(id),
                after: timeout,
            })??;
        out.push(((*id).to_owned(), value));
    }
    Ok((out, recorder.calls()))
}

/// What [`bootstrap`] did: variable names and the calls it made, never a value.
///
/// # Examples
///
/// ```
/// use apprunner::secrets::{bootstrap, Plan};
///
/// let report = bootstrap(&Plan::new())?;
/// assert!(report.set_vars().is_empty() && report.fetched_secrets().is_empty());
/// assert_eq!(report.to_string(), "secrets: nothing declared");
/// # Ok::<(), apprunner::secrets::SecretsError>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct Report {
    set: Vec<String>,
    kept: Vec<String>,
    injected: Vec<String>,
    /// The secrets fetched, in order.
    fetched: Vec<String>,
    /// The `GetSecretValue` calls, recorded by the AWS SDK interceptor.
    calls: Vec<RecordedCall>,
}

impl Report {
    /// The variables that were set.
    ///
    /// # Examples
    ///
    /// ```
    /// # let report = apprunner::secrets::bootstrap(&apprunner::secrets::Plan::new())?;
    /// for name in report.set_vars() {
    ///     println!("set {name}");
    /// }
    /// # Ok::<(), apprunner::secrets::SecretsError>(())
    /// ```
    pub fn set_vars(&self) -> &[String] {
        &self.set
    }

    /// The variables that were already set and kept their value.
    ///
    /// # Examples
    ///
    /// ```
    /// # let report = apprunner::secrets::bootstrap(&apprunner::secrets::Plan::new())?;
    /// assert!(report.kept_vars().is_empty());
    /// # Ok::<(), apprunner::secrets::SecretsError>(())
    /// ```
    pub fn kept_vars(&self) -> &[String] {
        &self.kept
    }

    /// The variables whose injected secret text was expanded.
    ///
    /// # Examples
    ///
    /// ```
    /// # let report = apprunner::secrets::bootstrap(&apprunner::secrets::Plan::new())?;
    /// assert!(report.injected_vars().is_empty());
    /// # Ok::<(), apprunner::secrets::SecretsError>(())
    /// ```
    pub fn injected_vars(&self) -> &[String] {
        &self.injected
    }

    /// The names or ARNs of the secrets fetched from Secrets Manager.
    ///
    /// # Examples
    ///
    /// ```
    /// # let report = apprunner::secrets::bootstrap(&apprunner::secrets::Plan::new())?;
    /// assert!(report.fetched_secrets().is_empty());
    /// # Ok::<(), apprunner::secrets::SecretsError>(())
    /// ```
    pub fn fetched_secrets(&self) -> Vec<&str> {
        self.fetched.iter().map(String::as_str).collect()
    }

    /// The AWS request ids of the `GetSecretValue` calls, in order (for support cases).
    ///
    /// # Examples
    ///
    /// ```
    /// # let report = apprunner::secrets::bootstrap(&apprunner::secrets::Plan::new())?;
    /// assert!(report.request_ids().is_empty());
    /// # Ok::<(), apprunner::secrets::SecretsError>(())
    /// ```
    pub fn request_ids(&self) -> Vec<&str> {
        self.calls
            .iter()
            .filter_map(|call| {
                call.builder
                    .attributes
                    .iter()
                    .flatten()
                    .find(|kv| kv.key.as_str() == "aws.request_id")
                    .and_then(|kv| match &kv.value {
                        opentelemetry::Value::String(id) => Some(id.as_str()),
                        _ => None,
                    })
            })
            .collect()
    }

    /// Replays the start-up fetches as OpenTelemetry spans through the global tracer provider,
    /// with their original timestamps: an INTERNAL root span `secrets bootstrap` and one CLIENT
    /// child `SecretsManager.GetSecretValue` per call (`rpc.system=aws-api`,
    /// `rpc.service=SecretsManager`, `rpc.method=GetSecretValue`, `cloud.region`,
    /// `aws.request_id`, the secret id — never the value).
    ///
    /// `service_name` is the `service.name` of the telemetry resource
    /// ([`TelemetryConfig::resolved_service_name`](crate::telemetry::TelemetryConfig::resolved_service_name)).
    /// The root carries it as `aws.local.service`, with `aws.span.kind=LOCAL_ROOT`: the
    /// collector's X-Ray exporter then names the root's segment after the service instead of
    /// after the span, so start-up adds no `secrets bootstrap` node to the service map, and the
    /// calls below it appear as the `SecretsManager` node (a parentless client span would have
    /// become a segment of its own).
    ///
    /// Call it once telemetry is initialised (bootstrap ran before any exporter could). Does
    /// nothing if nothing was fetched.
    ///
    /// # Examples
    ///
    /// ```
    /// # let report = apprunner::secrets::bootstrap(&apprunner::secrets::Plan::new())?;
    /// // after apprunner::telemetry::init():
    /// report.emit_spans("users-api");
    /// # Ok::<(), apprunner::secrets::SecretsError>(())
    /// ```
    pub fn emit_spans(&self, service_name: &str) {
        let (Some(start), Some(end)) = (
            self.calls.iter().filter_map(|c| c.builder.start_time).min(),
            self.calls.iter().map(|c| c.end).max(),
        ) else {
            return;
        };
        let tracer = opentelemetry::global::tracer("apprunner.secrets");
        let root = tracer
            .span_builder("secrets bootstrap")
            .with_kind(SpanKind::Internal)
            .with_start_time(start)
            .with_attributes([
                KeyValue::new("apprunner.secrets.set_vars", self.set.join(",")),
                // X-Ray: a segment named after the service, not after this span.
                KeyValue::new(AWS_SPAN_KIND, LOCAL_ROOT),
                KeyValue::new(AWS_LOCAL_SERVICE, service_name.to_owned()),
            ])
            .start_with_context(&tracer, &Context::new());
        let cx = Context::new().with_span(root);
        for call in &self.calls {
            let mut span = tracer.build_with_context(call.builder.clone(), &cx);
            if call.failed {
                span.set_status(Status::error(""));
            }
            span.end_with_timestamp(call.end);
        }
        cx.span().end_with_timestamp(end);
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.set.is_empty() && self.kept.is_empty() {
            return f.write_str("secrets: nothing declared");
        }
        write!(f, "secrets: set [{}]", self.set.join(", "))?;
        if !self.kept.is_empty() {
            write!(f, ", kept already set [{}]", self.kept.join(", "))?;
        }
        if !self.fetched.is_empty() {
            write!(f, ", fetched [{}]", self.fetched_secrets().join(", "))?;
        }
        if !self.injected.is_empty() {
            write!(f, ", expanded injected [{}]", self.injected.join(", "))?;
        }
        Ok(())
    }
}
