//! The users API: the sample App Runner service, written with `#[apprunner::main]` and axum,
//! on PostgreSQL in production and SQLite locally, traced end to end in X-Ray.
//!
//! Run with: cargo run -p users-api
//!
//! With nothing configured it uses an SQLite file (`users.db` in the working directory, or
//! `SQLITE_PATH`), applies the migrations, makes up a JWT signing key for the run, listens on
//! `HOST:PORT` (`0.0.0.0:8080`; `HOST=127.0.0.1` keeps it to this machine) and prints every span
//! readably on standard error (see [`local_console`]). The API documentation, with "Try it
//! out", is at <http://localhost:8080/api-docs>.
//!
//! ```text
//! curl -s localhost:8080/signup -H 'content-type: application/json' \
//!      -d '{"email":"ada@example.com","password":"correct horse"}'
//! curl -s localhost:8080/login -c jar -H 'content-type: application/json' \
//!      -d '{"email":"ada@example.com","password":"correct horse"}'
//! curl -s localhost:8080/users -b jar
//! ```
//!
//! On App Runner (see `infra/`) the environment names the database secret (`DB_SECRET_NAME`,
//! or the injected `DB_SECRET` JSON) and the JWT key (`APPRUNNER_SECRETS=JWT_SECRET=<arn>`, or
//! the injected `JWT_SECRET`): `#[apprunner::main]` puts them into `DATABASE_URL` and
//! `JWT_SECRET` before anything else runs, and `AppState` (see `state.rs`) connects to
//! PostgreSQL with them; spans go over OTLP to App Runner's collector on `localhost:4317`. The
//! README next to this file lists every setting.

mod auth;
mod error;
mod input;
mod jobs;
mod routes;
mod state;
mod store;

use apprunner::http::{HealthRoute, Server};
use apprunner::telemetry::{TelemetryConfig, TracesExporter};

use crate::state::AppState;

/// Secrets, telemetry and the `AppState` parameter come from `#[apprunner::main]`; serving is
/// written out (instead of returning the `Router`) to add the health route and the API docs.
#[apprunner::main(telemetry = local_console, migrate = "./migrations")]
async fn main(state: AppState) -> apprunner::Result<()> {
    let mut app = routes::router(state.clone());
    // SNS pushes background jobs here (when APPRUNNER_JOBS_TOPIC_ARN names the topic).
    if let Some(jobs) = jobs::router(&state.store)
        .await
        .map_err(apprunner::Error::service)?
    {
        app = app.merge(jobs);
    }
    // The kit's defaults: HOST and PORT, request timeout, a 2 MiB body limit as a backstop (the
    // routes allow 16 KiB), graceful drain on SIGTERM, a SERVER span per request, and a log
    // line only for failed, slow or rejected requests (APPRUNNER_ACCESS_LOG=all for every one).
    Server::from_env()?
        // Outside the tracing layer: health checks every few seconds make no traces and never
        // touch the database; reading the API docs makes no traces either.
        .health_route(HealthRoute::new().path("/healthz"))
        .untraced_routes(routes::docs())
        .serve(app)
        .await?;
    // SIGTERM: requests have drained; close the pool before telemetry flushes.
    state.store.close().await;
    Ok(())
}

/// The variables that choose where spans go; when one is set, it decides.
const EXPORTER_SETTINGS: [&str; 3] = [
    "OTEL_TRACES_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
];

/// Local mode shows its spans: with no database configured (so SQLite, on a developer's
/// machine) and none of [`EXPORTER_SETTINGS`] set, spans are printed readably on standard
/// error instead of going to `localhost:4317`, where nothing listens outside App Runner. An
/// explicit `OTEL_TRACES_EXPORTER` (`otlp`, `none`, …) always wins.
///
/// `#[apprunner::main]` calls it after secrets are in the environment, so a `DB_SECRET_NAME`
/// counts as a database setting.
fn local_console(config: TelemetryConfig) -> TelemetryConfig {
    let exporter_chosen = EXPORTER_SETTINGS
        .iter()
        .any(|var| std::env::var_os(var).is_some_and(|value| !value.is_empty()));
    if !exporter_chosen && store::is_local() {
        config.traces_exporter_set(TracesExporter::Console)
    } else {
        config
    }
}
