//! Background jobs pushed by Amazon SNS to an HTTP(S) endpoint of the service.
//!
//! SNS POSTs a JSON document ([`SnsMessage`]) for every message published to the topic, and
//! first a [`SubscriptionConfirmation`](MessageType::SubscriptionConfirmation) to confirm. Anyone
//! who can reach the endpoint can POST the same shape, so every message goes through a
//! [`Verifier`] before its `Message` is trusted: signature (SHA1withRSA or SHA256withRSA) by a
//! certificate fetched from `sns.<region>.amazonaws.com` only, and a `Timestamp` within the
//! accepted window. A rejection is a [`VerifyError`], whose [`status`](VerifyError::status) is
//! the HTTP answer and which never carries the payload.
//!
//! ```no_run
//! # async fn f(body: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
//! let verifier = apprunner::jobs::Verifier::builder()
//!     .allow_topic_arn("arn:aws:sns:us-east-1:123456789012:jobs")
//!     .build()?;
//! let message = verifier.verify(body).await?;
//! # let _ = message;
//! # Ok(()) }
//! ```

mod cert;
mod error;
mod message;
mod verify;

pub use error::{VerifierBuildError, VerifyError};
pub use message::{MessageAttribute, MessageType, SnsMessage};
pub use verify::{Verifier, VerifierBuilder};
