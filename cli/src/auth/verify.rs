//! `lockd auth verify server|client`: offline checks that say why a TLS
//! handshake would fail, before anyone has to read a handshake error.
//!
//! The checks themselves are `lockd_auth::verify`; this module picks the
//! bundles to compare. The other side (the CA for a server bundle, the
//! server bundle for a client bundle) is optional: a named one must load,
//! a default one is used when it exists and otherwise the cross checks are
//! skipped with a note, so `lockd auth verify client` on a laptop without
//! a server bundle still checks what it can.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use lockd_auth::bundle::{CaBundle, ClientBundle, ServerBundle};
use lockd_auth::cert::unix_now;
use lockd_auth::verify::{self, Report};

use super::common::{emit, exists, failed, file_or_default, require_file};
use super::inspect::discover_client;
use crate::error::CliError;

const VERIFY_AFTER_HELP: &str = "\
Examples:
  lockd auth verify server
  lockd auth verify client --in worker-1.pem --server-in /etc/lockd/server.pem";

const SERVER_AFTER_HELP: &str = "\
Checks: validity of the certificate and its CA certificates, the serverAuth \
extended key usage, that the private key belongs to the certificate, and \
that a CA in the bundle signed it. With a CA bundle (--ca-in, or \
~/.lockd/ca.pem when it exists) also: that this CA issued the certificate \
and is the one the bundle trusts, and that both carry the same storage key. \
Prints one line per check; exit status 1 when any check fails.

Examples:
  # ~/.lockd/server.pem against ~/.lockd/ca.pem
  lockd auth verify server

  # A deployed bundle against the CA it should come from
  lockd auth verify server --in /etc/lockd/server.pem --ca-in ca.pem";

const CLIENT_AFTER_HELP: &str = "\
Checks: validity, the clientAuth extended key usage, that the private key \
belongs to the certificate, that a CA in the bundle signed it, and that its \
namespace claims parse. With a server bundle (--server-in, or \
~/.lockd/server.pem when it exists) also: that the server trusts the client's \
issuer, that the server certificate chains to the client's CA, and that the \
serial is not on the server's denylist. Without --in, the bundle a client \
would use is checked (~/.lockd/client.pem, else the first client*.pem). Exit \
status 1 when any check fails.

Examples:
  # The bundle `lockd client` would present, against ~/.lockd/server.pem
  lockd auth verify client

  # Was this client revoked on that server?
  lockd auth verify client --in worker-1.pem --server-in /etc/lockd/server.pem";

/// `lockd auth verify ...`.
#[derive(Debug, Args)]
#[command(after_help = VERIFY_AFTER_HELP)]
pub(super) struct VerifyArgs {
    /// Which kind of bundle.
    #[command(subcommand)]
    command: VerifyCommand,
}

/// The bundle kinds verify checks.
#[derive(Debug, Subcommand)]
enum VerifyCommand {
    /// Check a server bundle, and that it matches the CA bundle.
    #[command(after_help = SERVER_AFTER_HELP)]
    Server(ServerArgs),
    /// Check a client bundle, and that the server bundle would accept it.
    #[command(after_help = CLIENT_AFTER_HELP)]
    Client(ClientArgs),
}

/// Flags of `lockd auth verify server`.
#[derive(Debug, Args)]
struct ServerArgs {
    /// Server bundle to check [default: $HOME/.lockd/server.pem].
    #[arg(long = "in", value_name = "FILE")]
    input: Option<PathBuf>,
    /// CA bundle it should come from [default: $HOME/.lockd/ca.pem if it exists].
    #[arg(long, value_name = "FILE")]
    ca_in: Option<PathBuf>,
}

/// Flags of `lockd auth verify client`.
#[derive(Debug, Args)]
struct ClientArgs {
    /// Client bundle to check [default: the one a client would use, $HOME/.lockd/client*.pem].
    #[arg(long = "in", value_name = "FILE")]
    input: Option<PathBuf>,
    /// Server bundle that should accept it [default: $HOME/.lockd/server.pem if it exists].
    #[arg(long, value_name = "FILE")]
    server_in: Option<PathBuf>,
}

/// Runs `lockd auth verify ...`.
pub(super) fn run(args: VerifyArgs, home: Option<&Path>) -> Result<(), CliError> {
    match args.command {
        VerifyCommand::Server(a) => verify_server(a, home),
        VerifyCommand::Client(a) => verify_client(a, home),
    }
}

/// The other side's bundle file: the named one (which must exist), or
/// `name` in `$HOME/.lockd` when that exists, or none.
fn optional_peer(given: Option<PathBuf>, home: Option<&Path>, name: &str) -> Option<PathBuf> {
    match given {
        Some(path) => Some(path),
        None => home
            .map(|h| lockd_auth::files::default_dir(h).join(name))
            .filter(|p| exists(p)),
    }
}

