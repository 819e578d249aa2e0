//! `baseline-users-api`: the routes of the users API that `benches/users_api_load.sh` drives,
//! written the way a user would without apprunner-kit — axum, an sqlx `PgPool`, `tracing` with
//! `tracing-opentelemetry` over the OpenTelemetry SDK (batch span processor, OTLP/gRPC, X-Ray
//! ids and propagation) — so the load script can compare the kit with hand-wired code.
//!
//! Run with: `DATABASE_URL=postgres://… JWT_SECRET=<32+ bytes> cargo run -p baseline-users-api`
//!
//! | route | as in the users API |
//! |---|---|
//! | `GET /healthz` | `200 {"status":"ok"}`, no database, no span, no log line |
//! | `POST /signup` | hash + `INSERT`, `201 {data: user, message: "signup"}` |
//! | `POST /login` | `SELECT` by email + verify, the `__Host-session` JWT cookie |
//! | `GET /users/{id}` | the same `SELECT`, `200 {data: user, message: "findOne"}`, 404 |
//! | `POST /users` | login cookie, hash + `INSERT`, `201 {data: user, message: "created"}` |
//!
//! Settings: `DATABASE_URL` (PostgreSQL, required), `JWT_SECRET` (required, ≥ 32 bytes), `PORT`
//! (8080), `DB_POOL_MAX_CONNECTIONS` (10, the kit's default), `BASELINE_ACCESS_LOG` (`all`: a
//! line per request, the default; `off`: none, as `tower_http`'s default `DEBUG` line under
//! an `info` filter), `RUST_LOG`, and what the
//! OpenTelemetry SDK reads itself: `OTEL_SDK_DISABLED=true` (no exporter, no OpenTelemetry
//! layer), `OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_SERVICE_NAME`, `OTEL_TRACES_SAMPLER`,
//! `OTEL_BSP_*`. The users API's migrations run at start. On SIGTERM the server drains, the
//! pool closes and the tracer provider flushes; a last log line counts the spans lost.

mod auth;
mod telemetry;

use std::time::Duration;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, State};
use axum::http::{HeaderMap, Request, Response, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::serve::{Listener as _, ListenerExt as _};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use tracing::{Instrument as _, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::auth::{Passwords, Tokens};

/// The users API's migrations, so both services query the same table.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../examples/users-api/migrations");

/// The users API's statements (`examples/users-api/src/store.rs`).
const SELECT_USER: &str = "SELECT id, email, created_at, updated_at FROM users WHERE id = $1";
const SELECT_CREDENTIALS: &str =
    "SELECT id, email, created_at, updated_at, password_hash FROM users WHERE email = $1";
const INSERT_USER: &str = "INSERT INTO users (id, email, password_hash, created_at, updated_at) \
                           VALUES ($1, $2, $3, $4, $5)";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let telemetry = telemetry::init()?;
    let database_url = std::env::var("DATABASE_URL").map_err(|_| "DATABASE_URL is not set")?;
    let key = std::env::var("JWT_SECRET").unwrap_or_default();
    if key.len() < 32 {
        return Err("JWT_SECRET must have at least 32 bytes".into());
    }
    let max_connections = match std::env::var("DB_POOL_MAX_CONNECTIONS") {
        Ok(n) => n.parse()?,
        Err(_) => 10,
    };
    let access_log = match std::env::var("BASELINE_ACCESS_LOG").as_deref() {
        Ok("all") | Err(_) => true,
        Ok("off") => false,
        Ok(other) => return Err(format!("BASELINE_ACCESS_LOG={other}: expected all or off").into()),
    };
    let port: u16 = match std::env::var("PORT") {
        Ok(p) => p.parse()?,
        Err(_) => 8080,
    };

    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .connect(&database_url)
        .await?;
    MIGRATOR.run(&pool).await?;
    let options = pool.connect_options();
    let app = App {
        db: std::sync::Arc::new(Db {
            namespace: options.get_database().unwrap_or_default().to_owned(),
            address: options.get_host().to_owned(),
            port: options.get_port(),
        }),
        pool: pool.clone(),
        passwords: Passwords::new(),
        tokens: Tokens::new(key.as_bytes()),
    };

    let listener = tokio::net::TcpListener::bind(("0.0.0.0", port))
        .await?
        .tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
    tracing::info!(address = %listener.local_addr()?, "listening");
    axum::serve(listener, router(app, access_log))
        .with_graceful_shutdown(sigterm())
        .await?;
    pool.close().await;
    telemetry.shutdown();
    Ok(())
}

async fn sigterm() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// The routes, a SERVER span per request (`tower_http`'s `TraceLayer`), then `/healthz`
/// outside it.
fn router(app: App, access_log: bool) -> Router {
    Router::new()
        .route("/signup", post(signup))
        .route("/login", post(login))
        .route("/users", post(create))
        .route("/users/{id}", get(get_one))
        .layer(DefaultBodyLimit::max(16 * 1024))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(server_span)
                .on_request(())
                .on_response(move |response: &Response<Body>, latency, span: &Span| {
                    on_response(response, latency, span, access_log);
                }),
        )
        .layer(TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            Duration::from_secs(60),
        ))
        .with_state(app)
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({ "status": "ok" })) }),
        )
}

