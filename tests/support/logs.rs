//! [`LogCapture`]: log output collected in memory, for tests that assert on log lines.

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

/// Everything written to it, kept in memory; clones share the buffer. Give a clone to
/// `tracing_subscriber`'s `with_writer(move || capture.clone())`.
///
/// ```
/// use std::io::Write as _;
///
/// let capture = apprunner_kit_tests::LogCapture::default();
/// capture.clone().write_all(b"{\"message\":\"hello\"}\n").unwrap();
/// assert_eq!(capture.text(), "{\"message\":\"hello\"}\n");
/// ```
#[derive(Clone, Debug, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    /// What was written so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }
}

impl Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
