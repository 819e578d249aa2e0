//! `/users` and `/users/{id}`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::session::user_input;
use super::{Envelope, Pagination, UserPage, created};
use crate::auth::{Session, clear_cookie};
use crate::error::{ApiError, ErrorBody};
use crate::input::{CredentialsInput, JsonBody, Page, PageQuery};
use crate::state::AppState;
use crate::store::User;

/// Lists users, oldest first, a page at a time.
#[utoipa::path(
    get,
    path = "/users",
    tag = "users",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of users", body = UserPage),
        (status = 400, description = "page or per_page not a whole number, or out of bounds", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub(super) async fn list(
    State(state): State<AppState>,
    page: Page,
) -> Result<Json<UserPage>, ApiError> {
    let (users, total) = state.store.list(page.size, page.offset()).await?;
    Ok(Json(UserPage {
        data: users,
        message: "findAll",
        pagination: Pagination {
            page: page.number,
            per_page: page.size,
            total,
        },
    }))
}

/// One user.
#[utoipa::path(
    get,
    path = "/users/{id}",
    tag = "users",
    params(("id" = String, Path, format = "uuid", description = "The user's id")),
    responses(
        (status = 200, description = "The user", body = Envelope<User>),
        (status = 404, description = "No such user", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub(super) async fn get_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Envelope<User>>, ApiError> {
    let id = user_id(&id)?;
    let user = state
        .store
        .get(&id)
        .await?
        .ok_or(ApiError::NotFound("user"))?;
    Ok(Json(Envelope {
        data: user,
        message: "findOne",
    }))
}

/// Creates a user (like sign-up, by someone logged in).
#[utoipa::path(
    post,
    path = "/users",
    tag = "users",
    request_body = CredentialsInput,
    security(("session" = [])),
    responses(
        (status = 201, description = "Created", body = Envelope<User>,
            headers(("Location" = String, description = "/users/{id}"))),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "No valid login cookie", body = ErrorBody),
        (status = 409, description = "The email is taken", body = ErrorBody),
        (status = 413, description = "Body over 16 KiB", body = ErrorBody),
        (status = 415, description = "Body not JSON", body = ErrorBody),
        (status = 422, description = "Wrong shape, invalid email or password length", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub(super) async fn create(
    State(state): State<AppState>,
    session: Session,
    JsonBody(input): JsonBody<CredentialsInput>,
) -> Result<Response, ApiError> {
    let user = insert(&state, input).await?;
    tracing::info!(user.id = %user.id, by = %session.user_id, "user created");
    Ok(created(user, "created"))
}

/// Replaces the email and password of one's own account.
#[utoipa::path(
    put,
    path = "/users/{id}",
    tag = "users",
    params(("id" = String, Path, format = "uuid", description = "The user's id")),
    request_body = CredentialsInput,
    security(("session" = [])),
    responses(
        (status = 200, description = "Updated", body = Envelope<User>),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "No valid login cookie", body = ErrorBody),
        (status = 403, description = "Someone else's account", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
        (status = 409, description = "The email is taken", body = ErrorBody),
        (status = 413, description = "Body over 16 KiB", body = ErrorBody),
        (status = 415, description = "Body not JSON", body = ErrorBody),
        (status = 422, description = "Wrong shape, invalid email or password length", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub(super) async fn replace(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    JsonBody(input): JsonBody<CredentialsInput>,
) -> Result<Json<Envelope<User>>, ApiError> {
    let id = own_account(&state, &session, &id).await?;
    let input = user_input(&state, input).await?;
    let user = state
        .store
        .update(&id, &input)
        .await?
        .ok_or(ApiError::NotFound("user"))?;
    tracing::info!(user.id = %user.id, "user updated");
    Ok(Json(Envelope {
        data: user,
        message: "updated",
    }))
}

/// Deletes one's own account (and logs out).
#[utoipa::path(
    delete,
    path = "/users/{id}",
    tag = "users",
    params(("id" = String, Path, format = "uuid", description = "The user's id")),
    security(("session" = [])),
    responses(
        (status = 200, description = "Deleted; the login cookie is cleared", body = Envelope<User>),
        (status = 401, description = "No valid login cookie", body = ErrorBody),
        (status = 403, description = "Someone else's account", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub(super) async fn remove(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = own_account(&state, &session, &id).await?;
    let user = state
        .store
        .delete(&id)
        .await?
        .ok_or(ApiError::NotFound("user"))?;
    tracing::info!(user.id = %user.id, "user deleted");
    Ok((
        [(header::SET_COOKIE, clear_cookie())],
        Json(Envelope {
            data: user,
            message: "deleted",
        }),
    )
        .into_response())
}

/// Validates, hashes and inserts.
pub(super) async fn insert(state: &AppState, input: CredentialsInput) -> Result<User, ApiError> {
    let input = user_input(state, input).await?;
    Ok(state.store.create(&input).await?)
}

/// The canonical form of a path id; 404 for anything that is not a UUID (no such user can
/// exist, and odd bytes never reach the database).
fn user_id(raw: &str) -> Result<String, ApiError> {
    uuid::Uuid::try_parse(raw)
        .map(|id| id.hyphenated().to_string())
        .map_err(|_| ApiError::NotFound("user"))
}

/// The id, if it is the logged-in user's own: 404 when no such user exists, 403 when it is
/// someone else's.
async fn own_account(state: &AppState, session: &Session, raw: &str) -> Result<String, ApiError> {
    let id = user_id(raw)?;
    if id == session.user_id {
        return Ok(id);
    }
    match state.store.get(&id).await? {
        Some(_) => Err(ApiError::Forbidden),
        None => Err(ApiError::NotFound("user")),
    }
}
