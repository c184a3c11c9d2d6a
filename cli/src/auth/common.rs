//! What every `lockd auth` command shares: the default bundle paths under
//! `$HOME/.lockd`, reading `--valid-for` and `--cn`, and turning the
//! library's errors into one `lockd: <reason>` line with the right exit
//! status.
//!
//! Keeping this in one place means every command words a missing `$HOME`,
//! a missing bundle or an unreadable file the same way, and picks exit 2
//! (fix the command line) or 1 (the work itself failed) by the same rule.

use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use lockd_auth::issue::Validity;
use lockd_auth::{files, AuthError};

use crate::error::CliError;
use crate::parse;

/// The bundle directory, `$HOME/.lockd`. Without `$HOME` there is no
/// default, so the error names the flag that makes one unnecessary.
pub(super) fn bundle_dir(home: Option<&Path>, flag: &str) -> Result<PathBuf, CliError> {
    home.map(files::default_dir).ok_or_else(|| {
        CliError::Missing(format!(
            "$HOME is not set, so --{flag} has no default; pass --{flag} FILE"
        ))
    })
}

/// The path a flag names, or `name` in the bundle directory when the flag
/// was not given.
pub(super) fn file_or_default(
    given: Option<PathBuf>,
    home: Option<&Path>,
    flag: &str,
    name: &str,
) -> Result<PathBuf, CliError> {
    match given {
        Some(path) => Ok(path),
        None => Ok(bundle_dir(home, flag)?.join(name)),
    }
}

/// Fails with a hint when `path` does not exist, so a first-time user
/// learns which command creates the file instead of reading a bare
/// "No such file or directory". Other errors are left for the loader to
/// report, with its own wording.
pub(super) fn require_file(path: &Path, what: &str, flag: &str, make: &str) -> Result<(), CliError> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == ErrorKind::NotFound => Err(CliError::Startup(format!(
            "{what} {} does not exist: {make}, or name another one with --{flag}",
            path.display()
        ))),
        _ => Ok(()),
    }
}

/// Whether a file exists at `path` (a dangling symlink counts: it still
/// takes the name).
pub(super) fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// The directory a bundle file lives in (`.` for a bare file name), where
/// its sibling bundles are looked for.
pub(super) fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// A usage error about `flag`'s `value`.
pub(super) fn invalid(flag: &'static str, value: &str, reason: impl Into<String>) -> CliError {
    CliError::InvalidValue {
        flag,
        value: value.to_string(),
        origin: String::new(),
        reason: reason.into(),
    }
}

/// A library error as the CLI reports it. `AuthError` has no notion of
/// exit status, so the rule lives here: refusing to overwrite is
/// [`CliError::Refused`] (the operator asked for something that would lose
/// a key), failed writes are [`CliError::Write`], and everything else (a
/// missing, unreadable or malformed bundle, a failed signature) means the
/// command could not do its work: [`CliError::Startup`]. All exit 1; usage
/// errors are caught before the library is called.
pub(super) fn failed(e: AuthError) -> CliError {
    match e {
        AuthError::Exists(_) => CliError::Refused(e.to_string()),
        AuthError::Io { op, path, source } => match op {
            "read" | "read directory" => CliError::Startup(format!("cannot read {}: {source}", path.display())),
            _ => CliError::Write { path, source },
        },
        other => CliError::Startup(other.to_string()),
    }
}

/// Reads `--valid-for` (Go duration or seconds). Zero and sub-second
/// periods are refused: X.509 counts whole seconds, so such a certificate
/// would be expired the moment it is written.
pub(super) fn validity(text: &str) -> Result<Validity, CliError> {
    let d = parse::duration(text).map_err(|reason| invalid("valid-for", text, reason))?;
    if d < Duration::from_secs(1) {
        return Err(invalid(
            "valid-for",
            text,
            "must be at least 1s (e.g. 8760h for a year)",
        ));
    }
    Ok(Validity::for_duration(d))
}

/// Reads `--cn`: the library refuses an empty common name only after a
/// key has been generated, and as a generation failure; checking here
/// makes it the usage error it is.
pub(super) fn common_name(text: &str) -> Result<&str, CliError> {
    if text.trim().is_empty() {
        return Err(invalid("cn", text, "must not be empty"));
    }
    Ok(text)
}

/// Writes a command's output to stdout in one go. Commands build their
/// output first because `println!` panics when the reader has gone away
/// (`lockd auth inspect server | head`); a closed pipe should end the
/// command with a one-line error like any other failed write.
pub(super) fn emit(text: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|source| CliError::Write {
            path: PathBuf::from("standard output"),
            source,
        })
}

/// Joins displayable items with `, `, or `(none)` when there are none, so
/// an empty list still reads as an answer.
pub(super) fn list<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    let parts: Vec<String> = items.into_iter().map(|i| i.to_string()).collect();
    if parts.is_empty() {
        "(none)".to_string()
    } else {
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_home_names_the_flag() {
        let err = file_or_default(None, None, "ca-in", "ca.pem").expect_err("no home");
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("--ca-in FILE"), "{err}");
        let given = file_or_default(Some(PathBuf::from("/x/ca.pem")), None, "ca-in", "ca.pem").expect("given");
        assert_eq!(given, PathBuf::from("/x/ca.pem"));
        let dflt = file_or_default(None, Some(Path::new("/h")), "ca-in", "ca.pem").expect("home");
        assert_eq!(dflt, PathBuf::from("/h/.lockd/ca.pem"));
    }

    #[test]
    fn valid_for_must_be_a_positive_duration() {
        assert!(validity("8760h").is_ok());
        assert!(validity("3600").is_ok());
        for bad in ["0", "500ms", "1y", "-1h", ""] {
            let err = validity(bad).expect_err(bad);
            assert_eq!(err.exit_code(), 2, "{bad}");
            assert!(err.to_string().starts_with("invalid --valid-for"), "{err}");
        }
    }

    #[test]
    fn errors_get_the_documented_exit_status() {
        let exists = failed(AuthError::Exists(PathBuf::from("/x/ca.pem")));
        assert_eq!(exists.exit_code(), 1);
        assert!(exists.to_string().contains("--force"), "{exists}");
        let read = failed(AuthError::io("read", "/x/ca.pem", ErrorKind::PermissionDenied.into()));
        assert!(read.to_string().starts_with("cannot read /x/ca.pem"), "{read}");
        let write = failed(AuthError::io(
            "create directory",
            "/x",
            ErrorKind::PermissionDenied.into(),
        ));
        assert!(matches!(write, CliError::Write { .. }), "{write}");
        assert_eq!(common_name(" ").expect_err("blank").exit_code(), 2);
    }

    #[test]
    fn lists_read_as_answers() {
        assert_eq!(list(Vec::<String>::new()), "(none)");
        assert_eq!(list(["a", "b"]), "a, b");
    }
}
