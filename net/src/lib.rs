//! The network edge of lockd-rs.
//!
//! [`server`] turns HTTP requests (HTTP/1.1 and HTTP/2, TCP or Unix
//! sockets) into messages for the lease actors of `lockd-actors` and their
//! replies back into lockd v0.9 wire responses; it holds no domain logic of
//! its own. [`client`] is the Rust SDK. Both share [`wire`], so the server
//! and its clients agree on one definition of every body and header.

pub mod client;
pub mod server;
pub mod wire;
