//! RDS-style secret JSON → `DB_*` variables and `DATABASE_URL`.

use std::fmt;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Map, Value};

use super::error::SecretsError;
use super::secret::Secret;

/// Everything but RFC 3986 "unreserved" characters is percent-encoded in the user, password and
/// database name of a `DATABASE_URL`, so `@`, `:`, `/`, `%`, `#`, `?` and the like survive.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The database engine of an RDS secret, which decides the `DATABASE_URL` scheme.
///
/// # Examples
///
/// ```
/// use apprunner::secrets::Engine;
///
/// assert_eq!(Engine::from_rds("aurora-postgresql"), Some(Engine::Postgres));
/// assert_eq!(Engine::from_rds("mariadb"), Some(Engine::MySql));
/// assert_eq!(Engine::Postgres.scheme(), "postgres");
/// assert_eq!(Engine::from_rds("oracle-ee"), None);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Engine {
    /// PostgreSQL, RDS engines `postgres` and `aurora-postgresql`: scheme `postgres://`.
    Postgres,
    /// MySQL, RDS engines `mysql`, `mariadb`, `aurora-mysql` and `aurora`: scheme `mysql://`.
    MySql,
}

impl Engine {
    /// Maps the `engine` field of an RDS secret (case-insensitive); `None` if unsupported.
    ///
    /// # Examples
    ///
    /// ```
    /// use apprunner::secrets::Engine;
    ///
    /// assert_eq!(Engine::from_rds("Postgres"), Some(Engine::Postgres));
    /// ```
    pub fn from_rds(engine: &str) -> Option<Self> {
        match engine.trim().to_ascii_lowercase().as_str() {
            "postgres" | "postgresql" | "aurora-postgresql" => Some(Self::Postgres),
            "mysql" | "mariadb" | "aurora-mysql" | "aurora" => Some(Self::MySql),
            _ => None,
        }
    }

    /// The URL scheme: `postgres` or `mysql`.
    ///
    /// # Examples
    ///
    /// ```
    /// use apprunner::secrets::Engine;
    ///
    /// assert_eq!(Engine::MySql.scheme(), "mysql");
    /// ```
    pub fn scheme(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::MySql => "mysql",
        }
    }
}

/// Database credentials read from an RDS-style secret: the JSON that RDS, Aurora and the CDK
/// generate (`username`, `password`, `host`, `port`, `dbname`, `engine`).
///
/// `username`, `password`, `host` and `engine` are required; `port` (a number or a string of
/// digits) and `dbname` are optional. Other keys are ignored.
///
/// # Examples
///
/// ```
/// use apprunner::secrets::RdsCredentials;
///
/// let creds = RdsCredentials::from_json(
///     r#"{"username":"app","password":"p@ss:/%#","host":"db.example.com","port":5432,
///        "dbname":"users","engine":"postgres"}"#,
/// )?;
/// assert_eq!(
///     creds.database_url().expose(),
///     "postgres://app:p%40ss%3A%2F%25%23@db.example.com:5432/users"
/// );
/// assert_eq!(format!("{creds:?}").contains("p@ss"), false);
/// # Ok::<(), apprunner::secrets::SecretsError>(())
/// ```
#[derive(Clone)]
pub struct RdsCredentials {
    username: Secret<String>,
    password: Secret<String>,
    host: String,
    port: Option<u16>,
    dbname: Option<String>,
    engine: Engine,
}

impl RdsCredentials {
    /// Parses RDS secret JSON. Errors never quote the text.
    ///
    /// # Errors
    ///
    /// [`SecretsError::NotJson`], [`SecretsError::MissingKey`], [`SecretsError::InvalidValue`]
    /// or [`SecretsError::UnsupportedEngine`].
    ///
    /// # Examples
    ///
    /// ```
    /// use apprunner::secrets::{RdsCredentials, SecretsError};
    ///
    /// let err = RdsCredentials::from_json(r#"{"username":"app"}"#).unwrap_err();
    /// assert!(matches!(err, SecretsError::MissingKey { .. }));
    /// ```
    pub fn from_json(text: &str) -> Result<Self, SecretsError> {
        Self::parse("the RDS secret", text)
    }

