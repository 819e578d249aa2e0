//! AWS credentials for signing, from the `aws-config` chain (environment, profile and SSO,
//! web identity, the ECS container credentials endpoint, IMDS), cached and refreshed ahead of
//! their expiry by a task on the kit's export thread. Signing only reads the cache: an export
//! never waits on a refresh (only the very first one waits for the first load).

use std::fmt;
use std::time::{Duration, SystemTime};

use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials as _, SharedCredentialsProvider};
use tokio::sync::watch;

/// The latest credentials, kept fresh by [`spawn_refresh`]'s task.
#[derive(Clone)]
pub(crate) struct CredentialsCache {
    rx: watch::Receiver<Option<Credentials>>,
}

impl fmt::Debug for CredentialsCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the credentials themselves, not even the access key id.
        let state = match &*self.rx.borrow() {
            Some(c) => match c.expiry() {
                Some(_) => "loaded, expiring",
                None => "loaded, static",
            },
            None => "not loaded yet",
        };
        f.debug_struct("CredentialsCache")
            .field("state", &state)
            .finish()
    }
}

impl CredentialsCache {
    /// A cache that always holds `credentials` (tests).
    #[cfg(test)]
    pub(crate) fn fixed(credentials: Credentials) -> Self {
        let (_tx, rx) = watch::channel(Some(credentials));
        Self { rx }
    }

    /// The current credentials; waits up to `first_load` only while none were ever loaded.
    pub(crate) async fn current(&self, first_load: Duration) -> Option<Credentials> {
        if let Some(credentials) = self.rx.borrow().clone() {
            return Some(credentials);
        }
        let mut rx = self.rx.clone();
        tokio::time::timeout(first_load, rx.wait_for(Option::is_some))
            .await
            .ok()?
            .ok()
            .and_then(|c| c.clone())
    }
}

/// When to load again: 5 minutes before expiry for long-lived credentials (ECS hands out
/// hours), half-way for short-lived ones, never for static ones.
pub(crate) fn refresh_in(expiry: Option<SystemTime>, now: SystemTime) -> Option<Duration> {
    let remaining = expiry?.duration_since(now).unwrap_or_default();
    let wait = if remaining > Duration::from_secs(600) {
        remaining - Duration::from_secs(300)
    } else {
        remaining / 2
    };
    Some(wait.max(Duration::from_millis(200)))
}

/// `err` and its sources, `: `-separated (credential errors say what they tried only there).
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

/// Builds the default credential chain for `region` and spawns, on the current (export)
/// runtime, the task that loads credentials and refreshes them ahead of expiry. Load failures
/// are logged once (and once on recovery) and retried with backoff.
pub(crate) fn spawn_refresh(region: String) -> CredentialsCache {
    let (tx, rx) = watch::channel(None);
    tokio::spawn(async move {
        let chain = DefaultCredentialsChain::builder()
            .region(aws_config::Region::new(region))
            .build()
            .await;
        refresh_loop(SharedCredentialsProvider::new(chain), tx).await;
    });
    CredentialsCache { rx }
}

async fn refresh_loop(provider: SharedCredentialsProvider, tx: watch::Sender<Option<Credentials>>) {
    let mut failing = false;
    let mut backoff = Duration::from_millis(500);
    loop {
        match provider.provide_credentials().await {
            Ok(credentials) => {
                let next = refresh_in(credentials.expiry(), SystemTime::now());
                tx.send_replace(Some(credentials));
                if std::mem::take(&mut failing) {
                    tracing::info!(
                        target: "apprunner::telemetry",
                        "AWS credentials for signing span exports loaded again"
                    );
                }
                backoff = Duration::from_millis(500);
                match next {
                    Some(wait) => tokio::time::sleep(wait).await,
                    // Static credentials (environment, profile keys) never change.
                    None => return,
                }
            }
            Err(err) => {
                if !std::mem::replace(&mut failing, true) {
                    tracing::warn!(
                        target: "apprunner::telemetry",
                        error = %chain(&err),
                        "cannot load AWS credentials to sign span exports for X-Ray: give the \
                         service a role (on ECS the task role, through the container \
                         credentials endpoint) or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY; \
                         retrying (logged once)"
                    );
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refreshes_come_ahead_of_expiry() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let in_secs = |s| Some(now + Duration::from_secs(s));
        assert_eq!(
            refresh_in(in_secs(6 * 3600), now),
            Some(Duration::from_secs(6 * 3600 - 300))
        );
        assert_eq!(refresh_in(in_secs(8), now), Some(Duration::from_secs(4)));
        assert_eq!(
            refresh_in(Some(now - Duration::from_secs(5)), now),
            Some(Duration::from_millis(200)),
            "expired: load again soon, without spinning"
        );
        assert_eq!(refresh_in(None, now), None);
    }

    #[test]
    fn debug_shows_no_credentials() {
        let cache = CredentialsCache::fixed(Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            Some("session-token-value".into()),
            None,
            "test",
        ));
        let debug = format!("{cache:?}");
        assert!(!debug.contains("AKID") && !debug.contains("wJalr") && !debug.contains("session"));
    }
}
