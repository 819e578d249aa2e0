//! TLS to the database: the mode ([`SslMode`]) and the CA file, where each came from, and what
//! a failed handshake looks like.
//!
//! Precedence, first found wins, for the mode and for the CA file separately:
//!
//! 1. [`DbConfig::ssl_mode`](super::DbConfig::ssl_mode) /
//!    [`DbConfig::ssl_root_cert`](super::DbConfig::ssl_root_cert) (code);
//! 2. `DB_SSL_MODE` / `DB_SSL_ROOT_CERT` (the kit's variables, next to the `DB_*` parts, and
//!    applied to `DATABASE_URL` too: an RDS secret expands into a URL without TLS options);
//! 3. the URL's query: `sslmode`, `sslrootcert` (PostgreSQL); `ssl-mode`, `ssl-ca` (MySQL);
//! 4. `PGSSLMODE` / `PGSSLROOTCERT` (PostgreSQL only, as libpq and sqlx read them);
//! 5. sqlx's default: `prefer` (PostgreSQL) / `PREFERRED` (MySQL), with no CA file (the
//!    built-in Mozilla roots).

use std::fmt;
use std::path::PathBuf;

use sqlx::mysql::{MySqlConnectOptions, MySqlSslMode};
use sqlx::postgres::{PgConnectOptions, PgSslMode};

use super::engine::DbEngine;
use crate::db::error::DbError;

/// How a connection uses TLS, in PostgreSQL's (libpq's) names; MySQL gets the equivalent
/// `ssl-mode`.
///
/// | mode | PostgreSQL | MySQL | encrypted | server certificate checked | host name checked |
/// |---|---|---|---|---|---|
/// | `disable` | `disable` | `DISABLED` | no | — | — |
/// | `allow` | `allow` (sqlx: as `disable`) | `PREFERRED` | PostgreSQL no, MySQL if offered | no | no |
/// | `prefer` | `prefer` | `PREFERRED` | if the server offers it | no | no |
/// | `require` | `require` | `REQUIRED` | yes | no | no |
/// | `verify-ca` | `verify-ca` | `VERIFY_CA` | yes | against the CA file | no |
/// | `verify-full` | `verify-full` | `VERIFY_IDENTITY` | yes | against the CA file | yes |
///
/// Use `verify-full` with the RDS CA bundle for RDS and Aurora: anything less accepts a
/// server that is not the database.
///
/// # Examples
///
/// ```
/// use apprunner::db::SslMode;
///
/// assert_eq!(SslMode::parse("verify-full"), Some(SslMode::VerifyFull));
/// assert_eq!(SslMode::parse("VERIFY_IDENTITY"), Some(SslMode::VerifyFull));
/// assert_eq!(SslMode::VerifyCa.mysql_name(), "VERIFY_CA");
/// assert_eq!(SslMode::parse("on"), None);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// PostgreSQL: no TLS (sqlx does not try TLS after a refusal); MySQL: as `Prefer`.
    Allow,
    /// TLS when the server offers it, certificate unchecked (sqlx's default).
    Prefer,
    /// TLS or no connection; the certificate is not checked.
    Require,
    /// TLS, the server certificate must chain to the CA file (or the built-in roots); the host
    /// name is not checked.
    VerifyCa,
    /// TLS, the certificate must chain to the CA file and name the host connected to.
    VerifyFull,
}

