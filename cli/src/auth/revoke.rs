//! `lockd auth revoke client SERIAL...`: adding client serials to the
//! denylist that server bundles carry.
//!
//! lockd has no CRL distribution: each server bundle holds its own list,
//! and a running server re-reads its bundle file when it changes. So
//! revoking means rewriting every server bundle that should refuse the
//! client, by default all `server*.pem` files beside the named one. A
//! bundle that cannot be read must not stop the others from being
//! updated (a half-applied revocation is worse when it stops at the first
//! bad file), but it must make the command fail so scripts notice.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use lockd_auth::bundle::ServerBundle;
use lockd_auth::{files, serial};

use super::common::{emit, failed, file_or_default, invalid, list, parent_dir, require_file};
use crate::error::CliError;
use crate::parse;

const REVOKE_AFTER_HELP: &str = "\
Examples:
  # Revoke a client certificate in every ~/.lockd/server*.pem
  lockd auth revoke client 5f3a9c0e21d4b7a8e6c19f02d3b4a5c6";

const REVOKE_CLIENT_AFTER_HELP: &str = "\
Serials are hexadecimal, written as `lockd auth inspect client` prints them \
or as openssl does (upper case, colons and a 0x prefix are fine); lease \
owners of mTLS clients end with #SERIAL too. The serials are added to the \
LOCKD DENYLIST block of the --server-in bundle and, with --propagate (the \
default), of every other server*.pem in the same directory. Bundles are \
rewritten atomically and stay mode 0600. A running server checks its \
bundle file every second and reloads the denylist when it changes, so no \
restart is needed: new connections and requests from a revoked certificate \
are refused from then on. A bundle that cannot be read is reported and \
skipped, the others are still updated, and the exit status is 1.

Examples:
  # Revoke one client everywhere in ~/.lockd
  lockd auth revoke client 5f3a9c0e21d4b7a8e6c19f02d3b4a5c6

  # Several at once, as openssl prints them
  lockd auth revoke client 5F:3A:9C:0E:21 0x1b2c3d

  # Only in one bundle, leaving its neighbours alone
  lockd auth revoke client --server-in /etc/lockd/server.pem --propagate=false 1b2c3d

  # Write the result to a new file (e.g. to copy to another host)
  lockd auth revoke client --out /tmp/server.pem --propagate=false 1b2c3d";

/// `lockd auth revoke ...`.
#[derive(Debug, Args)]
#[command(after_help = REVOKE_AFTER_HELP)]
pub(super) struct RevokeArgs {
    /// What to revoke.
    #[command(subcommand)]
    command: RevokeCommand,
}

/// What can be revoked: only client certificates, since only they are
/// checked against a denylist.
#[derive(Debug, Subcommand)]
enum RevokeCommand {
    /// Add client certificate serials to the server bundles' denylist.
    #[command(after_help = REVOKE_CLIENT_AFTER_HELP)]
    Client(ClientArgs),
}

/// Flags of `lockd auth revoke client`.
#[derive(Debug, Args)]
struct ClientArgs {
    /// Serial numbers of the client certificates to revoke (hex; colons and 0x allowed).
    #[arg(value_name = "SERIAL", required = true)]
    serials: Vec<String>,
    /// Server bundle to add them to [default: $HOME/.lockd/server.pem].
    #[arg(long, value_name = "FILE")]
    server_in: Option<PathBuf>,
    /// Where to write the updated bundle [default: the --server-in file].
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Also update every other server*.pem in the --server-in file's directory.
    #[arg(
        long,
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_value = "true",
        default_missing_value = "true"
    )]
    propagate: String,
}

/// Runs `lockd auth revoke ...`.
pub(super) fn run(args: RevokeArgs, home: Option<&Path>) -> Result<(), CliError> {
    match args.command {
        RevokeCommand::Client(a) => revoke_client(a, home),
    }
}

/// The serials in canonical spelling, duplicates removed. A malformed one
/// is a usage error (exit 2) and nothing is written. It is a positional
/// argument, so the message quotes the value rather than a flag.
fn normalize_serials(given: &[String]) -> Result<BTreeSet<String>, CliError> {
    given
        .iter()
        .map(|s| serial::normalize(s).map_err(|e| CliError::Missing(e.to_string())))
        .collect()
}

/// What happened to one server bundle.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Rewritten; `added` serials were new, `total` are listed now.
    Updated { added: usize, total: usize },
    /// Already listed every serial; left as it was.
    Unchanged { total: usize },
    /// Could not be read or written.
    Failed(String),
}

