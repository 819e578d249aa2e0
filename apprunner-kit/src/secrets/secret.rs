//! `Secret<T>`: a value that does not print and is wiped when dropped.

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

/// A secret value: `Debug` and `Display` print `[REDACTED]`, the memory is zeroized on drop,
/// and the value is only reachable through [`Secret::expose`].
///
/// Copies made through [`expose`](Secret::expose) (or the process environment, once a value
/// is put there) are not covered: keep exposures short-lived.
///
/// # Examples
///
/// ```
/// use apprunner::secrets::Secret;
///
/// let password = Secret::new(String::from("hunter2"));
/// assert_eq!(format!("{password:?}"), "[REDACTED]");
/// assert_eq!(password.to_string(), "[REDACTED]");
/// assert_eq!(password.expose(), "hunter2");
/// ```
pub struct Secret<T: Zeroize>(T);

impl<T: Zeroize> Secret<T> {
    /// Wraps a value.
    ///
    /// # Examples
    ///
    /// ```
    /// use apprunner::secrets::Secret;
    ///
    /// let key = Secret::new(vec![1u8, 2, 3]);
    /// assert_eq!(key.expose().len(), 3);
    /// ```
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// Gives access to the value. Do not log it.
    ///
    /// # Examples
    ///
    /// ```
    /// use apprunner::secrets::Secret;
    ///
    /// let token = Secret::new(String::from("abc"));
    /// assert!(token.expose().starts_with('a'));
    /// ```
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T: Zeroize> From<T> for Secret<T> {
    fn from(value: T) -> Self {
        Self(value)
    }
}

impl<T: Zeroize + Clone> Clone for Secret<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T: Zeroize> Drop for Secret<T> {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl<T: Zeroize> ZeroizeOnDrop for Secret<T> {}

impl<T: Zeroize> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl<T: Zeroize> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_are_redacted() {
        let secret = Secret::new(String::from("p@ss:w/rd%#"));
        assert_eq!(format!("{secret:?}"), "[REDACTED]");
        assert_eq!(format!("{secret:#?}"), "[REDACTED]");
        assert_eq!(format!("{secret}"), "[REDACTED]");
        // Nested in a derived Debug, too.
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Config {
            password: Secret<String>,
        }
        let config = Config { password: secret };
        let printed = format!("{config:?}");
        assert!(!printed.contains("p@ss"), "{printed}");
        assert!(printed.contains("[REDACTED]"), "{printed}");
    }

    #[test]
    fn expose_and_clone_give_the_value() {
        let secret = Secret::from(String::from("value"));
        let copy = secret.clone();
        drop(secret);
        assert_eq!(copy.expose(), "value");
    }

    #[test]
    fn zeroize_wipes_the_buffer() {
        // What `Drop` calls: after it the string holds nothing.
        let mut secret = Secret::new(String::from("wipe me"));
        secret.0.zeroize();
        assert!(secret.expose().is_empty());
    }
}
