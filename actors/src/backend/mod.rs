//! The storage port: what the lease actors need from a store, and nothing
//! more.
//!
//! A key is one metadata record plus documents. A document is written once
//! under an id that is never reused; committing a staged document only
//! rewrites the metadata to point at it (and deletes the document it
//! replaces) in one atomic [`WriteSet`]. Nothing is ever moved or renamed.
//! That shape fits both backends we care about:
//!
//! * the embedded logstore (`disk://`), where one write set is one atomic,
//!   group-committed batch;
//! * object stores (S3, Azure, later), where documents are plain objects
//!   written first and the metadata object is replaced with a conditional
//!   write (the [`Rev`] a caller read is the precondition).

pub mod disk;
pub mod mem;

use std::future::Future;

use bytes::Bytes;

use crate::meta::KeyMeta;

/// Errors of a storage backend.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The metadata changed since it was read: another writer got there
    /// first. Only object-store backends with several servers produce it.
    #[error("metadata of {0} changed concurrently")]
    Conflict(String),
    /// Stored bytes could not be decoded.
    #[error("stored metadata of {key} is unreadable: {reason}")]
    Corrupt {
        /// The key concerned.
        key: String,
        /// What failed.
        reason: String,
    },
    /// The underlying store failed (I/O, full disk, poisoned log).
    #[error(transparent)]
    Store(#[from] lockd_logstore::Error),
    /// A blocking task panicked or was cancelled.
    #[error("storage task failed: {0}")]
    Task(String),
}

/// Shorthand for backend results.
pub type BackendResult<T> = Result<T, BackendError>;

/// Revision of a metadata record: the precondition for replacing it. On
/// the logstore it is the sequence number of the batch that wrote it; on
/// an object store it is the object's version tag.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rev(pub String);

/// Metadata as read, with the revision to use as the next precondition.
#[derive(Debug, Clone)]
pub struct MetaRecord {
    /// The key's metadata.
    pub meta: KeyMeta,
    /// Its revision.
    pub rev: Rev,
}

/// How hard a write must try before it is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// On stable storage (fdatasync done) before the write returns: every
    /// write that answers "committed" or "staged" to a client.
    Durable,
    /// Visible at once but possibly lost in a crash, e.g. a lease grant that
    /// stages nothing and whose fencing token is covered by a durable
    /// reservation.
    Lazy,
}

/// One atomic change to a key: its new metadata, documents to add and
/// documents to delete.
#[derive(Debug, Clone)]
pub struct WriteSet {
    /// The metadata after the change.
    pub meta: KeyMeta,
    /// New documents, by id.
    pub put_docs: Vec<(String, Bytes)>,
    /// Ids of documents to delete.
    pub delete_docs: Vec<String>,
    /// How durable the write must be.
    pub durability: Durability,
}

/// What the lease layer needs from a store. Implementations must make a
/// [`WriteSet`] atomic and, for [`Durability::Durable`], durable before
/// returning.
pub trait Backend: Send + Sync + 'static {
    /// Reads the metadata of `(ns, key)`; `None` for a key never acquired.
    fn load_meta(&self, ns: &str, key: &str) -> impl Future<Output = BackendResult<Option<MetaRecord>>> + Send;

    /// Reads one document.
    fn read_doc(&self, ns: &str, key: &str, doc: &str) -> impl Future<Output = BackendResult<Option<Bytes>>> + Send;

    /// Applies a write set atomically. `expect` is the revision the caller
    /// read (`None`: the key must not exist yet). Returns the new revision.
    fn write(
        &self,
        ns: &str,
        key: &str,
        expect: Option<&Rev>,
        set: WriteSet,
    ) -> impl Future<Output = BackendResult<Rev>> + Send;

    /// Every key whose metadata says a lease is held, for the sweeper that
    /// runs after a restart.
    fn leased_keys(&self) -> impl Future<Output = BackendResult<Vec<(String, String)>>> + Send;
}
