//! The integration tests of docbrain-index: one test binary, a module per subject.

#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

mod opensearch;
