//! The integration tests of docbrain-cli: one test binary, a module per subject.

#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

mod cli;
mod confluence;