    pub(crate) fn parse(secret: &str, text: &str) -> Result<Self, SecretsError> {
        let object = parse_object(secret, text)?;
        let required = |key: &str| -> Result<String, SecretsError> {
            match object.get(key) {
                None | Some(Value::Null) => Err(SecretsError::MissingKey {
                    secret: secret.to_owned(),
                    key: key.to_owned(),
                }),
                Some(value) => scalar(value).ok_or_else(|| SecretsError::InvalidValue {
                    secret: secret.to_owned(),
                    key: key.to_owned(),
                    expected: "must be a string",
                }),
            }
        };
        let username = Secret::new(required("username")?);
        let password = Secret::new(required("password")?);
        let host = required("host")?;
        let engine_name = required("engine")?;
        let engine =
            Engine::from_rds(&engine_name).ok_or_else(|| SecretsError::UnsupportedEngine {
                secret: secret.to_owned(),
                engine: engine_name.clone(),
            })?;
        let port = match object.get("port") {
            None | Some(Value::Null) => None,
            Some(value) => Some(
                scalar(value)
                    .and_then(|p| p.trim().parse::<u16>().ok())
                    .ok_or_else(|| SecretsError::InvalidValue {
                        secret: secret.to_owned(),
                        key: "port".to_owned(),
                        expected: "must be a port number (1-65535)",
                    })?,
            ),
        };
        let dbname = match object.get("dbname") {
            None | Some(Value::Null) => None,
            Some(value) => Some(scalar(value).ok_or_else(|| SecretsError::InvalidValue {
                secret: secret.to_owned(),
                key: "dbname".to_owned(),
                expected: "must be a string",
            })?),
        };
        Ok(Self {
            username,
            password,
            host,
            port,
            dbname,
            engine,
        })
    }

    /// The user name.
    ///
    /// # Examples
    ///
    /// ```
    /// # let creds = apprunner::secrets::RdsCredentials::from_json(
    /// #     r#"{"username":"app","password":"x","host":"h","engine":"postgres"}"#).unwrap();
    /// assert_eq!(creds.username().expose(), "app");
    /// ```
    pub fn username(&self) -> &Secret<String> {
        &self.username
    }

    /// The password.
    ///
    /// # Examples
    ///
    /// ```
    /// # let creds = apprunner::secrets::RdsCredentials::from_json(
    /// #     r#"{"username":"app","password":"x","host":"h","engine":"postgres"}"#).unwrap();
    /// assert_eq!(creds.password().expose(), "x");
    /// ```
    pub fn password(&self) -> &Secret<String> {
        &self.password
    }

    /// The host name (the cluster or instance endpoint).
    ///
    /// # Examples
    ///
    /// ```
    /// # let creds = apprunner::secrets::RdsCredentials::from_json(
    /// #     r#"{"username":"app","password":"x","host":"h","engine":"postgres"}"#).unwrap();
    /// assert_eq!(creds.host(), "h");
    /// ```
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port, if the secret has one.
    ///
    /// # Examples
    ///
    /// ```
    /// # let creds = apprunner::secrets::RdsCredentials::from_json(
    /// #     r#"{"username":"app","password":"x","host":"h","port":"5432","engine":"postgres"}"#).unwrap();
    /// assert_eq!(creds.port(), Some(5432));
    /// ```
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The database name, if the secret has one.
    ///
    /// # Examples
    ///
    /// ```
    /// # let creds = apprunner::secrets::RdsCredentials::from_json(
    /// #     r#"{"username":"app","password":"x","host":"h","engine":"postgres"}"#).unwrap();
    /// assert_eq!(creds.dbname(), None);
    /// ```
    pub fn dbname(&self) -> Option<&str> {
        self.dbname.as_deref()
    }

