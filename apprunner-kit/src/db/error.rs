//! The error type of `apprunner::db` set-up (connecting, configuring, migrating).
//!
//! Statements keep returning [`sqlx::Error`], as every sqlx executor does.

use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Everything but RFC 3986 unreserved characters, as a URL's userinfo is encoded.
const NOT_UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Why a pool could not be configured, connected or migrated.
///
/// Messages name the database (`host:port`, or the SQLite file), the user where it matters and
/// the last cause, and say what to check. They never contain a password: causes are scrubbed of
/// the configured password before they are stored.
///
/// # Examples
///
/// ```
/// use apprunner::db::{DbConfig, DbError};
///
/// let err = DbConfig::from_lookup(|_| None).unwrap_err();
/// assert!(matches!(err, DbError::NotConfigured));
/// assert!(err.to_string().contains("DATABASE_URL"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// Neither `DATABASE_URL` nor `DB_HOST` (or `DB_DATABASE` for SQLite) is set.
    #[error(
        "no database configured: set DATABASE_URL (postgres://, mysql://, sqlite:), or DB_HOST, \
         DB_PORT, DB_USER, DB_PASSWORD and DB_DATABASE (DB_ENGINE picks postgres, mysql, \
         mariadb or sqlite; default postgres), or DB_SECRET_NAME with apprunner::secrets"
    )]
    NotConfigured,

    /// A configuration variable has a value that cannot be used.
    #[error("invalid {var}: {reason}")]
    InvalidConfig {
        /// The variable (or setting) at fault.
        var: &'static str,
        /// What is wrong and what is expected; never the value of a password.
        reason: String,
    },

    /// The configuration names a different engine than the pool type.
    #[error(
        "the configuration is for {configured}, but this pool is for {expected}: use a matching \
         pool type (apprunner::db::PgPool, MySqlPool, SqlitePool) or fix DATABASE_URL/DB_ENGINE"
    )]
    EngineMismatch {
        /// The engine named by `DATABASE_URL` or `DB_ENGINE`.
        configured: String,
        /// The engine of the pool type.
        expected: &'static str,
    },

    /// The database stayed unreachable until the start-up deadline.
    #[error(
        "database at {endpoint} still unreachable after {attempts} attempts over {waited:.1?} \
         (deadline DB_STARTUP_TIMEOUT={deadline:?}); last error: {cause}. Check DB_HOST/DB_PORT \
         (or DATABASE_URL), the network path (security groups, VPC connector) and that the \
         database is running"
    )]
    Unreachable {
        /// `host:port` (or the SQLite file).
        endpoint: String,
        /// Connection attempts made.
        attempts: u32,
        /// Time spent trying.
        waited: Duration,
        /// The start-up deadline.
        deadline: Duration,
        /// The last connection error, scrubbed of the password.
        cause: String,
    },

    /// The database rejected the credentials (and refreshing them did not help).
    #[error(
        "database at {endpoint} rejected the credentials of user {user:?}: {cause}. Check \
         DB_USER/DB_PASSWORD (or DATABASE_URL), or the secret named by DB_SECRET_NAME"
    )]
    Authentication {
        /// `host:port`.
        endpoint: String,
        /// The user name (never the password).
        user: String,
        /// The database's answer.
        cause: String,
    },

    /// Connecting failed with an error that retrying cannot fix (unknown database, TLS
    /// configuration, protocol).
    #[error("could not connect to the database at {endpoint}: {cause}")]
    Connect {
        /// `host:port` (or the SQLite file).
        endpoint: String,
        /// The error, scrubbed of the password.
        cause: String,
    },

    /// The TLS handshake with the database failed: its certificate did not verify against the
    /// CA file (wrong or missing bundle), did not name the host (`verify-full`), or the server
    /// offered no TLS under `require` and above. Not retried: waiting cannot fix it.
    #[error(
        "TLS to the database at {endpoint} failed (mode {mode}, CA file {ca_file}): {cause}. \
         Check that DB_SSL_ROOT_CERT (or sslrootcert/ssl-ca in DATABASE_URL, PGSSLROOTCERT) names \
         the CA bundle that signed the server's certificate (RDS and Aurora: the global bundle, \
         https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem), and that DB_HOST \
         (or DATABASE_URL's host) is the name the certificate was issued for (verify-full checks \
         it: use the RDS endpoint, not an IP address or a CNAME); DB_SSL_MODE sets the mode"
    )]
    Tls {
        /// `host:port`.
        endpoint: String,
        /// The TLS mode and where it was set, e.g. `verify-full (DB_SSL_MODE)`.
        mode: String,
        /// The CA file and where it was set, e.g.
        /// `/etc/ssl/certs/rds-global-bundle.pem (DB_SSL_ROOT_CERT)`.
        ca_file: String,
        /// The TLS error, scrubbed of the password.
        cause: String,
    },

    /// Refreshing the credentials from their source failed.
    #[error("could not refresh the database credentials from {source_name}: {cause}")]
    Credentials {
        /// The credential source (e.g. the secret's name).
        source_name: String,
        /// Why.
        cause: String,
    },

    /// Running the migrations failed.
    #[error("database migrations failed: {0}")]
    Migrate(String),
}

/// Removes every occurrence of `password` (raw and percent-encoded) from `text`.
pub(crate) fn scrub(text: &str, password: Option<&str>) -> String {
    let Some(password) = password.filter(|p| !p.is_empty()) else {
        return text.to_owned();
    };
    let mut out = text.replace(password, "[REDACTED]");
    let encoded = utf8_percent_encode(password, NOT_UNRESERVED).to_string();
    if encoded != password {
        out = out.replace(&encoded, "[REDACTED]");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_removes_raw_and_encoded_passwords() {
        assert_eq!(
            scrub(
                "auth failed for p@ss:w0rd and p%40ss%3Aw0rd",
                Some("p@ss:w0rd")
            ),
            "auth failed for [REDACTED] and [REDACTED]"
        );
        assert_eq!(scrub("nothing", None), "nothing");
        assert_eq!(scrub("nothing", Some("")), "nothing");
    }

    #[test]
    fn tls_names_host_mode_ca_file_and_what_to_check() {
        let err = DbError::Tls {
            endpoint: "users.cluster-abc.eu-west-1.rds.amazonaws.com:5432".into(),
            mode: "verify-full (DB_SSL_MODE)".into(),
            ca_file: "/etc/ssl/certs/rds-global-bundle.pem (DB_SSL_ROOT_CERT)".into(),
            cause: "invalid peer certificate: UnknownIssuer".into(),
        };
        let text = err.to_string();
        for part in [
            "users.cluster-abc.eu-west-1.rds.amazonaws.com:5432",
            "verify-full (DB_SSL_MODE)",
            "/etc/ssl/certs/rds-global-bundle.pem (DB_SSL_ROOT_CERT)",
            "UnknownIssuer",
            "DB_SSL_ROOT_CERT",
            "DB_HOST",
        ] {
            assert!(text.contains(part), "{part:?} missing from {text}");
        }
    }

    #[test]
    fn unreachable_names_host_port_and_cause() {
        let err = DbError::Unreachable {
            endpoint: "db.internal:5432".into(),
            attempts: 7,
            waited: Duration::from_secs(45),
            deadline: Duration::from_secs(45),
            cause: "Connection refused (os error 111)".into(),
        };
        let text = err.to_string();
        assert!(text.contains("db.internal:5432"), "{text}");
        assert!(text.contains("Connection refused"), "{text}");
        assert!(text.contains("7 attempts"), "{text}");
    }
}
