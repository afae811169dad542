//! What the crates that call HTTP services share: bounded [`retry`]ing with backoff and
//! jitter, honouring a server's `Retry-After` ([`parse_retry_after`]), and [`one_line`]
//! snippets of answers for error messages.
//!
//! Confluence's client, the OpenSearch store and the remote embedders use it; the core does
//! not (it speaks no HTTP).

mod retry;
mod snippet;

pub use retry::{parse_retry_after, retry, Attempt, Retried, RetryPolicy};
pub use snippet::{one_line, truncate_chars};