    /// The engine.
    ///
    /// # Examples
    ///
    /// ```
    /// # use apprunner::secrets::Engine;
    /// # let creds = apprunner::secrets::RdsCredentials::from_json(
    /// #     r#"{"username":"app","password":"x","host":"h","engine":"aurora-mysql"}"#).unwrap();
    /// assert_eq!(creds.engine(), Engine::MySql);
    /// ```
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// `scheme://user:password@host[:port][/dbname]`, with user, password and database name
    /// percent-encoded and an IPv6 host in brackets.
    ///
    /// # Examples
    ///
    /// ```
    /// # let creds = apprunner::secrets::RdsCredentials::from_json(
    /// #     r#"{"username":"app","password":"a b","host":"h","engine":"mysql"}"#).unwrap();
    /// assert_eq!(creds.database_url().expose(), "mysql://app:a%20b@h");
    /// ```
    pub fn database_url(&self) -> Secret<String> {
        let mut url = String::with_capacity(64);
        url.push_str(self.engine.scheme());
        url.push_str("://");
        url.extend(utf8_percent_encode(self.username.expose(), COMPONENT));
        url.push(':');
        url.extend(utf8_percent_encode(self.password.expose(), COMPONENT));
        url.push('@');
        if self.host.contains(':') && !self.host.starts_with('[') {
            url.push('[');
            url.push_str(&self.host);
            url.push(']');
        } else {
            url.push_str(&self.host);
        }
        if let Some(port) = self.port {
            url.push(':');
            url.push_str(&port.to_string());
        }
        if let Some(dbname) = &self.dbname {
            url.push('/');
            url.extend(utf8_percent_encode(dbname, COMPONENT));
        }
        Secret::new(url)
    }

    /// The variables this secret expands to: `DB_USER`, `DB_PASSWORD`, `DB_HOST`, `DB_PORT`
    /// (if present), `DB_DATABASE` (if present) and `DATABASE_URL`.
    pub(crate) fn env_vars(&self) -> Vec<(String, Secret<String>)> {
        let mut vars = vec![
            ("DB_USER".to_owned(), self.username.clone()),
            ("DB_PASSWORD".to_owned(), self.password.clone()),
            ("DB_HOST".to_owned(), Secret::new(self.host.clone())),
        ];
        if let Some(port) = self.port {
            vars.push(("DB_PORT".to_owned(), Secret::new(port.to_string())));
        }
        if let Some(dbname) = &self.dbname {
            vars.push(("DB_DATABASE".to_owned(), Secret::new(dbname.clone())));
        }
        vars.push(("DATABASE_URL".to_owned(), self.database_url()));
        vars
    }
}

/// The variables an RDS expansion sets, whether or not the secret has a port and a dbname.
pub(crate) const RDS_VARS: [&str; 6] = [
    "DB_USER",
    "DB_PASSWORD",
    "DB_HOST",
    "DB_PORT",
    "DB_DATABASE",
    "DATABASE_URL",
];

impl fmt::Debug for RdsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RdsCredentials")
            .field("username", &self.username)
            .field("password", &self.password)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("dbname", &self.dbname)
            .field("engine", &self.engine)
            .finish()
    }
}

/// Parses `text` as a JSON object; the error says where parsing failed, never what was there.
pub(crate) fn parse_object(secret: &str, text: &str) -> Result<Map<String, Value>, SecretsError> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(SecretsError::NotJson {
            secret: secret.to_owned(),
            what: format!("it is a JSON {}", kind(&other)),
        }),
        // serde_json's Display can quote fragments of the input: report the position only.
        Err(err) => Err(SecretsError::NotJson {
            secret: secret.to_owned(),
            what: format!(
                "JSON {} error at line {}, column {}",
                match err.classify() {
                    serde_json::error::Category::Io => "I/O",
                    serde_json::error::Category::Syntax => "syntax",
                    serde_json::error::Category::Data => "data",
                    serde_json::error::Category::Eof => "unexpected end of input",
                },
                err.line(),
                err.column()
            ),
        }),
    }
}

