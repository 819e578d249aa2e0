//! Passwords (argon2id, off the async workers) and login sessions (a JWT in a cookie).
//!
//! # Password hashing parameters
//!
//! Argon2id (RFC 9106), version 0x13, **m = 7 MiB, t = 5, p = 1**, 16-byte random salt,
//! 32-byte output, stored as a PHC string (`$argon2id$v=19$m=7168,t=5,p=1$…`). This is one of
//! the equivalent settings of OWASP's Password Storage Cheat Sheet (m=19 MiB/t=2,
//! m=12 MiB/t=3, m=9 MiB/t=4, m=7 MiB/t=5: the same defence, traded between memory and time);
//! the lowest memory cost keeps the whole service under 50 MiB under load (see
//! `benches/README.md`). Verification reads the parameters
//! from the stored hash, so they can be raised later without invalidating existing passwords.
//!
//! Hashing takes tens of milliseconds of CPU, so it runs on Tokio's blocking pool
//! (`spawn_blocking`), never on the async workers, and at most one hash per CPU runs at a time
//! (a semaphore): a burst of sign-ups queues instead of multiplying memory. Each running hash
//! uses one of at most that many 7 MiB buffers, allocated once and reused (and wiped after
//! each use), so the memory the hashing needs is fixed: CPUs × 7 MiB. A hash holds its permit
//! until it has finished, not until its request is over: a request cancelled while its hash
//! runs (the client went away) does not let another hash, and another buffer, start beside it.
//!
//! # Sessions
//!
//! Login sets `__Host-session=<JWT>; Path=/; Max-Age=3600; HttpOnly; Secure; SameSite=Strict`:
//! not readable by scripts, sent only over HTTPS (browsers treat `localhost` as secure) and only
//! by this site's own pages; the `__Host-` prefix forbids a `Domain` attribute, so a sibling
//! subdomain cannot plant one. The JWT is HS256-signed with `JWT_SECRET` and says `sub` (the
//! user id), `iat` and `exp` (one hour). Logout clears the cookie; like any stateless token it
//! stays valid until it expires, which is why it is short-lived.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use axum::extract::FromRequestParts;
use axum::http::{HeaderMap, HeaderValue, header, request::Parts};
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::error::ApiError;
use crate::state::AppState;

/// Argon2 memory cost in KiB (7 MiB).
pub(crate) const ARGON2_M_COST: u32 = 7 * 1024;
/// Argon2 passes over memory.
pub(crate) const ARGON2_T_COST: u32 = 5;
/// Argon2 lanes.
pub(crate) const ARGON2_P_COST: u32 = 1;

/// The login cookie's name.
pub(crate) const COOKIE_NAME: &str = "__Host-session";
/// How long a login lasts.
pub(crate) const SESSION_TTL: Duration = Duration::from_secs(3600);
/// The shortest `JWT_SECRET` accepted: 32 bytes, the size of the HS256 hash.
pub(crate) const MIN_KEY_BYTES: usize = 32;

/// Hashes and verifies passwords on the blocking pool, a bounded number at a time, each in a
/// reused block of argon2 memory.
#[derive(Clone)]
pub(crate) struct Passwords(Arc<Hasher>);

struct Hasher {
    params: Params,
    /// One permit per concurrent hash, held by the hash itself (on the blocking pool): there
    /// are never more memory buffers than permits.
    permits: Arc<Semaphore>,
    /// Argon2 working memory (`m` KiB each), allocated on first use and reused: allocating and
    /// freeing megabytes per hash leaves freed memory stranded in the allocator's per-thread
    /// arenas of the blocking pool, and the process would grow to hundreds of MiB under load.
    buffers: Mutex<Vec<Vec<Block>>>,
    /// How many buffers were ever allocated.
    allocated: AtomicUsize,
    /// A hash verified when the email is unknown, so that a login for an unknown email takes
    /// as long as one with a wrong password (no user enumeration by timing). Made on first use.
    decoy: OnceLock<String>,
}

impl std::fmt::Debug for Passwords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Passwords")
            .field("m_cost_kib", &ARGON2_M_COST)
            .field("t_cost", &ARGON2_T_COST)
            .field("p_cost", &ARGON2_P_COST)
            .field("available_permits", &self.0.permits.available_permits())
            .field("buffers", &self.0.allocated.load(Ordering::Relaxed))
            .finish()
    }
}

