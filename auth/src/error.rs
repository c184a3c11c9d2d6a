//! The one error type of `lockd-auth`.

use std::path::PathBuf;

/// Why a certificate, bundle or claim could not be used. Every variant's
/// message names what was being read, so the CLI can print it as is.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// A certificate's DER could not be parsed.
    #[error("malformed certificate: {0}")]
    Certificate(String),
    /// A PEM file is malformed or lacks a block it needs.
    #[error("{what}: {reason}")]
    Bundle {
        /// Which bundle or file (e.g. `server bundle /home/a/.lockd/server.pem`).
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A namespace claim (certificate URI SAN or `--namespace` value) is malformed.
    #[error("invalid namespace claim {claim:?}: {reason}")]
    Claim {
        /// The claim as written.
        claim: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A serial number is not hexadecimal.
    #[error("invalid serial number {0:?}: expected hexadecimal digits (colons allowed)")]
    Serial(String),
    /// Generating a key or certificate failed.
    #[error("certificate generation failed: {0}")]
    Generate(String),
    /// A file could not be read or written.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done (`read`, `write`, `create directory`).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// A file exists and `--force` was not given.
    #[error("{} already exists (use --force to overwrite it)", .0.display())]
    Exists(PathBuf),
}

impl AuthError {
    /// An I/O error on `path` while doing `op`.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> AuthError {
        AuthError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// A bundle-format error about `what`.
    pub fn bundle(what: impl Into<String>, reason: impl Into<String>) -> AuthError {
        AuthError::Bundle {
            what: what.into(),
            reason: reason.into(),
        }
    }
}
