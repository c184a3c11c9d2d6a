//! `lockd-logstore`: the durable key-value log under lockd-rs's `disk://`
//! backend.
//!
//! It is a single-writer, append-only, checksummed log with group commit.
//! It knows nothing of leases, HTTP or actors: callers hand it atomic
//! batches of puts and deletes and get back a sequence number once the
//! batch is on stable storage.
//!
//! How it is built, from the bottom up:
//!
//! * [`record`] — the 20-byte-header record with a CRC32 over header, key
//!   and value (byte layout in `docs/logstore-format.md`).
//! * segments — preallocated files of records; the last one is *active*,
//!   the others sealed and read through `mmap`.
//! * the manifest — the crash-atomic list of live segments and the index
//!   checkpoint to recover from.
//! * the writer thread — group commit: whatever queued while the previous
//!   fdatasync ran is written with one submission (io_uring, or `pwritev`
//!   where rings are unavailable or the directory is on NFS) and one
//!   fdatasync. It then hands the group to the completion thread, which
//!   applies it to the index and wakes its callers while the writer already
//!   syncs the next group. A commit returns only once its group is durable
//!   and visible to `get`.
//! * recovery — checkpoint + replay; a torn tail in the active segment is
//!   cut back to the last whole batch, corruption anywhere else fails the
//!   open with the file and offset.
//! * compaction — rewrites the live part of the oldest sealed segments,
//!   throttled, and swaps through the manifest.
//! * blobs — values too large for the log (up to any size) are streamed to
//!   their own files by the caller's thread; only a descriptor is committed.
//! * optional at-rest encryption of every value (XChaCha20-Poly1305 with
//!   HKDF-derived per-object keys, optional snappy).
//!
//! ```no_run
//! use lockd_logstore::{Batch, LogStore, Options};
//! # fn main() -> lockd_logstore::Result<()> {
//! let store = LogStore::open("/var/lib/lockd", Options::default())?;
//! let mut batch = Batch::new();
//! batch.put("ns/key/meta", r#"{"version":1}"#).put("ns/key/state", "{}");
//! let seq = store.commit(batch)?; // returns after fdatasync
//! let entry = store.get(b"ns/key/state")?.expect("just written");
//! assert_eq!(entry.seq, seq);
//! # Ok(()) }
//! ```

mod blob;
mod checkpoint;
mod compaction;
mod crypto;
mod error;
mod fsutil;
mod index;
mod maintenance;
mod manifest;
mod open;
mod options;
pub mod record;
pub mod recovery;
mod segment;
mod shared;
mod store;
mod writer;

#[cfg(test)]
mod fault_tests;

pub use blob::{Blob, BlobReader};
pub use error::{Error, Result};
pub use options::{EncryptionOptions, IoMode, Options};
pub use store::{Batch, BlobHandle, Entry, LogStore, Stats, Value};
pub use writer::io::IoPath;