impl SslMode {
    /// Parses a mode, case-insensitively: PostgreSQL's names (`disable`, `allow`, `prefer`,
    /// `require`, `verify-ca`, `verify-full`) or MySQL's (`disabled`, `preferred`, `required`,
    /// `verify_ca`, `verify_identity`).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(apprunner::db::SslMode::parse(" Require "), Some(apprunner::db::SslMode::Require));
    /// ```
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "disable" | "disabled" => Some(Self::Disable),
            "allow" => Some(Self::Allow),
            "prefer" | "preferred" => Some(Self::Prefer),
            "require" | "required" => Some(Self::Require),
            "verify-ca" | "verify_ca" => Some(Self::VerifyCa),
            "verify-full" | "verify_full" | "verify_identity" | "verify-identity" => {
                Some(Self::VerifyFull)
            }
            _ => None,
        }
    }

    /// The PostgreSQL name (`verify-full`).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(apprunner::db::SslMode::VerifyFull.as_str(), "verify-full");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Allow => "allow",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }

    /// The MySQL `ssl-mode` this maps to (`VERIFY_IDENTITY` for `verify-full`).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(apprunner::db::SslMode::Allow.mysql_name(), "PREFERRED");
    /// ```
    pub fn mysql_name(self) -> &'static str {
        match self {
            Self::Disable => "DISABLED",
            Self::Allow | Self::Prefer => "PREFERRED",
            Self::Require => "REQUIRED",
            Self::VerifyCa => "VERIFY_CA",
            Self::VerifyFull => "VERIFY_IDENTITY",
        }
    }

    fn pg(self) -> PgSslMode {
        match self {
            Self::Disable => PgSslMode::Disable,
            Self::Allow => PgSslMode::Allow,
            Self::Prefer => PgSslMode::Prefer,
            Self::Require => PgSslMode::Require,
            Self::VerifyCa => PgSslMode::VerifyCa,
            Self::VerifyFull => PgSslMode::VerifyFull,
        }
    }

    fn mysql(self) -> MySqlSslMode {
        match self {
            Self::Disable => MySqlSslMode::Disabled,
            Self::Allow | Self::Prefer => MySqlSslMode::Preferred,
            Self::Require => MySqlSslMode::Required,
            Self::VerifyCa => MySqlSslMode::VerifyCa,
            Self::VerifyFull => MySqlSslMode::VerifyIdentity,
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a TLS setting came from: what errors tell the operator to check.
pub(crate) const FROM_CODE_MODE: &str = "DbConfig::ssl_mode";
pub(crate) const FROM_CODE_CA: &str = "DbConfig::ssl_root_cert";

/// A value and the variable (or setting) it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Sourced<T> {
    pub(crate) value: T,
    pub(crate) source: &'static str,
}

/// The CA certificates: a file, or PEM text given inline (`PGSSLROOTCERT` may hold either).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RootCert {
    File(PathBuf),
    Pem(String),
}

impl RootCert {
    fn from_value(value: &str) -> Self {
        let value = value.trim();
        if value.starts_with("-----BEGIN") {
            Self::Pem(value.to_owned())
        } else {
            Self::File(PathBuf::from(value))
        }
    }
}

/// The TLS settings the kit applies over the driver's own (see the module docs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct TlsSettings {
    pub(crate) mode: Option<Sourced<SslMode>>,
    pub(crate) root_cert: Option<Sourced<RootCert>>,
}

impl TlsSettings {
    /// Resolves the mode and the CA file from `DB_SSL_*`, the URL's query (when `url` is set)
    /// and, for PostgreSQL, `PGSSL*`.
    pub(crate) fn resolve(
        get: impl Fn(&str) -> Option<String>,
        engine: DbEngine,
        url: Option<&str>,
    ) -> Result<Self, DbError> {
        let mode_of = |var: &'static str, value: &str| {
            SslMode::parse(value)
                .map(|value| Sourced { value, source: var })
                .ok_or_else(|| DbError::InvalidConfig {
                    var,
                    reason: format!(
                        "{value:?} is not a TLS mode: use disable, allow, prefer, require, \
                         verify-ca or verify-full (verify-full with the RDS CA bundle for RDS)"
                    ),
                })
        };
        let is_pg = engine == DbEngine::Postgres;
        let (url_mode_keys, url_ca_keys): (&[&str], &[&str]) = match engine {
            DbEngine::Postgres => (
                &["sslmode", "ssl-mode"],
                &["sslrootcert", "ssl-root-cert", "ssl-ca"],
            ),
            DbEngine::MySql | DbEngine::MariaDb => (&["ssl-mode", "sslmode"], &["ssl-ca", "sslca"]),
            DbEngine::Sqlite => (&[], &[]),
        };
        let from_url = |keys: &[&str]| url.and_then(|url| query_value(url, keys));

