//! The integration tests of docbrain-confluence: one test binary, a module per subject.

#![allow(clippy::disallowed_methods)] // a test client reading the simulator on loopback
#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

mod client;
mod simulator_shapes;