impl Passwords {
    /// Argon2id with the parameters above; one concurrent hash per available CPU.
    pub(crate) fn new() -> Self {
        Self::with_concurrency(std::thread::available_parallelism().map_or(1, usize::from))
    }

    /// Argon2id with the parameters above; at most `hashes` hashes at a time.
    fn with_concurrency(hashes: usize) -> Self {
        let params = Params::new(ARGON2_M_COST, ARGON2_T_COST, ARGON2_P_COST, None)
            .expect("the argon2 parameters are constants within argon2's bounds");
        Self(Arc::new(Hasher {
            params,
            permits: Arc::new(Semaphore::new(hashes)),
            buffers: Mutex::new(Vec::new()),
            allocated: AtomicUsize::new(0),
            decoy: OnceLock::new(),
        }))
    }

    /// Hashes `password` into a PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`).
    pub(crate) async fn hash(&self, password: String) -> Result<String, ApiError> {
        self.blocking("argon2id hash", move |hasher, memory| {
            hasher
                .hash(memory, password.as_bytes())
                .map_err(|e| ApiError::internal(e.to_string()))
        })
        .await?
    }

    /// Whether `password` matches `hash`. With no hash (unknown email), a decoy is verified so
    /// the answer takes as long, and is `false`.
    pub(crate) async fn verify(
        &self,
        password: String,
        hash: Option<String>,
    ) -> Result<bool, ApiError> {
        self.blocking("argon2id verify", move |hasher, memory| {
            let known = hash.is_some();
            let hash = match hash {
                Some(hash) => hash,
                None => hasher
                    .decoy
                    .get_or_init(|| {
                        hasher
                            .hash(memory, b"decoy password, never valid")
                            .unwrap_or_default()
                    })
                    .clone(),
            };
            let matches = hasher.verify(memory, password.as_bytes(), &hash);
            known && matches
        })
        .await
    }

    /// Runs `work` on the blocking pool inside an INTERNAL span named `name`, once a permit
    /// (and so a memory buffer) is free.
    async fn blocking<T: Send + 'static>(
        &self,
        name: &'static str,
        work: impl FnOnce(&Hasher, &mut [Block]) -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let permit = Arc::clone(&self.0.permits)
            .acquire_owned()
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let span = tracing::info_span!(
            "password",
            otel.name = name,
            argon2.m_cost_kib = ARGON2_M_COST,
            argon2.t_cost = ARGON2_T_COST,
            argon2.p_cost = ARGON2_P_COST,
        );
        let hasher = Arc::clone(&self.0);
        tokio::task::spawn_blocking(move || {
            // Released when the hash is done, even if the request waiting for it is gone.
            let _permit = permit;
            let mut memory = hasher.take_buffer();
            let result = span.in_scope(|| work(&hasher, &mut memory));
            // Nothing derived from the password stays in memory between hashes.
            memory.fill(Block::new());
            hasher.put_buffer(memory);
            result
        })
        .await
        .map_err(ApiError::internal)
    }
}

impl Hasher {
    fn take_buffer(&self) -> Vec<Block> {
        let reused = self
            .buffers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        reused.unwrap_or_else(|| {
            self.allocated.fetch_add(1, Ordering::Relaxed);
            vec![Block::new(); self.params.block_count()]
        })
    }

    fn put_buffer(&self, buffer: Vec<Block>) {
        self.buffers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(buffer);
    }

