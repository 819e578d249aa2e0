//! What to put into the environment: declarations, from code or from the environment.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use super::error::SecretsError;
use super::rds::RDS_VARS;

/// `DB_SECRET_NAME`: name or ARN of an RDS-style secret to fetch and expand into `DB_*` and
/// `DATABASE_URL` (the sample service's convention).
pub const DB_SECRET_NAME: &str = "DB_SECRET_NAME";

/// `DB_SECRET`: an RDS-style secret's JSON text, injected by App Runner or ECS at deploy time;
/// expanded like [`DB_SECRET_NAME`] without calling Secrets Manager. Takes precedence over
/// [`DB_SECRET_NAME`] when both are set.
pub const DB_SECRET: &str = "DB_SECRET";

/// `APPRUNNER_SECRETS`: general mappings, `VAR=SOURCE[#KEY]` separated by commas or newlines
/// (see [`Plan::mappings`]).
pub const APPRUNNER_SECRETS: &str = "APPRUNNER_SECRETS";

/// Where a secret's text comes from. Both kinds are declared, expanded and reported the same way.
///
/// # Examples
///
/// ```
/// use apprunner::secrets::SecretSource;
///
/// let fetched = SecretSource::secrets_manager("prod/db");
/// let injected = SecretSource::injected("DB_SECRET");
/// assert_eq!(fetched.to_string(), "secret `prod/db`");
/// assert_eq!(injected.to_string(), "injected secret in `DB_SECRET`");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum SecretSource {
    /// Fetched from AWS Secrets Manager (stage `AWSCURRENT`) by name or ARN.
    SecretsManager(String),
    /// Already in this environment variable: App Runner or ECS injected the secret's text at
    /// deploy time. Nothing is fetched.
    Injected(String),
}

impl SecretSource {
    /// A secret fetched from Secrets Manager by name or ARN.
    ///
    /// # Examples
    ///
    /// ```
    /// use apprunner::secrets::SecretSource;
    ///
    /// let s = SecretSource::secrets_manager("arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf");
    /// assert!(matches!(s, SecretSource::SecretsManager(_)));
    /// ```
    pub fn secrets_manager(id: impl Into<String>) -> Self {
        Self::SecretsManager(id.into())
    }

    /// A secret whose text was injected into the variable `var` at deploy time.
    ///
    /// # Examples
    ///
    /// ```
    /// use apprunner::secrets::SecretSource;
    ///
    /// assert!(matches!(SecretSource::injected("APP_SECRETS"), SecretSource::Injected(_)));
    /// ```
    pub fn injected(var: impl Into<String>) -> Self {
        Self::Injected(var.into())
    }
}

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SecretsManager(id) => write!(f, "secret `{id}`"),
            Self::Injected(var) => write!(f, "injected secret in `{var}`"),
        }
    }
}

/// What one declaration puts into the environment.
///
/// # Examples
///
/// ```
/// use apprunner::secrets::{Plan, Target};
///
/// let plan = Plan::new().mappings("JWT_SECRET=my-app/jwt#key")?;
/// assert_eq!(
///     plan.declarations()[0].target(),
///     &Target::Var { name: "JWT_SECRET".into(), key: Some("key".into()) }
/// );
/// # Ok::<(), apprunner::secrets::SecretsError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Target {
    /// Expand RDS-style JSON into `DB_USER`, `DB_PASSWORD`, `DB_HOST`, `DB_PORT`,
    /// `DB_DATABASE` and `DATABASE_URL`.
    Rds,
    /// Set one variable to the whole secret text, or to one key of its JSON object.
    Var {
        /// The variable to set.
        name: String,
        /// The JSON key to take; `None` takes the whole secret text.
        key: Option<String>,
    },
}

impl Target {
    /// The variables this target may set.
    pub(crate) fn vars(&self) -> Vec<&str> {
        match self {
            Self::Rds => RDS_VARS.to_vec(),
            Self::Var { name, .. } => vec![name.as_str()],
        }
    }
}

/// One secret and what to set from it.
///
/// # Examples
///
/// ```
/// use apprunner::secrets::{Plan, SecretSource, Target};
///
/// let plan = Plan::new().rds(SecretSource::secrets_manager("prod/db"));
/// let declaration = &plan.declarations()[0];
/// assert_eq!(declaration.source(), &SecretSource::secrets_manager("prod/db"));
/// assert_eq!(declaration.target(), &Target::Rds);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Declaration {
    source: SecretSource,
    target: Target,
}

