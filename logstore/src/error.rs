//! The one error type of the logstore.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong inside the logstore.
///
/// Variants carry the file and offset where that helps an operator find the
/// problem; callers above (the lease actors) map them to HTTP 5xx answers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call on a store file failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What the store was doing (`open`, `fdatasync`, ...).
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// Another process (or another handle in this one) holds the directory.
    #[error("store directory {0} is locked by another process (only one writer may open it)")]
    Locked(PathBuf),
    /// A record or file failed its checksum or structure check somewhere a
    /// torn tail cannot explain, so data would be lost by skipping it.
    #[error("corrupt data in {path} at offset {offset}: {reason}")]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Byte offset of the first bad byte range.
        offset: u64,
        /// What check failed.
        reason: String,
    },
    /// A write or fdatasync failed earlier; the store no longer accepts
    /// writes because it cannot know what reached the disk.
    #[error("store refuses writes after a failed write or fdatasync ({0}); reopen it")]
    Poisoned(String),
    /// The caller-supplied root key is not the one the store was written with,
    /// or encryption settings do not match the store.
    #[error("encryption key mismatch: {0}")]
    KeyMismatch(String),
    /// A value failed authenticated decryption: it was tampered with or
    /// damaged. The store never returns unauthenticated bytes.
    #[error("value of key {key:?} failed integrity check: {reason}")]
    Integrity {
        /// Printable form of the key whose value is bad.
        key: String,
        /// What failed.
        reason: String,
    },
    /// The caller asked for something the store cannot do (empty key, value
    /// too large for an inline record, bad option).
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// The store was closed (or its writer thread died) before the request
    /// completed.
    #[error("store is closed")]
    Closed,
}

/// Shorthand used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, offset: u64, reason: impl Into<String>) -> Self {
        Error::Corrupt {
            path: path.into(),
            offset,
            reason: reason.into(),
        }
    }

    /// True for errors caused by a full disk, so callers can answer
    /// "insufficient storage" rather than a generic failure.
    pub fn is_no_space(&self) -> bool {
        match self {
            Error::Io { source, .. } => source.raw_os_error() == Some(libc::ENOSPC),
            Error::Poisoned(reason) => reason.contains("No space left"),
            _ => false,
        }
    }
}
