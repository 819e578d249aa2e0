//! `POST /signup`, `POST /login`, `POST /logout`.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::{Envelope, LoggedOut, created};
use crate::auth::{clear_cookie, session_cookie};
use crate::error::{ApiError, ErrorBody};
use crate::input::{CredentialsInput, JsonBody};
use crate::state::AppState;
use crate::store::{User, UserInput};

/// Creates an account.
#[utoipa::path(
    post,
    path = "/signup",
    tag = "session",
    request_body = CredentialsInput,
    responses(
        (status = 201, description = "Signed up", body = Envelope<User>,
            headers(("Location" = String, description = "/users/{id}"))),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 409, description = "The email is taken", body = ErrorBody),
        (status = 413, description = "Body over 16 KiB", body = ErrorBody),
        (status = 415, description = "Body not JSON", body = ErrorBody),
        (status = 422, description = "Wrong shape, invalid email or password length", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub(super) async fn signup(
    State(state): State<AppState>,
    JsonBody(input): JsonBody<CredentialsInput>,
) -> Result<Response, ApiError> {
    let user = super::users::insert(&state, input).await?;
    tracing::info!(user.id = %user.id, "user signed up");
    if let Some(jobs) = &state.jobs {
        crate::jobs::welcome(jobs, user.id.clone());
    }
    Ok(created(user, "signup"))
}

/// Logs in: sets the `__Host-session` cookie (a JWT valid for one hour).
#[utoipa::path(
    post,
    path = "/login",
    tag = "session",
    request_body = CredentialsInput,
    responses(
        (status = 200, description = "Logged in", body = Envelope<User>,
            headers(("Set-Cookie" = String,
                description = "__Host-session=<JWT>; Path=/; Max-Age=3600; HttpOnly; Secure; SameSite=Strict"))),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Unknown email or wrong password", body = ErrorBody),
        (status = 413, description = "Body over 16 KiB", body = ErrorBody),
        (status = 415, description = "Body not JSON", body = ErrorBody),
        (status = 422, description = "Wrong shape, invalid email or password length", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub(super) async fn login(
    State(state): State<AppState>,
    JsonBody(input): JsonBody<CredentialsInput>,
) -> Result<Response, ApiError> {
    let (email, password) = input.validate()?;
    let found = state.store.credentials(&email).await?;
    let (user, hash) = match found {
        Some(c) => (Some(c.user), Some(c.password_hash)),
        None => (None, None),
    };
    // Verified even when the email is unknown (against a decoy), so both take as long.
    let valid = state.passwords.verify(password, hash).await?;
    let user = match user {
        Some(user) if valid => user,
        _ => {
            tracing::info!("login refused");
            return Err(ApiError::InvalidCredentials);
        }
    };
    let token = state.tokens.issue(&user.id)?;
    tracing::info!(user.id = %user.id, "user logged in");
    Ok((
        [(header::SET_COOKIE, session_cookie(&token))],
        Json(Envelope {
            data: user,
            message: "login",
        }),
    )
        .into_response())
}

/// Logs out: clears the cookie. Always succeeds; `data` is always `null`.
#[utoipa::path(
    post,
    path = "/logout",
    tag = "session",
    responses(
        (status = 200, description = "Logged out", body = LoggedOut,
            headers(("Set-Cookie" = String,
                description = "__Host-session=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Strict"))),
    )
)]
pub(super) async fn logout() -> Response {
    (
        [(header::SET_COOKIE, clear_cookie())],
        Json(LoggedOut {
            data: (),
            message: "logout",
        }),
    )
        .into_response()
}

/// Validates and hashes a body for storing.
pub(super) async fn user_input(
    state: &AppState,
    input: CredentialsInput,
) -> Result<UserInput, ApiError> {
    let (email, password) = input.validate()?;
    let password_hash = state.passwords.hash(password).await?;
    Ok(UserInput {
        email,
        password_hash,
    })
}