impl Declaration {
    /// Where the secret comes from.
    ///
    /// # Examples
    ///
    /// ```
    /// # use apprunner::secrets::{Plan, SecretSource};
    /// let plan = Plan::new().var("TOKEN", SecretSource::injected("TOKEN_JSON"));
    /// assert_eq!(plan.declarations()[0].source(), &SecretSource::injected("TOKEN_JSON"));
    /// ```
    pub fn source(&self) -> &SecretSource {
        &self.source
    }

    /// What is set from it.
    ///
    /// # Examples
    ///
    /// ```
    /// # use apprunner::secrets::{Plan, SecretSource, Target};
    /// let plan = Plan::new().var("TOKEN", SecretSource::secrets_manager("app/token"));
    /// assert_eq!(
    ///     plan.declarations()[0].target(),
    ///     &Target::Var { name: "TOKEN".into(), key: None }
    /// );
    /// ```
    pub fn target(&self) -> &Target {
        &self.target
    }
}

/// The secrets to put into the environment at start-up, declared in code or read from the
/// environment ([`Plan::from_env`]), and applied by [`bootstrap`](super::bootstrap).
///
/// Variables that are already set keep their value unless [`overwrite(true)`](Plan::overwrite),
/// so a plain `DATABASE_URL` for local development keeps working. An empty plan fetches nothing.
///
/// # Examples
///
/// ```
/// use apprunner::secrets::{Plan, SecretSource};
///
/// let plan = Plan::new()
///     // RDS JSON → DB_USER, DB_PASSWORD, DB_HOST, DB_PORT, DB_DATABASE, DATABASE_URL
///     .rds(SecretSource::secrets_manager("prod/users-db"))
///     // one key of a JSON secret
///     .var_from_key("JWT_SECRET", SecretSource::secrets_manager("prod/jwt"), "signing_key")
///     // a whole secret that App Runner injected as JSON text into API_KEYS_JSON
///     .var("API_KEYS", SecretSource::injected("API_KEYS_JSON"));
/// assert_eq!(plan.declarations().len(), 3);
/// ```
#[derive(Clone, Debug)]
pub struct Plan {
    declarations: Vec<Declaration>,
    overwrite: bool,
    timeout: Duration,
}

impl Default for Plan {
    fn default() -> Self {
        Self::new()
    }
}

impl Plan {
    /// The default time allowed for all Secrets Manager calls of one
    /// [`bootstrap`](super::bootstrap): 30 s.
    ///
    /// # Examples
    ///
    /// ```
    /// use apprunner::secrets::Plan;
    ///
    /// assert_eq!(Plan::new().timeout_duration(), Plan::DEFAULT_TIMEOUT);
    /// ```
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

    /// An empty plan: nothing is fetched, nothing is set.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(apprunner::secrets::Plan::new().is_empty());
    /// ```
    pub fn new() -> Self {
        Self {
            declarations: Vec::new(),
            overwrite: false,
            timeout: Self::DEFAULT_TIMEOUT,
        }
    }

    /// Reads the declarations from the environment:
    ///
    /// - [`DB_SECRET`] (injected RDS JSON) or else [`DB_SECRET_NAME`] (name or ARN to fetch):
    ///   RDS expansion into `DB_*` and `DATABASE_URL`;
    /// - [`APPRUNNER_SECRETS`]: general mappings in the [`Plan::mappings`] syntax.
    ///
    /// Empty variables count as unset.
    ///
    /// # Errors
    ///
    /// [`SecretsError::InvalidConfig`] if a variable is not UTF-8 or `APPRUNNER_SECRETS` is
    /// malformed.
    ///
    /// # Examples
    ///
    /// ```
    /// let plan = apprunner::secrets::Plan::from_env()?;
    /// println!("{} secrets declared", plan.declarations().len());
    /// # Ok::<(), apprunner::secrets::SecretsError>(())
    /// ```
    pub fn from_env() -> Result<Self, SecretsError> {
        Self::from_lookup(|name| std::env::var_os(name))
    }

    pub(crate) fn from_lookup(
        lookup: impl Fn(&str) -> Option<std::ffi::OsString>,
    ) -> Result<Self, SecretsError> {
        let get = |name: &str| -> Result<Option<String>, SecretsError> {
            match lookup(name) {
                None => Ok(None),
                Some(value) => match value.into_string() {
                    Ok(value) if value.trim().is_empty() => Ok(None),
                    Ok(value) => Ok(Some(value)),
                    Err(_) => Err(SecretsError::invalid_config(name, "the value is not UTF-8")),
                },
            }
        };
        let mut plan = Self::new();
        if get(DB_SECRET)?.is_some() {
            plan = plan.rds(SecretSource::injected(DB_SECRET));
        } else if let Some(id) = get(DB_SECRET_NAME)? {
            plan = plan.rds(SecretSource::secrets_manager(id.trim()));
        }
        if let Some(spec) = get(APPRUNNER_SECRETS)? {
            plan = plan.parse_mappings(APPRUNNER_SECRETS, &spec)?;
        }
        Ok(plan)
    }

