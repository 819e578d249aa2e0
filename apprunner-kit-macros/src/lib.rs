//! The `#[apprunner::main]` attribute of [apprunner-kit](https://docs.rs/apprunner-kit).
//!
//! Use it through `apprunner-kit` (`#[apprunner::main]`), never by depending on this crate:
//! the expansion refers to `::apprunner::__private`. This crate only turns token streams
//! around; the logic is in `main_attr`, written over `proc_macro2` so plain tests can call it.

mod main_attr;

use proc_macro::TokenStream;

/// Turns `async fn main` into a complete App Runner service entry point.
///
/// In order, the generated `main`:
///
/// 1. bootstraps secrets (AWS Secrets Manager → environment) while the process has one thread;
/// 2. builds the Tokio multi-thread runtime;
/// 3. initialises telemetry (X-Ray ids, propagation, OTLP export, JSON logs);
/// 4. provides each parameter (a connected, instrumented database pool, ...) and runs the body;
/// 5. if the body returns an `axum::Router`, serves it on `PORT` with graceful shutdown;
/// 6. shuts telemetry down, flushing every span, and returns an `ExitCode` — an error becomes
///    one logged line and exit code 1. It never calls `std::process::exit`.
///
/// # Options
///
/// | option | meaning |
/// |---|---|
/// | `service = "users-api"` | `service.name` (wins over `OTEL_SERVICE_NAME`; default: the package name) |
/// | `secrets = "JWT_SECRET=my-app/jwt#key"` | extra secret mappings, same syntax as `APPRUNNER_SECRETS` |
/// | `migrate = "migrations"` | run the `sqlx` migrations of that folder at start-up |
/// | `telemetry = path::to_fn` | a `fn(TelemetryConfig) -> TelemetryConfig` (or closure) adjusting telemetry before it starts, after secrets are in the environment: `App::telemetry` |
/// | `crate = ::path` | where `apprunner-kit` is, if renamed |
///
/// # Example
///
/// ```no_run
/// #[apprunner::main(service = "hello")]
/// async fn main() -> apprunner::Result<axum::Router> {
///     Ok(axum::Router::new().route("/", axum::routing::get(|| async { "hello" })))
/// }
/// ```
///
/// # Equivalent code not using `#[apprunner::main]`
///
/// ```no_run
/// fn main() -> std::process::ExitCode {
///     async fn main() -> apprunner::Result<axum::Router> {
///         Ok(axum::Router::new().route("/", axum::routing::get(|| async { "hello" })))
///     }
///     apprunner::App::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
///         .service_name("hello")
///         .run(|cx: apprunner::AppContext| async move {
///             apprunner::IntoOutcome::into_outcome(main().await, &cx).await
///         })
/// }
/// ```
///
/// Parameters are provided by [`FromContext`](https://docs.rs/apprunner-kit/latest/apprunner/trait.FromContext.html)
/// (`let db = <Pool<Postgres> as FromContext>::from_context(&cx).await?;`) and the return value
/// is handled by [`IntoOutcome`](https://docs.rs/apprunner-kit/latest/apprunner/trait.IntoOutcome.html).
#[proc_macro_attribute]
pub fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    main_attr::expand(args.into(), item.into()).into()
}
