//! The one error type of bottlesync. Every message names the thing at fault
//! and what is wrong with it, because operators read these in logs and Slack.

use std::time::Duration;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Clone, Debug, thiserror::Error)]
pub enum Error {
    /// A setting, flag or argument is missing or malformed.
    #[error("invalid setting {name}: {problem}")]
    Config { name: String, problem: String },

    /// The formula index could not be fetched or is not a JSON array.
    #[error("formula index {source_name}: {problem}")]
    Index {
        source_name: String,
        problem: String,
    },

    /// A hash file (ours or an external one) is unreadable or invalid.
    #[error("hash file {location}: {problem}")]
    HashFile { location: String, problem: String },

    /// The destination cannot be used (missing bucket, unwritable directory, lock held).
    #[error("destination {location}: {problem}")]
    Destination { location: String, problem: String },

    /// Reading or writing the store failed.
    #[error("store {location}: {problem}")]
    Store { location: String, problem: String },

    /// Reading or writing a ledger (the fleet's, or its in-memory stand-in)
    /// failed, or it holds something unreadable.
    #[error("ledger {location}: {problem}")]
    Ledger { location: String, problem: String },

    /// Sending to, receiving from or settling a message on a queue failed.
    #[error("queue {location}: {problem}")]
    Queue { location: String, problem: String },

    /// Asking for more workers (the ECS service) failed.
    #[error("worker capacity {location}: {problem}")]
    Capacity { location: String, problem: String },

    /// A queue message that can never be processed (malformed, or naming a
    /// run that does not exist): refused, never retried.
    #[error("invalid message: {problem}")]
    Message { problem: String },

    /// An HTTP exchange with the registry or API failed.
    #[error("{url}: {problem}")]
    Fetch {
        url: String,
        problem: String,
        /// Worth trying again (connection reset, 5xx, 429, truncated body).
        transient: bool,
        /// What the server asked us to wait (Retry-After), if anything.
        retry_after: Option<Duration>,
    },

    /// The downloaded bytes do not have the digest the index promised.
    #[error("sha256 mismatch: expected {expected}, got {actual} ({bytes} bytes)")]
    DigestMismatch {
        expected: String,
        actual: String,
        bytes: u64,
    },

    /// The work was cancelled (shutdown); nothing was committed.
    #[error("cancelled by shutdown")]
    Cancelled,

    /// A key would leave the mirror's prefix or is otherwise unusable.
    #[error("invalid object key {key:?}: {problem}")]
    Key { key: String, problem: String },
}

impl Error {
    pub fn config(name: impl Into<String>, problem: impl Into<String>) -> Self {
        Error::Config {
            name: name.into(),
            problem: problem.into(),
        }
    }

    pub fn store(location: impl Into<String>, problem: impl std::fmt::Display) -> Self {
        Error::Store {
            location: location.into(),
            problem: problem.to_string(),
        }
    }

    pub fn ledger(location: impl Into<String>, problem: impl std::fmt::Display) -> Self {
        Error::Ledger {
            location: location.into(),
            problem: problem.to_string(),
        }
    }

    pub fn queue(location: impl Into<String>, problem: impl std::fmt::Display) -> Self {
        Error::Queue {
            location: location.into(),
            problem: problem.to_string(),
        }
    }

    pub fn capacity(location: impl Into<String>, problem: impl std::fmt::Display) -> Self {
        Error::Capacity {
            location: location.into(),
            problem: problem.to_string(),
        }
    }

    pub fn message(problem: impl Into<String>) -> Self {
        Error::Message {
            problem: problem.into(),
        }
    }

    /// Whether this error means the message itself is at fault: it is
    /// refused (dead-lettered at once), where any other error is retried.
    pub fn refuses_message(&self) -> bool {
        matches!(self, Error::Message { .. })
    }

    pub fn hash_file(location: impl Into<String>, problem: impl Into<String>) -> Self {
        Error::HashFile {
            location: location.into(),
            problem: problem.into(),
        }
    }

    pub fn destination(location: impl Into<String>, problem: impl Into<String>) -> Self {
        Error::Destination {
            location: location.into(),
            problem: problem.into(),
        }
    }

    /// An HTTP 404 from a server (the HTTP adapters report a status as
    /// `HTTP <code> <reason>`): the document does not exist, which callers
    /// may treat as an answer rather than a failure.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Fetch { problem, .. } if problem.starts_with("HTTP 404"))
    }

    pub fn permanent_fetch(url: impl Into<String>, problem: impl Into<String>) -> Self {
        Error::Fetch {
            url: url.into(),
            problem: problem.into(),
            transient: false,
            retry_after: None,
        }
    }

    pub fn transient_fetch(url: impl Into<String>, problem: impl Into<String>) -> Self {
        Error::Fetch {
            url: url.into(),
            problem: problem.into(),
            transient: true,
            retry_after: None,
        }
    }

    /// Whether retrying the same operation may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Fetch {
                transient: true,
                ..
            }
        )
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Fetch { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}
