//! Error responses: `{"message": "..."}` with a status, and never an internal detail.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::store::StoreError;

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ErrorBody {
    /// What went wrong, for a human; never an internal detail.
    #[schema(example = "user not found")]
    pub(crate) message: String,
}

/// Why a request failed. The `Display` text is what the client reads.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    /// The body is not JSON (400).
    #[error("malformed JSON body")]
    MalformedJson,
    /// The body could not be read (the client went away, a broken chunked encoding) (400).
    #[error("the request body could not be read")]
    UnreadableBody,
    /// The query string is not understood or out of range (400).
    #[error("{0}")]
    BadQuery(&'static str),
    /// The body is JSON but not what the route takes, or a value is invalid (422).
    #[error("{0}")]
    Invalid(String),
    /// The body is not `application/json` (415).
    #[error("the request body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    /// The body is larger than the limit (413).
    #[error("the request body is too large")]
    PayloadTooLarge,
    /// No valid login cookie (401).
    #[error("login required")]
    Unauthorized,
    /// Unknown email or wrong password: the two are not told apart (401).
    #[error("invalid email or password")]
    InvalidCredentials,
    /// The account is someone else's (403).
    #[error("you can only change your own account")]
    Forbidden,
    /// No such resource (404).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// No such method on this path (405).
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The email is taken (409).
    #[error("a user with this email already exists")]
    DuplicateEmail,
    /// The database is down or overloaded (503).
    #[error("the service is temporarily unavailable, try again")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Anything else (500); the cause is logged, not returned.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    /// Wraps an unexpected error (logged with the request's trace id, answered 500).
    pub(crate) fn internal(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        ApiError::Internal(error.into())
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::MalformedJson | ApiError::UnreadableBody | ApiError::BadQuery(_) => {
                StatusCode::BAD_REQUEST
            }
            ApiError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unauthorized | ApiError::InvalidCredentials => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::DuplicateEmail => StatusCode::CONFLICT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::DuplicateEmail => ApiError::DuplicateEmail,
            StoreError::Unavailable(e) => ApiError::Unavailable(e.into()),
            StoreError::Database(e) => ApiError::internal(e),
        }
    }
}

/// `a: b: c` for a log line.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            ApiError::Internal(cause) => {
                tracing::error!(error = %chain(cause.as_ref()), "request failed");
            }
            ApiError::Unavailable(cause) => {
                tracing::warn!(error = %chain(cause.as_ref()), "database unavailable");
            }
            _ => {}
        }
        let mut response = (
            status,
            Json(ErrorBody {
                message: self.to_string(),
            }),
        )
            .into_response();
        if matches!(self, ApiError::Unavailable(_)) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn internal_errors_answer_without_their_cause() {
        let response =
            ApiError::internal(std::io::Error::other("relation \"users\" does not exist"))
                .into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        assert_eq!(&body[..], br#"{"message":"internal error"}"#);
    }
}
