//! Typed job handlers, registered by name: the SNS message's body names the job and carries its
//! payload as JSON (`{"job": "welcome", "payload": {…}}`), which is decoded into the handler's
//! own type.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A job's error, as a handler returns it.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

type JobFuture = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;

/// A registered handler: decodes the payload, then runs.
trait Handler: Send + Sync {
    fn call(&self, payload: serde_json::Value) -> Result<JobFuture, serde_json::Error>;
}

struct TypedHandler<F, P> {
    f: F,
    _payload: std::marker::PhantomData<fn(P)>,
}

impl<F, P, Fut, E> Handler for TypedHandler<F, P>
where
    F: Fn(P) -> Fut + Send + Sync,
    P: DeserializeOwned,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Into<BoxError>,
{
    fn call(&self, payload: serde_json::Value) -> Result<JobFuture, serde_json::Error> {
        let payload: P = serde_json::from_value(payload)?;
        let fut = (self.f)(payload);
        Ok(Box::pin(async move { fut.await.map_err(Into::into) }))
    }
}

/// The handlers by job name.
#[derive(Clone, Default)]
pub(crate) struct Registry(HashMap<String, Arc<dyn Handler>>);

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// Why a job could not be started.
#[derive(Debug)]
pub(crate) enum StartError {
    /// No handler has this name.
    UnknownJob,
    /// The payload does not decode into the handler's type.
    BadPayload(serde_json::Error),
}

impl Registry {
    pub(crate) fn insert<P, F, Fut, E>(&mut self, name: &str, f: F)
    where
        P: DeserializeOwned + 'static,
        F: Fn(P) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        self.0.insert(
            name.to_owned(),
            Arc::new(TypedHandler {
                f,
                _payload: std::marker::PhantomData,
            }),
        );
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The job's future, ready to run.
    pub(crate) fn start(&self, envelope: Envelope) -> Result<JobFuture, StartError> {
        let handler = self.0.get(&envelope.job).ok_or(StartError::UnknownJob)?;
        handler
            .call(envelope.payload)
            .map_err(StartError::BadPayload)
    }
}

/// The body of a job's SNS message.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Envelope {
    /// The job's name.
    pub(crate) job: String,
    /// Its payload.
    #[serde(default)]
    pub(crate) payload: serde_json::Value,
    /// The publisher's trace context, as the propagators wrote it (`traceparent`,
    /// `X-Amzn-Trace-Id`): in the body too, not only in the message attributes, as some
    /// deliveries drop attributes (raw delivery, emulators).
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub(crate) trace: HashMap<String, String>,
}
