//! Passwords and login cookies, as the users API does them (`examples/users-api/src/auth.rs`),
//! so that `POST /users` costs the same in both services: argon2id with m = 7 MiB, t = 5,
//! p = 1, 16-byte salt, 32-byte output, on the blocking pool, at most one hash per CPU at a
//! time, each in a reused 7 MiB buffer; a HS256 JWT in the `__Host-session` cookie.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use axum::http::{HeaderMap, HeaderValue, header};
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

/// Argon2 memory cost in KiB (7 MiB), passes and lanes: the users API's.
const M_COST: u32 = 7 * 1024;
const T_COST: u32 = 5;
const P_COST: u32 = 1;

/// The login cookie's name and lifetime (the users API's).
const COOKIE_NAME: &str = "__Host-session";
const SESSION_TTL: Duration = Duration::from_secs(3600);

/// Argon2id on the blocking pool, a bounded number at a time, in reused buffers.
#[derive(Clone, Debug)]
pub(crate) struct Passwords {
    params: Params,
    permits: Arc<Semaphore>,
    buffers: Arc<Mutex<Vec<Vec<Block>>>>,
}

impl Passwords {
    /// One concurrent hash per available CPU.
    pub(crate) fn new() -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        Self {
            params: Params::new(M_COST, T_COST, P_COST, None).expect("constant argon2 parameters"),
            permits: Arc::new(Semaphore::new(cpus)),
            buffers: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// A PHC string (`$argon2id$v=19$m=7168,t=5,p=1$salt$hash`), in an INTERNAL span.
    pub(crate) async fn hash(&self, password: String) -> Result<String, String> {
        self.blocking("argon2id hash", move |params, memory| {
            hash(params, memory, password.as_bytes())
        })
        .await?
    }

    /// Whether `password` matches `stored` (login only: no decoy for unknown emails here).
    pub(crate) async fn verify(&self, password: String, stored: String) -> Result<bool, String> {
        self.blocking("argon2id verify", move |_, memory| {
            verify(memory, password.as_bytes(), &stored)
        })
        .await
    }

    async fn blocking<T: Send + 'static>(
        &self,
        name: &'static str,
        work: impl FnOnce(&Params, &mut [Block]) -> T + Send + 'static,
    ) -> Result<T, String> {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|e| e.to_string())?;
        let span = tracing::info_span!(
            "password",
            otel.name = name,
            argon2.m_cost_kib = M_COST,
            argon2.t_cost = T_COST,
            argon2.p_cost = P_COST,
        );
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let reused = this
                .buffers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop();
            let mut memory =
                reused.unwrap_or_else(|| vec![Block::new(); this.params.block_count()]);
            let result = span.in_scope(|| work(&this.params, &mut memory));
            memory.fill(Block::new());
            this.buffers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(memory);
            result
        })
        .await
        .map_err(|e| e.to_string())
    }
}

fn hash(params: &Params, memory: &mut [Block], password: &[u8]) -> Result<String, String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| e.to_string())?;
    let mut output = [0u8; 32];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(password, &salt, &mut output, memory)
        .map_err(|e| e.to_string())?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(|e| e.to_string())?,
        salt: Some(Salt::new(&salt).map_err(|e| e.to_string())?),
        hash: Some(Output::new(&output).map_err(|e| e.to_string())?),
    };
    Ok(phc.to_string())
}

fn verify(memory: &mut [Block], password: &[u8], stored: &str) -> bool {
    let Ok(phc) = PasswordHash::new(stored) else {
        return false;
    };
    let (Some(salt), Some(expected), Ok(params)) = (&phc.salt, &phc.hash, Params::try_from(&phc))
    else {
        return false;
    };
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let mut output = vec![0u8; expected.len()];
    let computed = match memory.get_mut(..params.block_count()) {
        Some(memory) => argon2.hash_password_into_with_memory(password, salt, &mut output, memory),
        None => argon2.hash_password_into(password, salt, &mut output),
    };
    computed.is_ok() && Output::new(&output).is_ok_and(|output| output == *expected)
}

#[derive(Serialize, Deserialize)]
struct Claims {
    sub: String,
    iat: u64,
    exp: u64,
}

/// HS256 login tokens keyed by `JWT_SECRET`.
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

impl Tokens {
    /// The same validation as the users API: `exp` and `sub` required, 5 s leeway.
    pub(crate) fn new(key: &[u8]) -> Self {
        let mut validation = Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = 5;
        Self {
            encoding: EncodingKey::from_secret(key),
            decoding: DecodingKey::from_secret(key),
            validation,
        }
    }

    /// The `Set-Cookie` value logging `user_id` in for an hour.
    pub(crate) fn login_cookie(&self, user_id: &str) -> Result<HeaderValue, String> {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            sub: user_id.to_owned(),
            iat: now,
            exp: now + SESSION_TTL.as_secs(),
        };
        let token = jsonwebtoken::encode(&Header::default(), &claims, &self.encoding)
            .map_err(|e| e.to_string())?;
        HeaderValue::from_str(&format!(
            "{COOKIE_NAME}={token}; Path=/; Max-Age={}; HttpOnly; Secure; SameSite=Strict",
            SESSION_TTL.as_secs()
        ))
        .map_err(|e| e.to_string())
    }

    /// The logged-in user's id, from a valid login cookie.
    pub(crate) fn session(&self, headers: &HeaderMap) -> Option<String> {
        let token = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == COOKIE_NAME)
            .map(|(_, value)| value.trim())?;
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .ok()
            .map(|data| data.claims.sub)
    }
}
