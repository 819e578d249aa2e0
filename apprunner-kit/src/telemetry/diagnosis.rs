//! [`ExportDiagnosis`]: what the exporter's HTTP client learnt about the last refused export,
//! shared by the export pipeline, the OTLP client and the SigV4 signer.

use std::sync::Mutex;

/// The cause and fix of the last refused export, as the exporter's HTTP client understood it
/// from the response (the SDK's error only has the status): reported instead of the SDK's
/// error.
#[derive(Debug, Default)]
pub(crate) struct ExportDiagnosis(Mutex<Option<String>>);

impl ExportDiagnosis {
    #[cfg(feature = "xray-otlp")]
    pub(crate) fn set(&self, line: String) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(line);
        }
    }

    pub(crate) fn take(&self) -> Option<String> {
        self.0.lock().ok().and_then(|mut slot| slot.take())
    }
}