        let mode = if let Some(v) = get("DB_SSL_MODE") {
            Some(mode_of("DB_SSL_MODE", &v)?)
        } else if let Some(v) = from_url(url_mode_keys) {
            Some(mode_of("DATABASE_URL", &v)?)
        } else if let Some(v) = get("PGSSLMODE").filter(|_| is_pg) {
            Some(mode_of("PGSSLMODE", &v)?)
        } else {
            None
        };
        let ca = |source: &'static str, value: String| Sourced {
            value: RootCert::from_value(&value),
            source,
        };
        let root_cert = get("DB_SSL_ROOT_CERT")
            .map(|v| ca("DB_SSL_ROOT_CERT", v))
            .or_else(|| from_url(url_ca_keys).map(|v| ca("DATABASE_URL", v)))
            .or_else(|| {
                get("PGSSLROOTCERT")
                    .filter(|_| is_pg)
                    .map(|v| ca("PGSSLROOTCERT", v))
            });
        Ok(Self { mode, root_cert })
    }

    /// Fails when the CA file is missing or unreadable, naming the variable and the path.
    pub(crate) fn check_files(&self) -> Result<(), DbError> {
        let Some(Sourced {
            value: RootCert::File(path),
            source,
        }) = &self.root_cert
        else {
            return Ok(());
        };
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_file() => {
                std::fs::File::open(path).map_err(|e| DbError::InvalidConfig {
                    var: source,
                    reason: format!(
                        "the CA file {} cannot be read ({e}): make it readable by the \
                         service's user",
                        path.display()
                    ),
                })?;
                Ok(())
            }
            Ok(_) => Err(DbError::InvalidConfig {
                var: source,
                reason: format!(
                    "the CA file {} is not a file: name the PEM bundle itself (for RDS: \
                     global-bundle.pem)",
                    path.display()
                ),
            }),
            Err(e) => Err(DbError::InvalidConfig {
                var: source,
                reason: format!(
                    "the CA file {} does not exist ({e}): fix the path, or put the bundle in the \
                     image (for RDS: https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem)",
                    path.display()
                ),
            }),
        }
    }

    pub(crate) fn apply_pg(&self, mut options: PgConnectOptions) -> PgConnectOptions {
        if let Some(mode) = &self.mode {
            options = options.ssl_mode(mode.value.pg());
        }
        match self.root_cert.as_ref().map(|c| &c.value) {
            Some(RootCert::File(path)) => options.ssl_root_cert(path),
            Some(RootCert::Pem(pem)) => options.ssl_root_cert_from_pem(pem.as_bytes().to_vec()),
            None => options,
        }
    }

    pub(crate) fn apply_mysql(&self, mut options: MySqlConnectOptions) -> MySqlConnectOptions {
        if let Some(mode) = &self.mode {
            options = options.ssl_mode(mode.value.mysql());
        }
        match self.root_cert.as_ref().map(|c| &c.value) {
            Some(RootCert::File(path)) => options.ssl_ca(path),
            Some(RootCert::Pem(pem)) => options.ssl_ca_from_pem(pem.as_bytes().to_vec()),
            None => options,
        }
    }

    /// The mode and where it came from, as errors print it: `verify-full (DB_SSL_MODE)`.
    pub(crate) fn describe_mode(&self, engine: DbEngine) -> String {
        let mysql = matches!(engine, DbEngine::MySql | DbEngine::MariaDb);
        match &self.mode {
            Some(Sourced { value, source }) if mysql => {
                format!("{value} = {} ({source})", value.mysql_name())
            }
            Some(Sourced { value, source }) => format!("{value} ({source})"),
            None if mysql => "PREFERRED (the default; DB_SSL_MODE unset)".to_owned(),
            None => "prefer (the default; DB_SSL_MODE unset)".to_owned(),
        }
    }

    /// The CA file and where it came from: `/etc/ssl/rds.pem (DB_SSL_ROOT_CERT)`.
    pub(crate) fn describe_ca(&self) -> String {
        match &self.root_cert {
            Some(Sourced {
                value: RootCert::File(path),
                source,
            }) => format!("{} ({source})", path.display()),
            Some(Sourced {
                value: RootCert::Pem(_),
                source,
            }) => format!("inline PEM ({source})"),
            None => "none (DB_SSL_ROOT_CERT unset: only the built-in Mozilla roots are trusted, \
                     and they do not include the RDS CAs)"
                .to_owned(),
        }
    }
}

/// The first value of one of `keys` in `url`'s query string, percent-decoded.
fn query_value(url: &str, keys: &[&str]) -> Option<String> {
    let query = url.split_once('?')?.1;
    let query = query.split('#').next().unwrap_or_default();
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = decode(key);
        keys.contains(&key.as_str())
            .then(|| decode(value))
            .filter(|v| !v.trim().is_empty())
    })
}

