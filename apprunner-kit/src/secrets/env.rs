//! The only place in the workspace that modifies the process environment.
//!
//! `std::env::set_var` is `unsafe` in edition 2024: on most platforms another thread reading the
//! environment at the same time (`getenv` from libc, DNS resolution, the AWS SDK, …) is undefined
//! behaviour. The workspace's `clippy.toml` forbids `set_var`/`remove_var`; the call below is the
//! single allowed one, and it can only be reached with a [`SingleThreaded`] proof.

use std::marker::PhantomData;

use super::error::SecretsError;
use super::secret::Secret;

/// Proof that, when it was made, the process had exactly one thread (the current one).
///
/// Not `Send`: it cannot be carried to another thread. Only [`SingleThreaded::check`] makes one.
#[derive(Debug)]
pub(crate) struct SingleThreaded {
    _not_send: PhantomData<*const ()>,
}

impl SingleThreaded {
    /// Checks that the current thread is the only one in the process.
    ///
    /// On Linux this counts `/proc/self/task`. Elsewhere (or without `/proc`) it cannot be
    /// verified and the caller's promise — bootstrap runs first in `main` — is trusted.
    pub(crate) fn check() -> Result<Self, SecretsError> {
        match thread_count() {
            Some(threads) if threads > 1 => Err(SecretsError::ThreadsRunning { threads }),
            _ => Ok(Self {
                _not_send: PhantomData,
            }),
        }
    }
}

/// The number of threads of this process, when the platform tells.
pub(crate) fn thread_count() -> Option<usize> {
    if cfg!(target_os = "linux") {
        std::fs::read_dir("/proc/self/task")
            .ok()
            .map(|entries| entries.filter_map(Result::ok).count())
    } else {
        None
    }
}

/// Whether `name` is set (to anything, even an empty or non-UTF-8 value).
pub(crate) fn is_set(name: &str) -> bool {
    std::env::var_os(name).is_some()
}

/// Sets `name` to `value`.
///
/// `name` must be a valid variable name and `value` free of NUL bytes (callers check both, so
/// `set_var` cannot panic).
pub(crate) fn set(_proof: &SingleThreaded, name: &str, value: &Secret<String>) {
    debug_assert!(!name.is_empty() && !name.contains(['=', '\0']));
    debug_assert!(!value.expose().contains('\0'));
    #[allow(clippy::disallowed_methods)]
    #[allow(unsafe_code)]
    // SAFETY: `set_var` is sound when no other thread can read or write the environment
    // concurrently. `_proof` exists only if `/proc/self/task` listed this thread alone (or the
    // platform cannot tell, and `bootstrap`'s contract — run first in `main`, before any runtime
    // or thread is started — applies); it is not `Send`, so we are still on that thread, and
    // `bootstrap` takes it after dropping its own runtime, whose blocking threads were joined.
    // No thread can have been started between the check and this call: nothing in between spawns.
    unsafe {
        std::env::set_var(name, value.expose());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_thread_is_detected() {
        if !cfg!(target_os = "linux") {
            return;
        }
        // The test harness runs this test on its own thread, besides `main`.
        let threads = thread_count().unwrap();
        assert!(threads >= 2, "{threads}");
        let err = SingleThreaded::check().unwrap_err();
        assert!(
            matches!(err, SecretsError::ThreadsRunning { threads: n } if n >= 2),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("before building the tokio runtime")
        );
    }
}