    /// Expands an RDS-style secret into `DB_USER`, `DB_PASSWORD`, `DB_HOST`, `DB_PORT`,
    /// `DB_DATABASE` and `DATABASE_URL` (user and password percent-encoded, scheme from
    /// `engine`).
    ///
    /// # Examples
    ///
    /// ```
    /// use apprunner::secrets::{Plan, SecretSource};
    ///
    /// let plan = Plan::new().rds(SecretSource::injected("DB_SECRET"));
    /// assert!(!plan.is_empty());
    /// ```
    pub fn rds(mut self, source: SecretSource) -> Self {
        self.declarations.push(Declaration {
            source,
            target: Target::Rds,
        });
        self
    }

    /// Sets `name` to the whole text of a secret.
    ///
    /// # Examples
    ///
    /// ```
    /// use apprunner::secrets::{Plan, SecretSource};
    ///
    /// let plan = Plan::new().var("API_KEY", SecretSource::secrets_manager("prod/api-key"));
    /// assert_eq!(plan.declarations().len(), 1);
    /// ```
    pub fn var(mut self, name: impl Into<String>, source: SecretSource) -> Self {
        self.declarations.push(Declaration {
            source,
            target: Target::Var {
                name: name.into(),
                key: None,
            },
        });
        self
    }

    /// Sets `name` to one key of a secret's JSON object.
    ///
    /// # Examples
    ///
    /// ```
    /// use apprunner::secrets::{Plan, SecretSource};
    ///
    /// let plan = Plan::new().var_from_key("JWT_SECRET", SecretSource::secrets_manager("prod/jwt"), "key");
    /// assert_eq!(plan.declarations().len(), 1);
    /// ```
    pub fn var_from_key(
        mut self,
        name: impl Into<String>,
        source: SecretSource,
        key: impl Into<String>,
    ) -> Self {
        self.declarations.push(Declaration {
            source,
            target: Target::Var {
                name: name.into(),
                key: Some(key.into()),
            },
        });
        self
    }

    /// Adds mappings written in the `APPRUNNER_SECRETS` syntax: entries `VAR=SOURCE[#KEY]`
    /// separated by commas or newlines, where `SOURCE` is a secret name or ARN, or
    /// `env:OTHER_VAR` for a secret injected into `OTHER_VAR` at deploy time, and `#KEY`
    /// takes one key of the secret's JSON object instead of its whole text.
    ///
    /// ```text
    /// APPRUNNER_SECRETS="JWT_SECRET=my-app/jwt#key, API_KEY=my-app/api-key, SMTP_PASSWORD=env:SMTP_JSON#password"
    /// ```
    ///
    /// Secret names cannot contain `,`, `#` or `:` (ARNs start with `arn:`), so the syntax is
    /// unambiguous; `VAR` must be a letter or `_` followed by letters, digits and `_`.
    ///
    /// # Errors
    ///
    /// [`SecretsError::InvalidConfig`] naming the malformed entry.
    ///
    /// # Examples
    ///
    /// ```
    /// use apprunner::secrets::{Plan, SecretSource, Target};
    ///
    /// let plan = Plan::new().mappings("JWT_SECRET=my-app/jwt#key,API_KEY=env:API_JSON")?;
    /// let d = plan.declarations();
    /// assert_eq!(d[0].source(), &SecretSource::secrets_manager("my-app/jwt"));
    /// assert_eq!(d[1].source(), &SecretSource::injected("API_JSON"));
    /// assert_eq!(d[1].target(), &Target::Var { name: "API_KEY".into(), key: None });
    /// # Ok::<(), apprunner::secrets::SecretsError>(())
    /// ```
    pub fn mappings(self, spec: &str) -> Result<Self, SecretsError> {
        self.parse_mappings("Plan::mappings", spec)
    }

