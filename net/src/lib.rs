//! The network edge of lockd-rs.
//!
//! It turns HTTP requests (HTTP/1.1 and HTTP/2, TCP or Unix sockets, TLS
//! with client certificates) into messages for the actors and their replies
//! back into lockd v0.9 wire responses. It also ships the Rust client SDK,
//! so that the server and its clients share one definition of the wire
//! types.
//!
//! The front-end arrives with Foundation 3/5; until then the crate is empty
//! on purpose, so that the dependency graph of the workspace is already
//! final.
