//! The lockd-rs domain engine.
//!
//! Every key that is being worked on (leased, waited for, or holding staged
//! changes) is owned by exactly one actor, so lease hand-off, fencing and
//! staged state need no locks. Idle keys live only in the storage backend.
//! This crate also defines the storage port (`Backend`) that lets the same
//! semantics run on the embedded logstore or on shared object storage.
//!
//! The actors arrive with Foundation 2/5; until then the crate is empty on
//! purpose, so that the dependency graph of the workspace is already final.
