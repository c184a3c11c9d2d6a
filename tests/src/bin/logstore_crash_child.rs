//! Child process for the logstore crash tests (being written).
fn main() {}