    fn hash(&self, memory: &mut [Block], password: &[u8]) -> Result<String, String> {
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt).map_err(|e| e.to_string())?;
        let mut output = [0u8; 32];
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
            .hash_password_into_with_memory(password, &salt, &mut output, memory)
            .map_err(|e| e.to_string())?;
        let phc = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&self.params).map_err(|e| e.to_string())?,
            salt: Some(Salt::new(&salt).map_err(|e| e.to_string())?),
            hash: Some(Output::new(&output).map_err(|e| e.to_string())?),
        };
        Ok(phc.to_string())
    }

    /// Recomputes the hash with the parameters stored in it (so they can change over time)
    /// and compares in constant time.
    fn verify(&self, memory: &mut [Block], password: &[u8], stored: &str) -> bool {
        let Ok(phc) = PasswordHash::new(stored) else {
            return false;
        };
        let (Some(salt), Some(expected)) = (&phc.salt, &phc.hash) else {
            return false;
        };
        let (Ok(algorithm), Ok(params)) = (
            Algorithm::try_from(phc.algorithm.as_str()),
            Params::try_from(&phc),
        ) else {
            return false;
        };
        let version = match phc.version.map(Version::try_from).transpose() {
            Ok(version) => version.unwrap_or_default(),
            Err(_) => return false,
        };
        let argon2 = Argon2::new(algorithm, version, params.clone());
        let mut output = vec![0u8; expected.len()];
        let computed = match memory.get_mut(..params.block_count()) {
            Some(memory) => {
                argon2.hash_password_into_with_memory(password, salt, &mut output, memory)
            }
            // A hash made with more memory than the current setting: allocate for it.
            None => argon2.hash_password_into(password, salt, &mut output),
        };
        computed.is_ok() && Output::new(&output).is_ok_and(|output| output == *expected)
    }
}

/// The JWT's claims.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    /// The user id.
    sub: String,
    /// Issued at (seconds since the epoch).
    iat: u64,
    /// Expires at (seconds since the epoch).
    exp: u64,
}

/// Signs and checks login tokens with the HS256 key from `JWT_SECRET`.
#[derive(Clone)]
pub(crate) struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokens { key: [REDACTED] }")
    }
}

/// Why the signing key could not be set up.
#[derive(Debug, thiserror::Error)]
pub(crate) enum KeyError {
    /// No key in the environment, outside local mode.
    #[error(
        "JWT_SECRET is not set: give the service a signing key of at least {MIN_KEY_BYTES} bytes, \
         e.g. APPRUNNER_SECRETS=JWT_SECRET=<secret name or ARN> to read it from Secrets Manager \
         (only local SQLite mode makes up a key by itself)"
    )]
    Missing,
    /// The key is too short to be safe.
    #[error("JWT_SECRET is too short: use at least {MIN_KEY_BYTES} bytes (it has {0})")]
    TooShort(usize),
    /// The operating system's random source failed.
    #[error("cannot generate a signing key: {0}")]
    Random(String),
}

impl Tokens {
    /// The key from `JWT_SECRET`; when it is unset and `may_generate` (local mode), a random
    /// key for this run, which is logged as such (never the key itself).
    pub(crate) fn from_env(may_generate: bool) -> Result<Self, KeyError> {
        match std::env::var("JWT_SECRET") {
            Ok(key) if !key.is_empty() => {
                if key.len() < MIN_KEY_BYTES {
                    return Err(KeyError::TooShort(key.len()));
                }
                Ok(Self::new(key.as_bytes()))
            }
            _ if may_generate => {
                let mut key = [0u8; 32];
                getrandom::fill(&mut key).map_err(|e| KeyError::Random(e.to_string()))?;
                tracing::info!(
                    "JWT_SECRET is not set: signing logins with a random key made for this run \
                     (logins end when the process restarts)"
                );
                Ok(Self::new(&key))
            }
            _ => Err(KeyError::Missing),
        }
    }

    fn new(key: &[u8]) -> Self {
        let mut validation = Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = 5;
        Self {
            encoding: EncodingKey::from_secret(key),
            decoding: DecodingKey::from_secret(key),
            validation,
        }
    }

    /// A token for `user_id`, valid for [`SESSION_TTL`].
    pub(crate) fn issue(&self, user_id: &str) -> Result<String, ApiError> {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            sub: user_id.to_owned(),
            iat: now,
            exp: now + SESSION_TTL.as_secs(),
        };
        jsonwebtoken::encode(&Header::default(), &claims, &self.encoding)
            .map_err(ApiError::internal)
    }

    /// The user id of a valid, unexpired token.
    pub(crate) fn check(&self, token: &str) -> Option<String> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .ok()
            .map(|data| data.claims.sub)
    }
}

/// The `Set-Cookie` value that logs in with `token`.
pub(crate) fn session_cookie(token: &str) -> HeaderValue {
    let value = format!(
        "{COOKIE_NAME}={token}; Path=/; Max-Age={}; HttpOnly; Secure; SameSite=Strict",
        SESSION_TTL.as_secs()
    );
    HeaderValue::from_str(&value).unwrap_or_else(|_| clear_cookie())
}

