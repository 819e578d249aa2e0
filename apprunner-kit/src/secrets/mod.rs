//! AWS Secrets Manager to environment, soundly, before the runtime starts; and a run-time cache
//! for rotated credentials.
//!
//! # Declaring secrets
//!
//! A declaration names a [`SecretSource`] — a Secrets Manager secret (name or ARN), or a
//! variable into which App Runner or ECS injected a secret's text at deploy time — and a
//! [`Target`]: an RDS expansion, or one variable set to the whole text or one JSON key. Both
//! sources behave the same; the injected one needs no API call.
//!
//! From the environment ([`Plan::from_env`], used by [`bootstrap_from_env`]):
//!
//! | variable | meaning |
//! |---|---|
//! | `DB_SECRET_NAME=prod/users-db` | fetch this RDS-style secret (name or ARN) and expand it |
//! | `DB_SECRET={"username":…}` | the same JSON, injected at deploy time: expand it, no API call (wins over `DB_SECRET_NAME`) |
//! | `APPRUNNER_SECRETS=JWT_SECRET=my-app/jwt#key,API_KEY=my-app/api-key,SMTP_PASSWORD=env:SMTP_JSON#password` | general mappings `VAR=SOURCE[#KEY]`; `env:VAR` is an injected source |
//!
//! The RDS expansion turns `username`, `password`, `host`, `port`, `dbname` and `engine` into
//! `DB_USER`, `DB_PASSWORD`, `DB_HOST`, `DB_PORT`, `DB_DATABASE` and `DATABASE_URL`
//! (`postgres://` for `postgres`/`aurora-postgresql`, `mysql://` for
//! `mysql`/`mariadb`/`aurora-mysql`; user, password and database name percent-encoded).
//!
//! Variables that are already set keep their value (so a plain `DATABASE_URL` for local
//! development keeps working) unless [`Plan::overwrite`] is on, and a declaration whose variables
//! are all set fetches nothing. Nothing is fetched when nothing is declared.
//!
//! # Soundness
//!
//! `std::env::set_var` is `unsafe` in edition 2024: another thread may read the environment at
//! the same time. [`bootstrap`] is a plain (not `async`) function meant to run first in `main`:
//! it refuses to run when other threads exist (counted on Linux), fetches on its own
//! current-thread runtime, shuts that runtime down (joining its blocking threads), and only then
//! sets the variables. `#[apprunner::main]` calls [`bootstrap_from_env`] before building the
//! service's multi-thread runtime. Nothing else in the workspace may call `set_var`/`remove_var`
//! (clippy `disallowed-methods`).
//!
//! # AWS configuration
//!
//! The standard chain of `aws-config`: region from `AWS_REGION` / `AWS_DEFAULT_REGION` (or the
//! profile), credentials from the environment, profile or the instance/task role, and endpoint
//! overrides from `AWS_ENDPOINT_URL` or `AWS_ENDPOINT_URL_SECRETS_MANAGER` (for emulators such as
//! moto). The IAM role needs `secretsmanager:GetSecretValue` on each secret (and `kms:Decrypt`
//! for a customer-managed key).
//!
//! # Values never leak
//!
//! Values live in [`Secret`], whose `Debug`/`Display` print `[REDACTED]` and which is zeroized
//! on drop. Errors ([`SecretsError`]) name the secret and the cause, never a value. Every fetch
//! goes through the kit's AWS SDK interceptor ([`AwsTracing`](crate::client::AwsTracing)), like
//! any other AWS call: a CLIENT span `SecretsManager.GetSecretValue` (`rpc.system=aws-api`,
//! `rpc.service=SecretsManager`, `rpc.method=GetSecretValue`, `cloud.region`, `aws.request_id`,
//! `aws.secretsmanager.secret_id`, `aws.secretsmanager.version_stage`), never carrying the
//! value. At start-up, before telemetry exists, the interceptor records the calls and
//! [`Report::emit_spans`] starts their spans once it does.
//!
//! # Examples
//!
//! ```no_run
//! use apprunner::secrets::{self, Plan, SecretSource};
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     // Before any thread exists:
//!     let report = secrets::bootstrap(
//!         &Plan::from_env()?
//!             .var_from_key("JWT_SECRET", SecretSource::secrets_manager("my-app/jwt"), "key"),
//!     )?;
//!     tokio::runtime::Runtime::new()?.block_on(async {
//!         // … telemetry init, then:
//!         report.emit_spans("my-app");
//!         let database_url = std::env::var("DATABASE_URL")?;
//!         # let _ = database_url;
//!         Ok(())
//!     })
//! }
//! ```

mod bootstrap;
mod cache;
mod env;
mod error;
mod fetch;
mod plan;
mod rds;
mod secret;

pub use bootstrap::{Report, bootstrap, bootstrap_from_env};
pub use cache::{SecretCache, VersionStage};
pub use error::SecretsError;
pub use plan::{
    APPRUNNER_SECRETS, DB_SECRET, DB_SECRET_NAME, Declaration, Plan, SecretSource, Target,
};
pub use rds::{Engine, RdsCredentials};
pub use secret::Secret;
