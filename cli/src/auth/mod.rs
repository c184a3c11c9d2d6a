//! `lockd auth ...`: the operator's tools for lockd's mTLS identities.
//!
//! lockd runs with mutual TLS by default, so every server needs a server
//! bundle and every client a client bundle, both signed by one CA. These
//! commands create them (`new`), show them (`inspect`), check them offline
//! (`verify`) and revoke client certificates (`revoke`). The certificate
//! work is done by `lockd_auth`; this module chooses files, reads flags and
//! prints.
//!
//! Module map: [`new`], [`inspect`], [`verify`] and [`revoke`] hold one
//! command family each; [`flags`] turns list-valued flags into hosts and
//! claims; [`common`] has the default paths and the error mapping.

use std::path::Path;

use clap::{Args, Subcommand};

use crate::error::CliError;

mod common;
mod flags;
mod inspect;
mod new;
mod revoke;
mod verify;

const AUTH_AFTER_HELP: &str = "\
Bundles are PEM files kept in ~/.lockd (mode 0600): ca.pem (CA certificate, \
key and storage key), server*.pem (server certificate, key, CA certificate, \
storage key, denylist) and client*.pem (client certificate with namespace \
claims, key, CA certificate). A server started without a bundle creates all \
three on its first start; these commands make more, look inside and revoke.

Examples:
  # Set up by hand: a CA, a server bundle, a client bundle
  lockd auth new ca
  lockd auth new server --hosts lockd.internal
  lockd auth new client --cn worker-1 -n orders=rw

  # Look inside and check that they fit together
  lockd auth inspect client
  lockd auth verify client

  # Revoke a client in every server bundle (running servers pick it up)
  lockd auth revoke client 5f3a9c0e21d4b7a8e6c19f02d3b4a5c6";

/// `lockd auth`: one subcommand family per operation.
#[derive(Debug, Args)]
#[command(
    subcommand_required = true,
    arg_required_else_help = true,
    after_help = AUTH_AFTER_HELP
)]
pub(crate) struct AuthArgs {
    /// The operation.
    #[command(subcommand)]
    command: AuthCommand,
}

/// The `lockd auth` operations, each with its own `--help` and examples.
#[derive(Debug, Subcommand)]
enum AuthCommand {
    /// Create a CA, or a server or client bundle signed by it.
    #[command(subcommand_required = true, arg_required_else_help = true)]
    New(new::NewArgs),
    /// Show what a server or client bundle holds (never its keys).
    #[command(subcommand_required = true, arg_required_else_help = true)]
    Inspect(inspect::InspectArgs),
    /// Check a server or client bundle offline: dates, usages, key, issuer, denylist.
    #[command(subcommand_required = true, arg_required_else_help = true)]
    Verify(verify::VerifyArgs),
    /// Revoke client certificates by serial in the server bundles.
    #[command(subcommand_required = true, arg_required_else_help = true)]
    Revoke(revoke::RevokeArgs),
}

/// Runs `lockd auth ...`; `home` is `$HOME`, which every default path
/// hangs off.
pub(crate) fn run(args: AuthArgs, home: Option<&Path>) -> Result<(), CliError> {
    match args.command {
        AuthCommand::New(a) => new::run(a, home),
        AuthCommand::Inspect(a) => inspect::run(a, home),
        AuthCommand::Verify(a) => verify::run(a, home),
        AuthCommand::Revoke(a) => revoke::run(a, home),
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    /// A stand-alone parser for `AuthArgs`, so the tree can be checked
    /// without the rest of the binary's flags.
    #[derive(Debug, Parser)]
    struct Harness {
        #[command(flatten)]
        args: AuthArgs,
    }

    #[test]
    fn every_command_is_well_formed_and_has_examples() {
        let mut cmd = Harness::command();
        cmd.build();
        let mut stack = vec![cmd];
        let mut seen = 0;
        while let Some(c) = stack.pop() {
            // `help` is clap's own, mirroring the tree without help texts.
            if c.get_name() == "help" {
                continue;
            }
            seen += 1;
            let help = c.get_after_help().map(|h| h.to_string()).unwrap_or_default();
            assert!(help.contains("Examples:"), "`{}` has no examples", c.get_name());
            stack.extend(c.get_subcommands().cloned());
        }
        // auth itself, its four families, 3 new, 2 inspect, 2 verify, 1 revoke.
        assert_eq!(seen, 13, "commands checked");
    }

    #[test]
    fn flags_parse_as_documented() {
        let parse = |args: &[&str]| Harness::try_parse_from(args);
        assert!(parse(&["t", "new", "client", "-n", "a=r", "--namespace", "b", "--rw-all"]).is_ok());
        assert!(parse(&["t", "new", "server", "--hosts", "a,b", "--hosts", "c"]).is_ok());
        assert!(parse(&["t", "revoke", "client", "--propagate=false", "ab"]).is_ok());
        assert!(
            parse(&["t", "revoke", "client", "--propagate", "ab"]).is_ok(),
            "bare switch"
        );
        assert!(parse(&["t", "revoke", "client"]).is_err(), "a serial is required");
        assert!(parse(&["t", "inspect", "server", "--output", "yaml"]).is_err());
        assert!(parse(&["t", "verify", "client", "--in", "c.pem", "--server-in", "s.pem"]).is_ok());
    }
}