fn decode(text: &str) -> String {
    percent_encoding::percent_decode_str(&text.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

/// Whether connecting failed in TLS: the handshake or certificate verification (rustls's
/// errors surface as I/O errors), a TLS setting sqlx rejected, or a server without TLS under
/// `require` and above. Retrying cannot fix these.
pub(crate) fn is_tls_failure(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Tls(_) => true,
        sqlx::Error::Io(e) => e
            .get_ref()
            .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some()),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn resolve(vars: &[(&str, &str)], engine: DbEngine, url: Option<&str>) -> TlsSettings {
        try_resolve(vars, engine, url).unwrap()
    }

    fn try_resolve(
        vars: &[(&str, &str)],
        engine: DbEngine,
        url: Option<&str>,
    ) -> Result<TlsSettings, DbError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        TlsSettings::resolve(|k| map.get(k).cloned(), engine, url)
    }

    fn mode(settings: &TlsSettings) -> Option<(SslMode, &'static str)> {
        settings.mode.as_ref().map(|m| (m.value, m.source))
    }

    fn ca(settings: &TlsSettings) -> Option<(RootCert, &'static str)> {
        settings
            .root_cert
            .as_ref()
            .map(|c| (c.value.clone(), c.source))
    }

    fn file(path: &str) -> RootCert {
        RootCert::File(PathBuf::from(path))
    }

    #[test]
    fn every_name_parses() {
        for (name, mode) in [
            ("disable", SslMode::Disable),
            ("allow", SslMode::Allow),
            ("prefer", SslMode::Prefer),
            ("require", SslMode::Require),
            ("verify-ca", SslMode::VerifyCa),
            ("verify-full", SslMode::VerifyFull),
            ("DISABLED", SslMode::Disable),
            ("PREFERRED", SslMode::Prefer),
            ("REQUIRED", SslMode::Require),
            ("VERIFY_CA", SslMode::VerifyCa),
            ("VERIFY_IDENTITY", SslMode::VerifyFull),
        ] {
            assert_eq!(SslMode::parse(name), Some(mode), "{name}");
        }
        for mode in [
            SslMode::Disable,
            SslMode::Allow,
            SslMode::Prefer,
            SslMode::Require,
            SslMode::VerifyCa,
            SslMode::VerifyFull,
        ] {
            assert_eq!(SslMode::parse(mode.as_str()), Some(mode));
            assert!(SslMode::parse(mode.mysql_name()).is_some());
        }
    }

    #[test]
    fn precedence_kit_variables_then_url_then_pg_env() {
        let url = "postgres://u@db/app?sslmode=require&sslrootcert=/url/ca.pem";
        let all = [
            ("DB_SSL_MODE", "verify-full"),
            ("DB_SSL_ROOT_CERT", "/kit/ca.pem"),
            ("PGSSLMODE", "verify-ca"),
            ("PGSSLROOTCERT", "/pg/ca.pem"),
        ];
        let s = resolve(&all, DbEngine::Postgres, Some(url));
        assert_eq!(mode(&s), Some((SslMode::VerifyFull, "DB_SSL_MODE")));
        assert_eq!(ca(&s), Some((file("/kit/ca.pem"), "DB_SSL_ROOT_CERT")));

        let s = resolve(&all[2..], DbEngine::Postgres, Some(url));
        assert_eq!(mode(&s), Some((SslMode::Require, "DATABASE_URL")));
        assert_eq!(ca(&s), Some((file("/url/ca.pem"), "DATABASE_URL")));

        let s = resolve(&all[2..], DbEngine::Postgres, Some("postgres://u@db/app"));
        assert_eq!(mode(&s), Some((SslMode::VerifyCa, "PGSSLMODE")));
        assert_eq!(ca(&s), Some((file("/pg/ca.pem"), "PGSSLROOTCERT")));

        // The DB_* parts: no URL.
        let s = resolve(&all[2..], DbEngine::Postgres, None);
        assert_eq!(mode(&s), Some((SslMode::VerifyCa, "PGSSLMODE")));

        let s = resolve(&[], DbEngine::Postgres, None);
        assert_eq!(s, TlsSettings::default());
        assert_eq!(
            s.describe_mode(DbEngine::Postgres),
            "prefer (the default; DB_SSL_MODE unset)"
        );
    }

    #[test]
    fn mysql_reads_its_url_keys_and_ignores_pg_variables() {
        let s = resolve(
            &[("PGSSLMODE", "disable"), ("PGSSLROOTCERT", "/pg/ca.pem")],
            DbEngine::MySql,
            Some("mysql://u@db/app?ssl-mode=VERIFY_IDENTITY&ssl-ca=%2Fetc%2Fca.pem"),
        );
        assert_eq!(mode(&s), Some((SslMode::VerifyFull, "DATABASE_URL")));
        assert_eq!(ca(&s), Some((file("/etc/ca.pem"), "DATABASE_URL")));
        assert_eq!(
            s.describe_mode(DbEngine::MySql),
            "verify-full = VERIFY_IDENTITY (DATABASE_URL)"
        );

        let s = resolve(
            &[("PGSSLMODE", "disable"), ("DB_SSL_MODE", "verify-ca")],
            DbEngine::MariaDb,
            None,
        );
        assert_eq!(mode(&s), Some((SslMode::VerifyCa, "DB_SSL_MODE")));
        let options = s.apply_mysql(MySqlConnectOptions::new());
        assert!(matches!(options.get_ssl_mode(), MySqlSslMode::VerifyCa));
    }

    #[test]
    fn an_invalid_mode_names_its_variable() {
        for (vars, url, var) in [
            (&[("DB_SSL_MODE", "on")][..], None, "DB_SSL_MODE"),
            (&[("PGSSLMODE", "strict")][..], None, "PGSSLMODE"),
            (
                &[][..],
                Some("postgres://db/app?sslmode=yes"),
                "DATABASE_URL",
            ),
        ] {
            let err = try_resolve(vars, DbEngine::Postgres, url).unwrap_err();
            assert!(
                matches!(&err, DbError::InvalidConfig { var: v, .. } if *v == var),
                "{err:?}"
            );
            let text = err.to_string();
            assert!(text.contains(var) && text.contains("verify-full"), "{text}");
        }
    }

    #[test]
    fn a_missing_ca_file_names_the_variable_and_the_path() {
        let s = resolve(
            &[
                ("DB_SSL_MODE", "verify-full"),
                ("DB_SSL_ROOT_CERT", "/nonexistent/rds/global-bundle.pem"),
            ],
            DbEngine::Postgres,
            None,
        );
        let err = s.check_files().unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(
                err,
                DbError::InvalidConfig {
                    var: "DB_SSL_ROOT_CERT",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(
            text.contains("/nonexistent/rds/global-bundle.pem"),
            "{text}"
        );
        assert!(text.contains("does not exist"), "{text}");

        let dir = std::env::temp_dir();
        let s = resolve(
            &[("PGSSLROOTCERT", dir.to_str().unwrap())],
            DbEngine::Postgres,
            None,
        );
        let err = s.check_files().unwrap_err();
        assert!(err.to_string().contains("PGSSLROOTCERT"), "{err}");
        assert!(err.to_string().contains("not a file"), "{err}");
    }

    #[test]
    fn inline_pem_is_not_a_path() {
        let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----";
        let s = resolve(&[("PGSSLROOTCERT", pem)], DbEngine::Postgres, None);
        assert_eq!(
            ca(&s),
            Some((RootCert::Pem(pem.to_owned()), "PGSSLROOTCERT"))
        );
        s.check_files().unwrap();
        assert_eq!(s.describe_ca(), "inline PEM (PGSSLROOTCERT)");
    }

    #[test]
    fn applies_to_pg_options() {
        let s = resolve(
            &[
                ("DB_SSL_MODE", "verify-full"),
                ("DB_SSL_ROOT_CERT", "/ca.pem"),
            ],
            DbEngine::Postgres,
            None,
        );
        let options = s.apply_pg(PgConnectOptions::new_without_pgpass());
        assert!(matches!(options.get_ssl_mode(), PgSslMode::VerifyFull));
        assert_eq!(s.describe_ca(), "/ca.pem (DB_SSL_ROOT_CERT)");
    }

    #[test]
    fn classifies_tls_failures() {
        let rustls_error = sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        ));
        assert!(is_tls_failure(&rustls_error));
        assert!(is_tls_failure(&sqlx::Error::Tls("no TLS".into())));
        let refused = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(!is_tls_failure(&refused));
    }
}
