//! A service written with `#[apprunner::main]`, as a user would: a database pool parameter
//! (connected from `DB_SECRET_NAME` through Secrets Manager), migrations, and a returned
//! router that the kit serves until SIGTERM. `tests/main_macro.rs` runs it against real
//! PostgreSQL, moto and an OTLP receiver.

use apprunner::db::PgPool;
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;

async fn visit(State(db): State<PgPool>, Path(name): Path<String>) -> Result<String, String> {
    sqlx::query("INSERT INTO visits (path) VALUES ($1)")
        .bind(&name)
        .execute(&db)
        .await
        .map_err(|e| e.to_string())?;
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM visits WHERE path = $1")
        .bind(&name)
        .fetch_one(&db)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(count, "visit recorded");
    Ok(count.to_string())
}

#[apprunner::main(service = "macro-service", migrate = "bin/macro_service_migrations")]
async fn main(db: PgPool) -> apprunner::Result<Router> {
    Ok(Router::new()
        .route("/visits/{name}", get(visit))
        .merge(apprunner::http::health_route())
        .with_state(db))
}
