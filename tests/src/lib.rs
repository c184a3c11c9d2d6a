//! Black-box tests for lockd-rs: they drive real processes.
//!
//! The library part holds what a test and the child process it spawns must
//! agree on, such as the crash-test workload and its checker.

pub mod crash_model;
pub mod harness;
pub mod server;