/// The `Set-Cookie` value that logs out.
pub(crate) fn clear_cookie() -> HeaderValue {
    HeaderValue::from_static(
        "__Host-session=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Strict",
    )
}

/// The login cookie's value, from any `Cookie` header.
fn session_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.trim())
}

/// The logged-in user: an extractor that answers 401 without a valid login cookie.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// The user id from the token.
    pub(crate) user_id: String,
}

impl FromRequestParts<AppState> for Session {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = session_token(&parts.headers).ok_or(ApiError::Unauthorized)?;
        let user_id = state.tokens.check(token).ok_or(ApiError::Unauthorized)?;
        Ok(Session { user_id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_carry_the_documented_parameters() {
        let passwords = Passwords::new();
        let hash = passwords.hash("correct horse".to_owned()).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=7168,t=5,p=1$"), "{hash}");
        let ok = |p: &str, h: Option<&str>| passwords.verify(p.to_owned(), h.map(str::to_owned));
        assert!(ok("correct horse", Some(&hash)).await.unwrap());
        assert!(!ok("wrong horse", Some(&hash)).await.unwrap());
        assert!(!ok("correct horse", None).await.unwrap());
        assert!(!ok("correct horse", Some("not a hash")).await.unwrap());

        // Hashes made with other parameters still verify: bigger ones (argon2's defaults,
        // 19 MiB) outside the reused buffers, smaller ones inside.
        for params in [Params::default(), Params::new(64, 1, 1, None).unwrap()] {
            use argon2::PasswordHasher as _;
            let other = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
                .hash_password(b"old password")
                .unwrap()
                .to_string();
            assert!(ok("old password", Some(&other)).await.unwrap(), "{other}");
            assert!(!ok("new password", Some(&other)).await.unwrap(), "{other}");
        }
        assert!(
            passwords.0.buffers.lock().unwrap().len() <= passwords.0.permits.available_permits()
        );
    }

    #[tokio::test]
    async fn a_cancelled_request_keeps_its_permit_until_its_hash_is_done() {
        // One hash at a time. The first request's work holds the buffer until the test lets it
        // go; the request is cancelled meanwhile (its client went away). The next hash must
        // wait for that work and reuse its buffer, not run beside it in a second 7 MiB one.
        let passwords = Passwords::with_concurrency(1);
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let first = tokio::spawn({
            let passwords = passwords.clone();
            async move {
                passwords
                    .blocking("held", move |_, _| {
                        let _ = started_tx.send(());
                        let _ = release_rx.recv();
                    })
                    .await
            }
        });
        started_rx.await.unwrap();
        first.abort();
        assert!(first.await.unwrap_err().is_cancelled());

        let second = tokio::spawn({
            let passwords = passwords.clone();
            async move { passwords.hash("second password".to_owned()).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let buffers = || passwords.0.allocated.load(Ordering::Relaxed);
        assert_eq!(
            buffers(),
            1,
            "the next hash started beside the cancelled one"
        );
        assert!(!second.is_finished());
        release_tx.send(()).unwrap();
        let hash = second.await.unwrap().unwrap();
        assert!(
            passwords
                .verify("second password".to_owned(), Some(hash))
                .await
                .unwrap()
        );
        assert_eq!(buffers(), 1, "one buffer, reused");
    }

    #[test]
    fn tokens_round_trip_and_reject_tampering() {
        let tokens = Tokens::new(&[7u8; 32]);
        let token = tokens.issue("user-1").unwrap();
        assert_eq!(tokens.check(&token).as_deref(), Some("user-1"));
        let other = Tokens::new(&[8u8; 32]);
        assert_eq!(other.check(&token), None);
        assert_eq!(tokens.check("not.a.token"), None);
        assert!(!format!("{tokens:?}").contains('7'));
    }

    #[test]
    fn the_cookie_is_http_only_secure_and_strict() {
        let cookie = session_cookie("abc");
        let cookie = cookie.to_str().unwrap();
        for part in [
            "__Host-session=abc",
            "HttpOnly",
            "Secure",
            "SameSite=Strict",
            "Path=/",
        ] {
            assert!(cookie.split("; ").any(|p| p == part), "{part} in {cookie}");
        }
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; __Host-session=tok ; b=2"),
        );
        assert_eq!(session_token(&headers), Some("tok"));
    }
}