    fn parse_mappings(mut self, origin: &str, spec: &str) -> Result<Self, SecretsError> {
        for entry in spec.split([',', '\n']).map(str::trim) {
            if entry.is_empty() {
                continue;
            }
            let Some((name, reference)) = entry.split_once('=') else {
                return Err(SecretsError::invalid_config(
                    origin,
                    format!("entry `{entry}` is not of the form VAR=secret[#key]"),
                ));
            };
            let name = name.trim();
            if let Err(reason) = check_var_name(name) {
                return Err(SecretsError::invalid_config(
                    origin,
                    format!("entry `{entry}`: {reason}"),
                ));
            }
            let (source, key) = match reference.trim().split_once('#') {
                Some((source, key)) => (source.trim(), Some(key.trim())),
                None => (reference.trim(), None),
            };
            if key == Some("") {
                return Err(SecretsError::invalid_config(
                    origin,
                    format!("entry `{entry}`: nothing after `#`; write VAR=secret#key"),
                ));
            }
            let source = match source.strip_prefix("env:") {
                Some(var) => {
                    let var = var.trim();
                    if let Err(reason) = check_var_name(var) {
                        return Err(SecretsError::invalid_config(
                            origin,
                            format!("entry `{entry}`: after `env:`, {reason}"),
                        ));
                    }
                    SecretSource::injected(var)
                }
                None if source.is_empty() => {
                    return Err(SecretsError::invalid_config(
                        origin,
                        format!("entry `{entry}`: no secret name or ARN after `=`"),
                    ));
                }
                None => SecretSource::secrets_manager(source),
            };
            self.declarations.push(Declaration {
                source,
                target: Target::Var {
                    name: name.to_owned(),
                    key: key.map(str::to_owned),
                },
            });
        }
        Ok(self)
    }

    /// Whether variables that are already set are replaced (default: `false`, they win).
    ///
    /// # Examples
    ///
    /// ```
    /// use apprunner::secrets::{Plan, SecretSource};
    ///
    /// let plan = Plan::new().rds(SecretSource::secrets_manager("prod/db")).overwrite(true);
    /// assert!(plan.overwrites());
    /// ```
    pub fn overwrite(mut self, overwrite: bool) -> Self {
        self.overwrite = overwrite;
        self
    }

    /// Whether variables that are already set are replaced.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!apprunner::secrets::Plan::new().overwrites());
    /// ```
    pub fn overwrites(&self) -> bool {
        self.overwrite
    }

    /// The time allowed for all Secrets Manager calls of one bootstrap
    /// (default [`Plan::DEFAULT_TIMEOUT`], 30 s).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use apprunner::secrets::Plan;
    ///
    /// let plan = Plan::new().timeout(Duration::from_secs(5));
    /// assert_eq!(plan.timeout_duration(), Duration::from_secs(5));
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The time allowed for all Secrets Manager calls of one bootstrap.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use apprunner::secrets::Plan;
    ///
    /// assert_eq!(Plan::new().timeout_duration(), Duration::from_secs(30));
    /// ```
    pub fn timeout_duration(&self) -> Duration {
        self.timeout
    }

    /// Whether nothing is declared.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(apprunner::secrets::Plan::new().mappings(" , ")?.is_empty());
    /// # Ok::<(), apprunner::secrets::SecretsError>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.declarations.is_empty()
    }

    /// The declarations, in order.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(apprunner::secrets::Plan::new().declarations().is_empty());
    /// ```
    pub fn declarations(&self) -> &[Declaration] {
        &self.declarations
    }

    /// Checks variable names and that no variable is set by two declarations.
    pub(crate) fn validate(&self) -> Result<(), SecretsError> {
        let mut seen = BTreeSet::new();
        for declaration in &self.declarations {
            if let SecretSource::Injected(var) = &declaration.source {
                check_var_name(var).map_err(|reason| {
                    SecretsError::invalid_config("Plan", format!("injected variable: {reason}"))
                })?;
            }
            if let SecretSource::SecretsManager(id) = &declaration.source
                && id.trim().is_empty()
            {
                return Err(SecretsError::invalid_config(
                    "Plan",
                    "a Secrets Manager secret name or ARN is empty",
                ));
            }
            if let Target::Var { key: Some(key), .. } = &declaration.target
                && key.is_empty()
            {
                return Err(SecretsError::invalid_config(
                    "Plan",
                    format!("empty JSON key for {}", declaration.source),
                ));
            }
            for var in declaration.target.vars() {
                check_var_name(var)
                    .map_err(|reason| SecretsError::invalid_config("Plan", reason))?;
                if !seen.insert(var) {
                    return Err(SecretsError::invalid_config(
                        "Plan",
                        format!("`{var}` is set by two declarations; keep one"),
                    ));
                }
            }
        }
        Ok(())
    }
}