/// The one-line error for a failed report: which bundle and which checks.
fn summary(what: &str, path: &Path, report: &Report) -> CliError {
    let checks: Vec<&str> = report.failures().map(|f| f.check).collect();
    CliError::Refused(format!(
        "{what} {} failed {} check(s): {}",
        path.display(),
        checks.len(),
        checks.join(", ")
    ))
}

/// Prints what was compared and the report, and turns failures into the
/// command's error.
fn finish(header: &str, what: &str, path: &Path, report: &Report) -> Result<(), CliError> {
    emit(&format!("{header}\n{report}\n"))?;
    if report.passed() {
        Ok(())
    } else {
        Err(summary(what, path, report))
    }
}

/// `lockd auth verify server`.
fn verify_server(args: ServerArgs, home: Option<&Path>) -> Result<(), CliError> {
    let path = file_or_default(args.input, home, "in", "server.pem")?;
    require_file(&path, "server bundle", "in", "create one with `lockd auth new server`")?;
    let bundle = ServerBundle::load(&path).map_err(failed)?;
    let (ca, header) = match optional_peer(args.ca_in, home, "ca.pem") {
        Some(ca_path) => {
            require_file(&ca_path, "CA bundle", "ca-in", "create one with `lockd auth new ca`")?;
            let ca = CaBundle::load(&ca_path).map_err(failed)?;
            let header = format!(
                "server bundle {} against CA bundle {}",
                path.display(),
                ca_path.display()
            );
            (Some(ca), header)
        }
        None => (
            None,
            format!(
                "server bundle {} (no CA bundle: issuer and storage key checks skipped; name one with --ca-in)",
                path.display()
            ),
        ),
    };
    let report = verify::verify_server(&bundle, ca.as_ref(), unix_now());
    finish(&header, "server bundle", &path, &report)
}

/// `lockd auth verify client`.
fn verify_client(args: ClientArgs, home: Option<&Path>) -> Result<(), CliError> {
    let path = match args.input {
        Some(p) => p,
        None => discover_client(home)?,
    };
    require_file(&path, "client bundle", "in", "create one with `lockd auth new client`")?;
    let bundle = ClientBundle::load(&path).map_err(failed)?;
    let (server, header) = match optional_peer(args.server_in, home, "server.pem") {
        Some(server_path) => {
            require_file(
                &server_path,
                "server bundle",
                "server-in",
                "create one with `lockd auth new server`",
            )?;
            let server = ServerBundle::load(&server_path).map_err(failed)?;
            let header = format!(
                "client bundle {} against server bundle {}",
                path.display(),
                server_path.display()
            );
            (Some(server), header)
        }
        None => (
            None,
            format!(
                "client bundle {} (no server bundle: issuer, server trust and denylist checks skipped; name one with --server-in)",
                path.display()
            ),
        ),
    };
    let report = verify::verify_client(&bundle, server.as_ref(), unix_now());
    finish(&header, "client bundle", &path, &report)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use lockd_auth::claims::Claims;
    use lockd_auth::issue::{self, Validity};

    use super::*;

    #[test]
    fn the_summary_names_the_failed_checks() {
        let year = Validity::for_duration(Duration::from_secs(365 * 86_400));
        let ca = issue::new_ca("ca", &year).expect("ca");
        let mut server = issue::new_server(&ca, "srv", &[], &year).expect("server");
        let client = issue::new_client(&ca, "cli", &Claims::none(), &year).expect("client");
        server.denylist.insert(client.leaf.serial.clone());
        let report = verify::verify_client(&client, Some(&server), unix_now());
        let err = finish("test", "client bundle", Path::new("c.pem"), &report).expect_err("revoked");
        assert_eq!(err.exit_code(), 1);
        assert_eq!(err.to_string(), "client bundle c.pem failed 1 check(s): denylist");
        server.denylist.clear();
        let report = verify::verify_client(&client, Some(&server), unix_now());
        assert!(finish("test", "client bundle", Path::new("c.pem"), &report).is_ok());
    }

    #[test]
    fn a_missing_default_peer_is_skipped_but_a_named_one_is_kept() {
        let home = tempfile::tempdir().expect("tempdir");
        assert_eq!(optional_peer(None, Some(home.path()), "ca.pem"), None);
        assert_eq!(optional_peer(None, None, "ca.pem"), None);
        let named = PathBuf::from("/nowhere/ca.pem");
        assert_eq!(optional_peer(Some(named.clone()), None, "ca.pem"), Some(named));
        let dir = home.path().join(".lockd");
        std::fs::create_dir(&dir).expect("mkdir");
        std::fs::write(dir.join("ca.pem"), "").expect("write");
        assert_eq!(
            optional_peer(None, Some(home.path()), "ca.pem"),
            Some(dir.join("ca.pem"))
        );
    }
}
