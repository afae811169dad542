//! The one error type of the core traits: a small matchable kind plus a message a user can act on.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

/// Boxed source error carried by [`Error`].
pub(crate) type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Result alias used across the core traits.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, in the few categories that drive retries and exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The thing asked for does not exist (or is not visible to this account).
    NotFound,
    /// A credential was refused; retrying will not help.
    Unauthorized,
    /// The remote side asked us to slow down; see [`Error::retry_after`].
    RateLimited,
    /// Network, timeout or a transient remote failure; retrying may help.
    Transport,
    /// Data could not be decoded or is malformed.
    Decode,
    /// A setting is missing or wrong.
    InvalidConfig,
    /// A request cannot be answered as asked (an empty question, `k` out of range): the
    /// caller's to fix, and safe to tell them.
    InvalidRequest,
    /// The index store failed or holds data this build cannot use.
    Storage,
    /// The embedding model failed.
    Embedding,
    /// A safety guard refused an operation (for example a mass deletion).
    Refused,
}

impl ErrorKind {
    /// Returns whether an operation that failed with this kind may succeed when retried.
    pub fn is_retryable(self) -> bool {
        matches!(self, Self::RateLimited | Self::Transport)
    }
}

/// An error from a fetcher, chunker, embedder, index store or the pipeline.
///
/// The message is written for the person who has to fix it; the source, when present, is
/// reported separately by error-chain printers (so it is never printed twice).
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    /// `None` when the error wraps another transparently (see [`Error::wrap`]).
    message: Option<String>,
    retry_after: Option<Duration>,
    source: Option<BoxError>,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.message, &self.source) {
            (Some(m), _) => f.write_str(m),
            (None, Some(s)) => s.fmt(f),
            (None, None) => write!(f, "{:?} error", self.kind),
        }
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        let source = self.source.as_deref()?;
        if self.message.is_some() {
            Some(source)
        } else {
            source.source()
        }
    }
}

impl Error {
    /// Returns a new error of `kind` with a message.
    pub fn new(kind: ErrorKind, message: impl fmt::Display) -> Self {
        Self {
            kind,
            message: Some(message.to_string()),
            retry_after: None,
            source: None,
        }
    }

    /// Wraps a crate's own error transparently: its message and source chain show as they are.
    pub fn wrap(kind: ErrorKind, error: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Self {
            kind,
            message: None,
            retry_after: None,
            source: Some(error.into()),
        }
    }

    /// Attaches the underlying cause.
    pub fn with_source(mut self, source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Attaches a retry-after hint (from a `Retry-After` header, for example).
    pub fn with_retry_after(mut self, delay: Duration) -> Self {
        self.retry_after = Some(delay);
        self
    }

    /// Returns the kind of this error.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Returns how long the remote side asked us to wait, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// Returns the wrapped error, when this error was made by [`Error::wrap`] or carries a
    /// source: for a caller that knows the part's error type (a front door naming the remedy).
    pub fn inner(&self) -> Option<&(dyn StdError + Send + Sync + 'static)> {
        self.source.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Inner;
    impl fmt::Display for Inner {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("disk full")
        }
    }
    impl StdError for Inner {}

    #[derive(Debug)]
    struct Outer(Inner);
    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("cannot write the index")
        }
    }
    impl StdError for Outer {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&self.0)
        }
    }

    fn chain(e: &dyn StdError) -> Vec<String> {
        let mut out = vec![e.to_string()];
        let mut cur = e.source();
        while let Some(s) = cur {
            out.push(s.to_string());
            cur = s.source();
        }
        out
    }

    #[test]
    fn wrapped_errors_print_their_chain_once() {
        let e = Error::wrap(ErrorKind::Storage, Outer(Inner));
        assert_eq!(chain(&e), ["cannot write the index", "disk full"]);
        let e = Error::new(ErrorKind::Storage, "sync failed").with_source(Inner);
        assert_eq!(chain(&e), ["sync failed", "disk full"]);
        assert_eq!(e.kind(), ErrorKind::Storage);
    }
}
