//! Black-box tests for lockd-rs: they drive real processes.