/// The text of one key of a secret's JSON object: strings as they are, numbers and booleans in
/// their JSON form, objects and arrays as compact JSON.
pub(crate) fn key_value(
    secret: &str,
    object: &Map<String, Value>,
    key: &str,
) -> Result<Secret<String>, SecretsError> {
    match object.get(key) {
        None => Err(SecretsError::MissingKey {
            secret: secret.to_owned(),
            key: key.to_owned(),
        }),
        Some(Value::String(s)) => Ok(Secret::new(s.clone())),
        Some(other) => Ok(Secret::new(other.to_string())),
    }
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use percent_encoding::percent_decode_str;

    fn creds(json: &str) -> RdsCredentials {
        RdsCredentials::parse("secret `t`", json).unwrap()
    }

    /// Splits `scheme://user:password@host:port/db` at the delimiters that encoding must keep
    /// unique, then decodes each part.
    fn split(url: &str) -> (String, String, String, String, String) {
        let (scheme, rest) = url.split_once("://").unwrap();
        let (userinfo, rest) = rest.rsplit_once('@').unwrap();
        assert_eq!(
            userinfo.matches('@').count(),
            0,
            "`@` left unencoded in {url}"
        );
        let (user, password) = userinfo.split_once(':').unwrap();
        assert!(!password.contains(':'), "`:` left unencoded");
        let (hostport, db) = rest.split_once('/').unwrap_or((rest, ""));
        let decode = |s: &str| percent_decode_str(s).decode_utf8().unwrap().into_owned();
        (
            scheme.to_owned(),
            decode(user),
            decode(password),
            hostport.to_owned(),
            decode(db),
        )
    }

    #[test]
    fn postgres_url_encodes_user_password_and_db() {
        let c = creds(
            r#"{"username":"ad@min","password":"p@ss:w/rd%#?&= x","host":"db.cluster.local",
                "port":5432,"dbname":"my db","engine":"aurora-postgresql","dbClusterIdentifier":"c"}"#,
        );
        let url = c.database_url();
        assert_eq!(
            url.expose(),
            "postgres://ad%40min:p%40ss%3Aw%2Frd%25%23%3F%26%3D%20x@db.cluster.local:5432/my%20db"
        );
        let (scheme, user, password, hostport, db) = split(url.expose());
        assert_eq!(scheme, "postgres");
        assert_eq!(user, "ad@min");
        assert_eq!(password, "p@ss:w/rd%#?&= x");
        assert_eq!(hostport, "db.cluster.local:5432");
        assert_eq!(db, "my db");
    }

    proptest::proptest! {
        /// Whatever the user, password and database name, the URL splits at its delimiters
        /// and decodes back to them.
        #[test]
        fn any_credentials_survive_the_url(
            user in "\\PC{1,24}",
            password in "\\PC{0,40}",
            db in "[a-zA-Z0-9_ /?#@:%-]{1,16}",
        ) {
            let json = serde_json::json!({
                "username": user, "password": password, "host": "h", "port": 5432,
                "dbname": db, "engine": "postgres"
            });
            let url = creds(&json.to_string()).database_url();
            let (scheme, u, p, hostport, d) = split(url.expose());
            proptest::prop_assert_eq!(scheme, "postgres");
            proptest::prop_assert_eq!(u, user);
            proptest::prop_assert_eq!(p, password);
            proptest::prop_assert_eq!(hostport, "h:5432");
            proptest::prop_assert_eq!(d, db);
        }
    }

    #[test]
    fn engines_choose_the_scheme() {
        for (engine, scheme) in [
            ("postgres", "postgres://"),
            ("aurora-postgresql", "postgres://"),
            ("mysql", "mysql://"),
            ("mariadb", "mysql://"),
            ("aurora-mysql", "mysql://"),
            ("AURORA", "mysql://"),
        ] {
            let c = creds(&format!(
                r#"{{"username":"u","password":"p","host":"h","engine":"{engine}"}}"#
            ));
            assert!(c.database_url().expose().starts_with(scheme), "{engine}");
        }
        let err = RdsCredentials::parse(
            "secret `t`",
            r#"{"username":"u","password":"p","host":"h","engine":"sqlserver-ex"}"#,
        )
        .unwrap_err();
        assert!(
            matches!(err, SecretsError::UnsupportedEngine { ref engine, .. } if engine == "sqlserver-ex")
        );
    }

    #[test]
    fn port_as_string_and_optional_parts() {
        let c =
            creds(r#"{"username":"u","password":"p","host":"h","port":"3306","engine":"mysql"}"#);
        assert_eq!(c.port(), Some(3306));
        assert_eq!(c.database_url().expose(), "mysql://u:p@h:3306");
        let names: Vec<String> = c.env_vars().into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            names,
            [
                "DB_USER",
                "DB_PASSWORD",
                "DB_HOST",
                "DB_PORT",
                "DATABASE_URL"
            ]
        );
    }

    #[test]
    fn ipv6_host_is_bracketed() {
        let c = creds(
            r#"{"username":"u","password":"p","host":"::1","port":5432,"engine":"postgres"}"#,
        );
        assert_eq!(c.database_url().expose(), "postgres://u:p@[::1]:5432");
    }

    #[test]
    fn env_vars_carry_every_field() {
        let c = creds(
            r#"{"username":"u","password":"p#1","host":"h","port":5432,"dbname":"d","engine":"postgres"}"#,
        );
        let vars: Vec<(String, String)> = c
            .env_vars()
            .into_iter()
            .map(|(k, v)| (k, v.expose().clone()))
            .collect();
        let expected = [
            ("DB_USER", "u"),
            ("DB_PASSWORD", "p#1"),
            ("DB_HOST", "h"),
            ("DB_PORT", "5432"),
            ("DB_DATABASE", "d"),
            ("DATABASE_URL", "postgres://u:p%231@h:5432/d"),
        ];
        assert_eq!(
            vars,
            expected.map(|(k, v)| (k.to_owned(), v.to_owned())).to_vec()
        );
    }

    #[test]
    fn errors_name_the_problem_and_never_the_value() {
        let missing = RdsCredentials::parse(
            "secret `prod/db`",
            r#"{"username":"u","host":"h","engine":"postgres"}"#,
        )
        .unwrap_err();
        assert_eq!(
            missing.to_string(),
            "secret `prod/db` has no key `password`: add it to the secret or fix the declaration"
        );

        let bad_port = RdsCredentials::parse(
            "secret `prod/db`",
            r#"{"username":"u","password":"s3cr3t","host":"h","port":"s3cr3t","engine":"postgres"}"#,
        )
        .unwrap_err();
        assert!(bad_port.to_string().contains("`port`"), "{bad_port}");
        assert!(!bad_port.to_string().contains("s3cr3t"), "{bad_port}");

        // serde_json's own message would quote `s3cr3t`-like fragments; ours does not.
        let not_json =
            RdsCredentials::parse("secret `prod/db`", "password=s3cr3t-value").unwrap_err();
        let text = format!("{not_json} {not_json:?}");
        assert!(text.contains("line 1, column"), "{text}");
        assert!(!text.contains("s3cr3t"), "{text}");

        let array = RdsCredentials::parse("secret `prod/db`", r#"["s3cr3t"]"#).unwrap_err();
        assert!(array.to_string().contains("it is a JSON array"), "{array}");
        assert!(!format!("{array:?}").contains("s3cr3t"));
    }

    #[test]
    fn debug_hides_user_and_password() {
        let c = creds(
            r#"{"username":"admin-user","password":"pw-123","host":"h","engine":"postgres"}"#,
        );
        let printed = format!("{c:?}");
        assert!(
            !printed.contains("admin-user") && !printed.contains("pw-123"),
            "{printed}"
        );
        assert!(printed.contains("host: \"h\""), "{printed}");
    }

    #[test]
    fn key_value_renders_scalars_and_reports_missing_keys() {
        let object = parse_object("s", r#"{"a":"x","n":5,"b":true,"o":{"k":1}}"#).unwrap();
        assert_eq!(key_value("s", &object, "a").unwrap().expose(), "x");
        assert_eq!(key_value("s", &object, "n").unwrap().expose(), "5");
        assert_eq!(key_value("s", &object, "b").unwrap().expose(), "true");
        assert_eq!(key_value("s", &object, "o").unwrap().expose(), r#"{"k":1}"#);
        assert!(matches!(
            key_value("s", &object, "zz"),
            Err(SecretsError::MissingKey { ref key, .. }) if key == "zz"
        ));
    }
}
