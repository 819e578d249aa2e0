//! The users API: the sample App Runner service, written with `#[apprunner::main]` and axum,
//! on PostgreSQL in production and SQLite locally, traced end to end in X-Ray.
//!
//! Run with: cargo run -p users-api
//!
//! With nothing configured it uses an SQLite file (`users.db` in the working directory, or
//! `SQLITE_PATH`), applies the migrations, makes up a JWT signing key for the run and listens
//! on `PORT` (8080). Add `OTEL_TRACES_EXPORTER=console` to print every span on standard error;
//! by default spans go over OTLP to `localhost:4317`, where App Runner's collector listens.
//!
//! ```text
//! curl -si localhost:8080/signup -H 'content-type: application/json' \
//!      -d '{"email":"ada@example.com","password":"correct horse"}'
//! curl -si localhost:8080/login -c jar -H 'content-type: application/json' \
//!      -d '{"email":"ada@example.com","password":"correct horse"}'
//! curl -s localhost:8080/users -b jar
//! curl -s localhost:8080/api-docs/openapi.json
//! ```
//!
//! On App Runner (see `infra/`) the environment names the database secret (`DB_SECRET_NAME`,
//! or the injected `DB_SECRET` JSON) and the JWT key (`APPRUNNER_SECRETS=JWT_SECRET=<arn>`, or
//! the injected `JWT_SECRET`): `#[apprunner::main]` puts them into `DATABASE_URL` and
//! `JWT_SECRET` before anything else runs, and `AppState` (see `state.rs`) connects to
//! PostgreSQL with them. The README next to this file lists every setting.

mod auth;
mod error;
mod input;
mod routes;
mod state;
mod store;

use apprunner::http::{HealthRoute, Server};

use crate::state::AppState;

/// Secrets, telemetry and the `AppState` parameter come from `#[apprunner::main]`; serving is
/// written out (instead of returning the `Router`) to add the health route.
#[apprunner::main]
async fn main(state: AppState) -> apprunner::Result<()> {
    let app = routes::router(state.clone());
    // The kit's defaults: PORT, request timeout, a 2 MiB body limit as a backstop (the routes
    // allow 16 KiB), graceful drain on SIGTERM, and a SERVER span per request.
    Server::from_env()?
        // Outside the tracing layer: health checks every few seconds make no traces and never
        // touch the database.
        .health_route(HealthRoute::new().path("/healthz"))
        .serve(app)
        .await?;
    // SIGTERM: requests have drained; close the pool before telemetry flushes.
    state.store.close().await;
    Ok(())
}
