//! Errors of the server runner, and the JSON error bodies it answers with.

use std::{io, net::SocketAddr};

use axum::body::Bytes;

/// What can go wrong while starting or running the [`Server`](super::Server).
///
/// Requests never produce an `HttpError`: a failing request is answered with a 4xx/5xx and
/// recorded on its span.
///
/// ```
/// use apprunner::http::{HttpError, Server};
///
/// let err = Server::from_lookup(|key| (key == "PORT").then(|| "http".to_owned())).unwrap_err();
/// assert!(matches!(err, HttpError::InvalidPort { .. }));
/// assert!(err.to_string().contains("PORT"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The `PORT` environment variable is not a TCP port number.
    #[error(
        "invalid value {value:?} for PORT: expected a TCP port number (0-65535), or no PORT for 8080"
    )]
    InvalidPort {
        /// The value found.
        value: String,
    },
    /// The `HOST` environment variable is not an IP address.
    #[error(
        "invalid value {value:?} for HOST: expected an IP address to listen on, such as 0.0.0.0 \
         (every interface, the default) or 127.0.0.1 (this machine only)"
    )]
    InvalidHost {
        /// The value found.
        value: String,
    },
    /// Another setting of the server has a value it cannot use.
    #[error("invalid value {value:?} for {var}: expected {expected}")]
    InvalidVar {
        /// The environment variable.
        var: &'static str,
        /// The value found.
        value: String,
        /// What the variable takes.
        expected: &'static str,
    },
    /// The listening socket could not be opened.
    #[error(
        "cannot listen on {addr}: is another process using the port? Set PORT to a free port \
         (and HOST to an address of this machine)"
    )]
    Bind {
        /// The address the server tried to listen on.
        addr: SocketAddr,
        /// Why the operating system refused.
        #[source]
        source: io::Error,
    },
    /// The SIGTERM / SIGINT handlers could not be installed.
    #[error("cannot install the SIGTERM/SIGINT handlers needed for a graceful shutdown")]
    Signal(#[source] io::Error),
}

/// The body of every error response the kit writes itself: `{"message": "..."}`.
pub(crate) fn json_message(message: &str) -> Bytes {
    let mut body = serde_json::to_vec(&serde_json::json!({ "message": message }))
        .unwrap_or_else(|_| b"{}".to_vec());
    body.push(b'\n');
    Bytes::from(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_message_escapes_the_message() {
        let body = json_message("a \"quoted\" word");
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value["message"], "a \"quoted\" word");
    }
}