/// The SERVER span, continuing the caller's `X-Amzn-Trace-Id` (or `traceparent`).
fn server_span(request: &Request<Body>) -> Span {
    let method = request.method();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("", MatchedPath::as_str);
    let span = tracing::info_span!(
        "request",
        otel.name = %format_args!("{method} {route}"),
        otel.kind = "server",
        http.request.method = %method,
        http.route = route,
        url.path = request.uri().path(),
        url.scheme = "http",
        http.response.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    // Without the OpenTelemetry layer (untraced) there is nothing to attach to.
    let _ = span.set_parent(telemetry::parent_context(request.headers()));
    span
}

/// Status on the span, and one access log line per request unless `BASELINE_ACCESS_LOG=off`.
/// The users API logs only problems by default: compare it with this one `off`, or run both
/// with a line per request (`APPRUNNER_ACCESS_LOG=all`).
fn on_response(response: &Response<Body>, latency: Duration, span: &Span, access_log: bool) {
    let status = response.status();
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    if !access_log {
        return;
    }
    tracing::info!(
        http.response.status_code = status.as_u16(),
        elapsed_ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
        "request served"
    );
}

#[derive(Clone, Debug)]
struct App {
    pool: PgPool,
    db: std::sync::Arc<Db>,
    passwords: Passwords,
    tokens: Tokens,
}

/// What every statement's span says about the database.
#[derive(Debug)]
struct Db {
    namespace: String,
    address: String,
    port: u16,
}

impl App {
    /// A CLIENT span for one statement on the `users` table.
    fn db_span(&self, operation: &'static str, sql: &'static str) -> Span {
        tracing::info_span!(
            "db",
            otel.name = %format_args!("{operation} users"),
            otel.kind = "client",
            db.system.name = "postgresql",
            db.namespace = self.db.namespace.as_str(),
            db.query.text = sql,
            db.operation.name = operation,
            db.collection.name = "users",
            server.address = self.db.address.as_str(),
            server.port = self.db.port,
        )
    }
}

/// A user as the API shows it (no password hash).
#[derive(Debug, Serialize, sqlx::FromRow)]
struct User {
    id: String,
    email: String,
    created_at: String,
    updated_at: String,
}

#[derive(sqlx::FromRow)]
struct Credentials {
    #[sqlx(flatten)]
    user: User,
    password_hash: String,
}

#[derive(Deserialize)]
struct CredentialsInput {
    email: String,
    password: String,
}

#[derive(Serialize)]
struct Envelope<T> {
    data: T,
    message: &'static str,
}

/// Error answers: `{"message": …}`.
#[derive(Debug)]
enum ApiError {
    NotFound,
    Unauthorized,
    InvalidCredentials,
    Invalid(&'static str),
    DuplicateEmail,
    Internal(String),
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::Database(db) if db.is_unique_violation() => ApiError::DuplicateEmail,
            _ => ApiError::Internal(error.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> axum::response::Response {
        let (status, message) = match self {
            ApiError::NotFound => (StatusCode::NOT_FOUND, "user not found"),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "login required"),
            ApiError::InvalidCredentials => (StatusCode::UNAUTHORIZED, "invalid email or password"),
            ApiError::Invalid(message) => (StatusCode::UNPROCESSABLE_ENTITY, message),
            ApiError::DuplicateEmail => (
                StatusCode::CONFLICT,
                "a user with this email already exists",
            ),
            ApiError::Internal(cause) => {
                tracing::error!(error = %cause, "request failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal error")
            }
        };
        (status, Json(serde_json::json!({ "message": message }))).into_response()
    }
}

/// `GET /users/{id}`.
async fn get_one(
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<Json<Envelope<User>>, ApiError> {
    let id = uuid::Uuid::try_parse(&id)
        .map_err(|_| ApiError::NotFound)?
        .hyphenated()
        .to_string();
    let user = sqlx::query_as::<_, User>(SELECT_USER)
        .bind(&id)
        .fetch_optional(&app.pool)
        .instrument(app.db_span("SELECT", SELECT_USER))
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(Envelope {
        data: user,
        message: "findOne",
    }))
}

/// `POST /signup`.
async fn signup(
    State(app): State<App>,
    Json(input): Json<CredentialsInput>,
) -> Result<axum::response::Response, ApiError> {
    let user = insert(&app, input).await?;
    tracing::info!(user.id = %user.id, "user signed up");
    Ok(created(user, "signup"))
}

/// `POST /users`: like sign-up, by someone logged in.
async fn create(
    State(app): State<App>,
    headers: HeaderMap,
    Json(input): Json<CredentialsInput>,
) -> Result<axum::response::Response, ApiError> {
    let by = app.tokens.session(&headers).ok_or(ApiError::Unauthorized)?;
    let user = insert(&app, input).await?;
    tracing::info!(user.id = %user.id, by = %by, "user created");
    Ok(created(user, "created"))
}

/// `POST /login`: the `__Host-session` cookie.
async fn login(
    State(app): State<App>,
    Json(input): Json<CredentialsInput>,
) -> Result<axum::response::Response, ApiError> {
    let (email, password) = validate(input)?;
    let found = sqlx::query_as::<_, Credentials>(SELECT_CREDENTIALS)
        .bind(&email)
        .fetch_optional(&app.pool)
        .instrument(app.db_span("SELECT", SELECT_CREDENTIALS))
        .await?
        .ok_or(ApiError::InvalidCredentials)?;
    let valid = app
        .passwords
        .verify(password, found.password_hash)
        .await
        .map_err(ApiError::Internal)?;
    if !valid {
        return Err(ApiError::InvalidCredentials);
    }
    let cookie = app
        .tokens
        .login_cookie(&found.user.id)
        .map_err(ApiError::Internal)?;
    tracing::info!(user.id = %found.user.id, "user logged in");
    Ok((
        [(header::SET_COOKIE, cookie)],
        Json(Envelope {
            data: found.user,
            message: "login",
        }),
    )
        .into_response())
}

/// Validates, hashes and inserts, as the users API's `insert`.
async fn insert(app: &App, input: CredentialsInput) -> Result<User, ApiError> {
    let (email, password) = validate(input)?;
    let password_hash = app
        .passwords
        .hash(password)
        .await
        .map_err(ApiError::Internal)?;
    let now = now();
    let user = User {
        id: uuid::Uuid::now_v7().to_string(),
        email,
        created_at: now.clone(),
        updated_at: now,
    };
    sqlx::query(INSERT_USER)
        .bind(&user.id)
        .bind(&user.email)
        .bind(&password_hash)
        .bind(&user.created_at)
        .bind(&user.updated_at)
        .execute(&app.pool)
        .instrument(app.db_span("INSERT", INSERT_USER))
        .await?;
    Ok(user)
}

/// A lighter check than the users API's (`local@domain.tld`, 8 to 128 characters): both cost
/// next to nothing beside the hash.
fn validate(input: CredentialsInput) -> Result<(String, String), ApiError> {
    let email = input.email.trim().to_ascii_lowercase();
    let valid_email = email.len() <= 254
        && email
            .rsplit_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'));
    if !valid_email {
        return Err(ApiError::Invalid("email must be a valid email address"));
    }
    if !(8..=128).contains(&input.password.chars().count()) {
        return Err(ApiError::Invalid("password must have 8 to 128 characters"));
    }
    Ok((email, input.password))
}

/// `201 Created` with `Location` and the envelope.
fn created(user: User, message: &'static str) -> axum::response::Response {
    let location = format!("/users/{}", user.id);
    (
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(Envelope {
            data: user,
            message,
        }),
    )
        .into_response()
}

/// UTC RFC 3339 with milliseconds, as the users API stores it.
fn now() -> String {
    let t = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}