fn check_var_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let valid = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a valid variable name (a letter or `_`, then letters, digits or `_`)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::ffi::OsString;

    fn plan_from(vars: &[(&str, &str)]) -> Result<Plan, SecretsError> {
        let vars: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), OsString::from(v)))
            .collect();
        Plan::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn nothing_declared_means_an_empty_plan() {
        assert!(plan_from(&[]).unwrap().is_empty());
        assert!(
            plan_from(&[("DB_SECRET_NAME", " "), ("APPRUNNER_SECRETS", "")])
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn db_secret_name_declares_rds_expansion() {
        let plan = plan_from(&[(
            "DB_SECRET_NAME",
            "arn:aws:secretsmanager:us-east-1:1:secret:db-Ab",
        )])
        .unwrap();
        assert_eq!(
            plan.declarations(),
            &[Declaration {
                source: SecretSource::secrets_manager(
                    "arn:aws:secretsmanager:us-east-1:1:secret:db-Ab"
                ),
                target: Target::Rds,
            }]
        );
    }

    #[test]
    fn injected_db_secret_wins_over_the_name() {
        let plan = plan_from(&[("DB_SECRET_NAME", "prod/db"), ("DB_SECRET", "{}")]).unwrap();
        assert_eq!(plan.declarations().len(), 1);
        assert_eq!(
            plan.declarations()[0].source(),
            &SecretSource::injected("DB_SECRET")
        );
    }

    #[test]
    fn mappings_parse_names_arns_keys_and_injected_sources() {
        let plan = plan_from(&[(
            "APPRUNNER_SECRETS",
            "JWT_SECRET=my-app/jwt#key ,\n API_KEY = other ,SIGNING=arn:aws:secretsmanager:eu-west-1:123:secret:s-AbC#k_1, SMTP=env:SMTP_JSON#password,,",
        )])
        .unwrap();
        let got: Vec<(SecretSource, Target)> = plan
            .declarations()
            .iter()
            .map(|d| (d.source().clone(), d.target().clone()))
            .collect();
        let var = |name: &str, key: Option<&str>| Target::Var {
            name: name.to_owned(),
            key: key.map(str::to_owned),
        };
        assert_eq!(
            got,
            vec![
                (
                    SecretSource::secrets_manager("my-app/jwt"),
                    var("JWT_SECRET", Some("key"))
                ),
                (SecretSource::secrets_manager("other"), var("API_KEY", None)),
                (
                    SecretSource::secrets_manager(
                        "arn:aws:secretsmanager:eu-west-1:123:secret:s-AbC"
                    ),
                    var("SIGNING", Some("k_1"))
                ),
                (
                    SecretSource::injected("SMTP_JSON"),
                    var("SMTP", Some("password"))
                ),
            ]
        );
        plan.validate().unwrap();
    }

    #[test]
    fn names_with_equals_signs_are_kept_whole() {
        // `=` is allowed in secret names; only the first one separates VAR from the source.
        let plan = Plan::new().mappings("A=team=x/secret").unwrap();
        assert_eq!(
            plan.declarations()[0].source(),
            &SecretSource::secrets_manager("team=x/secret")
        );
    }

    #[test]
    fn malformed_mappings_are_rejected_with_the_entry() {
        for (spec, needle) in [
            ("JWT_SECRET", "not of the form VAR=secret[#key]"),
            ("1BAD=x", "`1BAD` is not a valid variable name"),
            ("A-B=x", "`A-B` is not a valid variable name"),
            ("A=", "no secret name or ARN"),
            ("A=x#", "nothing after `#`"),
            ("A=env:", "after `env:`"),
        ] {
            let err = plan_from(&[("APPRUNNER_SECRETS", spec)]).unwrap_err();
            let text = err.to_string();
            assert!(text.contains("APPRUNNER_SECRETS"), "{text}");
            assert!(text.contains(needle), "{spec}: {text}");
        }
    }

    #[test]
    fn validate_rejects_duplicates_and_bad_names() {
        let dup = Plan::new()
            .rds(SecretSource::secrets_manager("db"))
            .var("DATABASE_URL", SecretSource::secrets_manager("other"));
        assert!(
            dup.validate()
                .unwrap_err()
                .to_string()
                .contains("`DATABASE_URL` is set by two")
        );
        let bad = Plan::new().var("NOT=OK", SecretSource::secrets_manager("x"));
        assert!(bad.validate().is_err());
        let empty = Plan::new().var("OK", SecretSource::secrets_manager(" "));
        assert!(empty.validate().is_err());
    }

    #[cfg(unix)]
    #[test]
    fn non_utf8_values_are_an_error() {
        use std::os::unix::ffi::OsStringExt;
        let err = Plan::from_lookup(|name| {
            (name == "DB_SECRET_NAME").then(|| OsString::from_vec(vec![0xff, 0xfe]))
        })
        .unwrap_err();
        assert!(err.to_string().contains("DB_SECRET_NAME"), "{err}");
    }
}
