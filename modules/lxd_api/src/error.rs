//! Errors of the LXD client, each with a message a user can act on. Messages
//! name the server that was asked (LXD or Incus), so a user who runs Incus is
//! not sent looking for an LXD daemon.

use crate::Backend;

/// Everything that can go wrong talking to LXD.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad client settings (URL, certificate files, pins): nothing was sent.
    #[error("{0}")]
    Config(String),

    /// LXD could not be reached (socket missing, connection refused, TLS failure).
    #[error("cannot reach {backend} at {endpoint}: {reason}")]
    Connect {
        backend: Backend,
        endpoint: String,
        reason: String,
    },

    /// LXD answered with an error document (`{"type": "error", ...}`).
    #[error("{backend} refused {method} {path}: {message} (HTTP {code})")]
    Api {
        backend: Backend,
        method: String,
        path: String,
        code: u16,
        message: String,
    },

    /// A background operation ended in failure or was cancelled.
    #[error("{backend} operation for {method} {path} failed: {message}")]
    Operation {
        backend: Backend,
        method: String,
        path: String,
        message: String,
    },

    /// A background operation did not finish in time.
    #[error("{backend} operation for {method} {path} did not finish within {seconds} s")]
    Timeout {
        backend: Backend,
        method: String,
        path: String,
        seconds: u64,
    },

    /// LXD answered something that is not the REST protocol.
    #[error("unexpected answer from {backend} to {method} {path}: {detail}")]
    Protocol {
        backend: Backend,
        method: String,
        path: String,
        detail: String,
    },
}

impl Error {
    /// The HTTP status LXD gave, for [`Error::Api`].
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// True when LXD said the object does not exist (HTTP 404).
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }
}

pub type Result<T> = std::result::Result<T, Error>;
