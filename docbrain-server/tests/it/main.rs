//! The integration tests of docbrain-server: one test binary, a module per subject.

#![allow(clippy::disallowed_methods)] // reads answers the test asked for
#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

mod convergence;
#[allow(dead_code)] // the stand-in serves more than the tests use
mod fake;
mod kill;
mod mcp;
mod permissions;
mod providers;
mod search_keys;
mod server;
mod store_health;
mod support;
mod webhook;
