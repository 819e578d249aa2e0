//! The HTTP API: routes, response envelopes and the OpenAPI document.
//!
//! | route | auth | answer |
//! |---|---|---|
//! | `POST /signup` | | 201 `{data: user, message: "signup"}` |
//! | `POST /login` | | 200 `{data: user, message: "login"}` + login cookie |
//! | `POST /logout` | | 200 `{data: null, message: "logout"}`, cookie cleared |
//! | `GET /users?page&per_page` | | 200 `{data: [user], message: "findAll", pagination}` |
//! | `GET /users/{id}` | | 200 `{data: user, message: "findOne"}` |
//! | `POST /users` | cookie | 201 `{data: user, message: "created"}` |
//! | `PUT /users/{id}` | cookie, own account | 200 `{data: user, message: "updated"}` |
//! | `DELETE /users/{id}` | cookie, own account | 200 `{data: user, message: "deleted"}` |
//! | `GET /api-docs` | | Swagger UI (embedded in the binary), no span (see [`docs`]) |
//! | `GET /api-docs/openapi.json` | | the OpenAPI 3.1 document, no span |
//! | `GET /healthz` | | 200 `{"status":"ok"}`, no database, no span (served by the kit) |
//!
//! Requests get a log line only when they fail (5xx), are slow or are rejected (the kit's
//! [`AccessLog`](apprunner::http::AccessLog); `APPRUNNER_ACCESS_LOG=all` for every request):
//! each request's span already holds its method, route, status and duration.
//!
//! Errors are `{"message": …}` (see [`ApiError`]).

mod session;
mod users;

use axum::extract::DefaultBodyLimit;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_swagger_ui::SwaggerUi;

use crate::auth::COOKIE_NAME;
use crate::error::{ApiError, ErrorBody};
use crate::input::BODY_LIMIT;
use crate::state::AppState;
use crate::store::User;

/// Every successful answer: `{"data": …, "message": …}` (the sample's shape).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Envelope<T> {
    /// The payload.
    pub(crate) data: T,
    /// What was done: `signup`, `login`, `logout`, `created`, `findAll`, `findOne`, `updated`,
    /// `deleted`.
    pub(crate) message: &'static str,
}

/// `GET /users`: a page of users and where it is.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UserPage {
    /// The users on this page, oldest first.
    pub(crate) data: Vec<User>,
    /// Always `findAll`.
    pub(crate) message: &'static str,
    /// Which page this is.
    pub(crate) pagination: Pagination,
}

/// `POST /logout`: `{"data": null, "message": "logout"}`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LoggedOut {
    /// Always `null`.
    #[schema(schema_with = null_schema)]
    pub(crate) data: (),
    /// Always `logout`.
    pub(crate) message: &'static str,
}

/// The JSON Schema of `null`.
fn null_schema() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::Null)
        .build()
}

/// Where a page is.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Pagination {
    /// The page number, from 1.
    pub(crate) page: u32,
    /// The page size asked for.
    pub(crate) per_page: u32,
    /// Users in all.
    pub(crate) total: u64,
}

/// The OpenAPI document, generated from the handlers' `#[utoipa::path]` attributes and the
/// types' `ToSchema` derives, so it describes what the code does.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "users API",
        description = "The apprunner-kit example service: users and logins, traced end to end in \
                       AWS X-Ray. Successful answers are `{\"data\": …, \"message\": …}`, errors \
                       `{\"message\": …}`. A password hash is never returned."
    ),
    paths(
        session::signup,
        session::login,
        session::logout,
        users::list,
        users::get_one,
        users::create,
        users::replace,
        users::remove,
        healthz,
    ),
    components(schemas(User, ErrorBody, Pagination, Health)),
    modifiers(&SessionCookie),
    tags(
        (name = "session", description = "Sign-up, login and logout (a JWT in an HttpOnly cookie)"),
        (name = "users", description = "Users; changes need the login cookie"),
        (name = "health", description = "App Runner's health check"),
    )
)]
pub(crate) struct ApiDoc;

/// Adds the `session` security scheme: the login cookie.
struct SessionCookie;

impl Modify for SessionCookie {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                COOKIE_NAME,
                "the JWT set by POST /login (HttpOnly; Secure; SameSite=Strict; one hour)",
            ))),
        );
        openapi.info.version = env!("CARGO_PKG_VERSION").to_owned();
    }
}

/// The health check's answer.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Health {
    /// Always `ok`.
    #[schema(example = "ok")]
    status: String,
}

/// Health check.
///
/// Served by the kit's `HealthRoute` outside the tracing layer (see `main.rs`), documented here:
/// App Runner's health checks neither touch the database (which would keep Aurora from pausing)
/// nor fill X-Ray with traces.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    responses((status = 200, description = "The process serves HTTP", body = Health))
)]
#[allow(dead_code)]
async fn healthz() {}

/// The application's routes (without `/healthz` and the API docs, which the server serves
/// outside its tracing layer).
pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/signup", post(session::signup))
        .route("/login", post(session::login))
        .route("/logout", post(session::logout))
        .route("/users", get(users::list).post(users::create))
        .route(
            "/users/{id}",
            get(users::get_one)
                .put(users::replace)
                .delete(users::remove),
        )
        .fallback(|| async { ApiError::NotFound("route") })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        // Bodies are an email and a password: 16 KiB is plenty. Enforced here, inside the kit's
        // access log, so a 413 is logged like any other rejected input.
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// The API documentation: Swagger UI at `/api-docs` (which redirects to `/api-docs/`) reading
/// the OpenAPI document at `/api-docs/openapi.json`.
///
/// The UI's files are compiled into the binary (`utoipa-swagger-ui`'s `vendored` feature), so
/// nothing is fetched at build or run time. Every URL is relative and the document names no
/// server, so behind App Runner's or ECS's HTTPS front end the page, the document and "Try it
/// out" all use the origin the browser is on. Given to `Server::untraced_routes`: reading the
/// docs makes no spans.
pub(crate) fn docs() -> Router {
    SwaggerUi::new("/api-docs")
        .url("/api-docs/openapi.json", ApiDoc::openapi())
        .into()
}

/// `201 Created` with a `Location` header and the envelope.
pub(crate) fn created(user: User, message: &'static str) -> Response {
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
