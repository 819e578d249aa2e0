//! Where the database is: a `DATABASE_URL`, or the `DB_*` parts.

use percent_encoding::percent_decode_str;
use zeroize::Zeroizing;

use super::engine::DbEngine;
use crate::db::error::DbError;

/// Where the database is: a URL, or separate parts.
#[derive(Clone)]
pub(crate) enum Target {
    Url {
        url: Zeroizing<String>,
        engine: DbEngine,
    },
    Parts {
        engine: DbEngine,
        host: String,
        port: Option<u16>,
        user: Option<String>,
        password: Option<Zeroizing<String>>,
        database: Option<String>,
    },
}

impl Target {
    pub(crate) fn engine(&self) -> DbEngine {
        match self {
            Self::Url { engine, .. } | Self::Parts { engine, .. } => *engine,
        }
    }

    /// The password, for scrubbing error messages.
    pub(crate) fn password(&self) -> Option<String> {
        match self {
            Self::Url { url, .. } => url_password(url),
            Self::Parts { password, .. } => password.as_ref().map(|p| p.to_string()),
        }
    }
}

pub(super) fn url_engine(url: &str) -> Result<DbEngine, DbError> {
    let scheme = url.trim().split(':').next().unwrap_or_default();
    DbEngine::parse(scheme).ok_or_else(|| DbError::InvalidConfig {
        var: "DATABASE_URL",
        reason: format!(
            "scheme {scheme:?} is not supported: use postgres://, mysql://, mariadb:// or sqlite:"
        ),
    })
}

/// The authority part of a URL: `(userinfo, host:port)`.
fn url_authority(url: &str) -> Option<(Option<&str>, &str)> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    Some(match authority.rsplit_once('@') {
        Some((userinfo, hostport)) => (Some(userinfo), hostport),
        None => (None, authority),
    })
}

pub(super) fn url_endpoint(url: &str, engine: DbEngine) -> String {
    if engine == DbEngine::Sqlite {
        let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
        return rest.split('?').next().unwrap_or_default().to_owned();
    }
    let hostport = url_authority(url).map_or("", |(_, h)| h);
    let has_port = match hostport.rfind(']') {
        Some(close) => hostport[close..].contains(':'),
        None => hostport.contains(':'),
    };
    let host = if hostport.is_empty() {
        "localhost"
    } else {
        hostport
    };
    if has_port {
        host.to_owned()
    } else {
        format!("{host}:{}", engine.default_port())
    }
}

/// The (percent-decoded) password of a URL.
pub(crate) fn url_password(url: &str) -> Option<String> {
    let (userinfo, _) = url_authority(url)?;
    let (_, password) = userinfo?.split_once(':')?;
    Some(
        percent_decode_str(password)
            .decode_utf8_lossy()
            .into_owned(),
    )
}