/// Adds `serials` to the bundle at `from` and writes it to `to`. The file
/// is rewritten only when something changes or it goes elsewhere, so a
/// repeated revocation does not make servers reload for nothing.
fn apply(from: &Path, to: &Path, serials: &BTreeSet<String>) -> Outcome {
    let mut bundle = match ServerBundle::load(from) {
        Ok(b) => b,
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    let before = bundle.denylist.len();
    bundle.denylist.extend(serials.iter().cloned());
    let added = bundle.denylist.len() - before;
    let total = bundle.denylist.len();
    if added == 0 && from == to {
        return Outcome::Unchanged { total };
    }
    match files::write_private(to, &bundle.to_pem(), true) {
        Ok(()) => Outcome::Updated { added, total },
        Err(e) => Outcome::Failed(failed(e).to_string()),
    }
}

/// The same file, however it was spelled (`server.pem` vs `./server.pem`).
fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// The other server bundles a revocation propagates to: every one in the
/// list except those already handled (`done`).
fn propagation_targets(all: Vec<PathBuf>, done: &[&Path]) -> Vec<PathBuf> {
    all.into_iter()
        .filter(|p| !done.iter().any(|d| same_file(p, d)))
        .collect()
}

/// Adds one bundle's outcome to the output and returns whether it failed.
fn report(text: &mut String, path: &Path, outcome: &Outcome) -> bool {
    let (line, failed) = match outcome {
        Outcome::Updated { added, total } => (
            format!("updated {} ({added} added, {total} revoked in all)", path.display()),
            false,
        ),
        Outcome::Unchanged { total } => (
            format!(
                "unchanged {} (already lists them; {total} revoked in all)",
                path.display()
            ),
            false,
        ),
        Outcome::Failed(reason) => (format!("skipped {}: {reason}", path.display()), true),
    };
    text.push_str(&line);
    text.push('\n');
    failed
}

/// `lockd auth revoke client`.
fn revoke_client(args: ClientArgs, home: Option<&Path>) -> Result<(), CliError> {
    let serials = normalize_serials(&args.serials)?;
    let propagate = parse::switch(&args.propagate).map_err(|reason| invalid("propagate", &args.propagate, reason))?;
    let server_in = file_or_default(args.server_in, home, "server-in", "server.pem")?;
    require_file(
        &server_in,
        "server bundle",
        "server-in",
        "create one with `lockd auth new server`",
    )?;
    let out = args.out.unwrap_or_else(|| server_in.clone());
    // The named bundle comes first and must work: without it nothing is
    // revoked anywhere, so its failure is the command's.
    let first = apply(&server_in, &out, &serials);
    if let Outcome::Failed(reason) = first {
        return Err(CliError::Startup(reason));
    }
    let mut text = format!("revoking {}\n", list(&serials));
    report(&mut text, &out, &first);
    let mut failures = Vec::new();
    if propagate {
        match files::server_bundles(parent_dir(&server_in)) {
            Ok(all) => {
                for path in propagation_targets(all, &[&server_in, &out]) {
                    if report(&mut text, &path, &apply(&path, &path, &serials)) {
                        failures.push(path.display().to_string());
                    }
                }
            }
            Err(e) => {
                text.push_str(&format!("skipped the other server bundles: {e}\n"));
                failures.push(parent_dir(&server_in).display().to_string());
            }
        }
    }
    text.push_str("running servers reload their bundle's denylist within a second; no restart needed\n");
    emit(&text)?;
    if failures.is_empty() {
        Ok(())
    } else {
        Err(CliError::Refused(format!(
            "the revocation was not written to {} (see above); fix them and run the command again",
            failures.join(", ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_are_canonical_and_deduplicated() {
        let given = ["0A:1B".to_string(), "0xa1b".to_string(), "FF".to_string()];
        let serials = normalize_serials(&given).expect("valid");
        assert_eq!(serials.into_iter().collect::<Vec<_>>(), vec!["a1b", "ff"]);
        let err = normalize_serials(&["ff".to_string(), "xyz".to_string()]).expect_err("bad");
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("\"xyz\""), "{err}");
    }

    #[test]
    fn propagation_skips_the_files_already_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths: Vec<PathBuf> = ["server.pem", "server02.pem", "server03.pem"]
            .iter()
            .map(|n| dir.path().join(n))
            .collect();
        for p in &paths {
            std::fs::write(p, "").expect("write");
        }
        // Spelled differently from how the directory listing spells it.
        let named = dir.path().join(".").join("server.pem");
        let targets = propagation_targets(paths.clone(), &[&named, &paths[2]]);
        assert_eq!(targets, vec![paths[1].clone()]);
    }

    #[test]
    fn an_unreadable_bundle_is_a_failure_not_a_panic() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("server.pem");
        std::fs::write(&path, "not a bundle").expect("write");
        let serials = BTreeSet::from(["ab".to_string()]);
        assert!(matches!(apply(&path, &path, &serials), Outcome::Failed(_)));
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "not a bundle");
    }
}
