//! `lockd-bench`: benchmarks for lockd-rs (being written).
fn main() {}
