//! The Rust client SDK (arrives with the rest of Foundation 3/5).
