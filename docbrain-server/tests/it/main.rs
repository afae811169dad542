//! The integration tests of docbrain-server: one test binary, a module per subject.

#![allow(clippy::disallowed_methods)] // reads answers the test asked for
#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

mod convergence;
mod kill;
mod mcp;
mod permissions;
mod search_keys;
mod server;
mod store_health;
mod support;
mod webhook;
