//! The one error type of the benchmark harness: every failure says what was
//! being done and, where there is one, on which file.

use std::path::{Path, PathBuf};

/// Why a benchmark could not run or finish.
#[derive(Debug)]
pub(crate) enum Error {
    /// A system call on a file or directory failed.
    Io {
        /// What was being done ("fdatasync", "create scratch directory", …).
        what: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The store refused to open or to commit.
    Store {
        /// What was being done.
        what: String,
        /// The store's error.
        source: lockd_logstore::Error,
    },
    /// A flag value or combination that cannot be run.
    Invalid(String),
    /// Anything else that stopped a run (a worker thread panicked, a
    /// histogram could not be built or merged).
    Other(String),
}

impl Error {
    /// An I/O error with what was being done and on which path.
    pub(crate) fn io(what: &'static str, path: &Path, source: std::io::Error) -> Error {
        Error::Io {
            what,
            path: path.to_path_buf(),
            source,
        }
    }

    /// A store error with context.
    pub(crate) fn store(what: impl Into<String>, source: lockd_logstore::Error) -> Error {
        Error::Store {
            what: what.into(),
            source,
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Io { what, path, source } => write!(f, "{what} {}: {source}", path.display()),
            Error::Store { what, source } => write!(f, "{what}: {source}"),
            Error::Invalid(m) | Error::Other(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            Error::Store { source, .. } => Some(source),
            Error::Invalid(_) | Error::Other(_) => None,
        }
    }
}

/// Result with the harness's [`Error`].
pub(crate) type Result<T> = std::result::Result<T, Error>;
