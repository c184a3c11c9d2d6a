//! The binary's one error type.
//!
//! Every failure ends the process with a single `lockd: <reason>` line on
//! stderr, so the reason must name what to fix (the flag, the file, the
//! store) and the exit status must tell scripts whether the command line
//! was wrong (2, as clap does) or the run itself failed (1).

use std::path::PathBuf;

/// Why `lockd` stopped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// A setting's value does not parse or is out of range.
    #[error("invalid --{flag} {value:?}{origin}: {reason}")]
    InvalidValue {
        /// Flag name without dashes.
        flag: &'static str,
        /// The value as given.
        value: String,
        /// Where it came from (` (from LOCKD_X)`, or empty for a flag).
        origin: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A setting that must have a value has none.
    #[error("{0}")]
    Missing(String),
    /// The config file is missing, unreadable or malformed.
    #[error("config file {}: {reason}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A file could not be written (`config gen`).
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The operator asked for something that would lose data.
    #[error("{0}")]
    Refused(String),
    /// The server could not start or stopped with an error.
    #[error("{0}")]
    Startup(String),
    /// A `lockd client` command did not get what it asked for: the server
    /// refused (the message starts with its error code), could not be
    /// reached, or a local input/output file failed.
    #[error("{0}")]
    Request(String),
}

impl CliError {
    /// Exit status: 2 for a wrong command line or config, 1 otherwise.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            CliError::InvalidValue { .. } | CliError::Missing(_) | CliError::Config { .. } => 2,
            CliError::Write { .. } | CliError::Refused(_) | CliError::Startup(_) | CliError::Request(_) => 1,
        }
    }
}
