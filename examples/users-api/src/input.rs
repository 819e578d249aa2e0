//! Request bodies and query strings: parsing with precise statuses, and validation.
//!
//! | problem | status |
//! |---|---|
//! | body not `application/json` | 415 |
//! | body over [`BODY_LIMIT`] | 413 |
//! | body not JSON, or not received whole | 400 |
//! | JSON of the wrong shape (missing field, wrong type) | 422 |
//! | invalid email, password too short or too long | 422 |
//! | query string not understood, page size out of bounds | 400 |
//!
//! Messages describe what the route expects and never echo the request.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::{header, request::Parts};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;

/// The largest request body accepted: 16 KiB (the bodies are an email and a password).
pub(crate) const BODY_LIMIT: usize = 16 * 1024;
/// Password length bounds, in characters. The upper bound keeps hashing cost bounded.
pub(crate) const PASSWORD_MIN: usize = 8;
/// See [`PASSWORD_MIN`].
pub(crate) const PASSWORD_MAX: usize = 128;
/// The longest email address (RFC 5321 path limit).
pub(crate) const EMAIL_MAX: usize = 254;
/// The default page size of `GET /users`.
pub(crate) const PER_PAGE_DEFAULT: u32 = 20;
/// The largest page size of `GET /users`.
pub(crate) const PER_PAGE_MAX: u32 = 100;
/// The largest page number (keeps `OFFSET` small enough for any database).
pub(crate) const PAGE_MAX: u32 = 1_000_000;

/// A body type: what the 422 message says it must look like.
pub(crate) trait Shape {
    /// E.g. `{"email": string, "password": string}`.
    const SHAPE: &'static str;
}

/// A JSON body, with the statuses of the table above.
#[derive(Debug)]
pub(crate) struct JsonBody<T>(pub(crate) T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Shape,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(';').next())
            .map(|mime| mime.trim().to_ascii_lowercase())
            .is_some_and(|mime| mime == "application/json" || mime.ends_with("+json"));
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        // `DefaultBodyLimit` (see routes/mod.rs) caps what is read.
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge
                } else {
                    ApiError::UnreadableBody
                }
            })?;
        let value: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|_| ApiError::MalformedJson)?;
        let wrong_shape = || ApiError::Invalid(format!("the body must be {}", T::SHAPE));
        // Only an object: serde would also take a struct from an array of its fields.
        if !value.is_object() {
            return Err(wrong_shape());
        }
        T::deserialize(value)
            .map(JsonBody)
            .map_err(|_| wrong_shape())
    }
}

/// Email and password: the body of sign-up, login, and user creation and replacement.
#[derive(Deserialize, ToSchema)]
pub(crate) struct CredentialsInput {
    /// An email address; stored trimmed and lower-cased, unique.
    #[schema(format = Email, max_length = 254, example = "ada@example.com")]
    pub(crate) email: String,
    /// The password, 8 to 128 characters; stored only as an argon2id hash.
    #[schema(min_length = 8, max_length = 128, example = "correct horse battery")]
    pub(crate) password: String,
}

impl std::fmt::Debug for CredentialsInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialsInput")
            .field("email", &self.email)
            .field("password", &"[REDACTED]")
            .finish()
    }
}

impl Shape for CredentialsInput {
    const SHAPE: &'static str = r#"{"email": string, "password": string}"#;
}

impl CredentialsInput {
    /// The normalized email and the password, or a 422 saying which is wrong.
    pub(crate) fn validate(self) -> Result<(String, String), ApiError> {
        let email = normalize_email(&self.email).ok_or_else(|| {
            ApiError::Invalid(format!(
                "email must be a valid email address of at most {EMAIL_MAX} characters"
            ))
        })?;
        let length = self.password.chars().count();
        if !(PASSWORD_MIN..=PASSWORD_MAX).contains(&length) {
            return Err(ApiError::Invalid(format!(
                "password must have {PASSWORD_MIN} to {PASSWORD_MAX} characters"
            )));
        }
        Ok((email, self.password))
    }
}

/// Checks an address (`local@domain`, RFC 5322 dot-atom local part, DNS domain with at least
/// two labels) and returns it trimmed and lower-cased.
pub(crate) fn normalize_email(raw: &str) -> Option<String> {
    const ATEXT_SPECIALS: &str = "!#$%&'*+-/=?^_`{|}~";
    let email = raw.trim().to_ascii_lowercase();
    if email.len() > EMAIL_MAX {
        return None;
    }
    let (local, domain) = email.rsplit_once('@')?;
    let local_ok = (1..=64).contains(&local.len())
        && local.split('.').all(|atom| {
            !atom.is_empty()
                && atom
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ATEXT_SPECIALS.contains(c))
        });
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = domain.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|label| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        && labels
            .last()
            .is_some_and(|tld| !tld.chars().all(|c| c.is_ascii_digit()));
    (local_ok && domain_ok).then_some(email)
}

/// `GET /users` paging: `?page=1&per_page=20`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct PageQuery {
    /// The page, from 1.
    #[param(minimum = 1, maximum = 1_000_000, default = 1)]
    page: Option<u32>,
    /// Users per page, 1 to 100.
    #[param(minimum = 1, maximum = 100, default = 20)]
    per_page: Option<u32>,
}

/// A validated page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Page {
    /// From 1.
    pub(crate) number: u32,
    /// 1 to [`PER_PAGE_MAX`].
    pub(crate) size: u32,
}

impl Page {
    /// Rows to skip.
    pub(crate) fn offset(self) -> u64 {
        u64::from(self.number - 1) * u64::from(self.size)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Page {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Query(query) = Query::<PageQuery>::try_from_uri(&parts.uri).map_err(|_| {
            ApiError::BadQuery("page and per_page must be whole numbers (e.g. ?page=2&per_page=20)")
        })?;
        let number = query.page.unwrap_or(1);
        let size = query.per_page.unwrap_or(PER_PAGE_DEFAULT);
        if !(1..=PAGE_MAX).contains(&number) {
            return Err(ApiError::BadQuery("page must be between 1 and 1000000"));
        }
        if !(1..=PER_PAGE_MAX).contains(&size) {
            return Err(ApiError::BadQuery("per_page must be between 1 and 100"));
        }
        Ok(Page { number, size })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        for ok in [
            "ada@example.com",
            "  Ada.Lovelace+tag@Example.CO.uk ",
            "o'hara@xn--bcher-kva.example",
            "!#$%&'*+-/=?^_`{|}~@a.io",
            "a@b-c.d2",
        ] {
            assert!(normalize_email(ok).is_some(), "{ok}");
        }
        assert_eq!(
            normalize_email(" Ada@Example.com ").as_deref(),
            Some("ada@example.com")
        );
        let long_local = format!("{}@example.com", "a".repeat(65));
        let long = format!("{}@{}.com", "a".repeat(60), "b".repeat(200));
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a..b@example.com",
            ".a@example.com",
            "a.@example.com",
            "a b@example.com",
            "a@-example.com",
            "a@example-.com",
            "a@exa_mple.com",
            "a@example.123",
            "a@@example.com",
            "a\0@example.com",
            "é@example.com",
            &long_local,
            &long,
        ] {
            assert!(normalize_email(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn password_bounds_count_characters() {
        let creds = |p: &str| CredentialsInput {
            email: "ada@example.com".into(),
            password: p.into(),
        };
        assert!(creds("1234567").validate().is_err());
        assert!(creds("12345678").validate().is_ok());
        assert!(creds(&"é".repeat(128)).validate().is_ok());
        assert!(creds(&"é".repeat(129)).validate().is_err());
        assert!(!format!("{:?}", creds("hunter22")).contains("hunter22"));
    }

    #[test]
    fn pages() {
        let page = |uri: &str| {
            let (mut parts, ()) = axum::http::Request::get(uri).body(()).unwrap().into_parts();
            block_on(Page::from_request_parts(&mut parts, &()))
        };
        assert_eq!(
            page("/users").unwrap(),
            Page {
                number: 1,
                size: 20
            }
        );
        assert_eq!(page("/users?page=3&per_page=100").unwrap().offset(), 200);
        for bad in [
            "?per_page=0",
            "?per_page=101",
            "?page=0",
            "?page=-1",
            "?page=x",
            "?page=1.5",
        ] {
            assert!(page(&format!("/users{bad}")).is_err(), "{bad}");
        }
    }

    /// Polls a future that never waits (the extractor does no I/O).
    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }
}
