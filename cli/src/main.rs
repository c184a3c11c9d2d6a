//! The `lockd` binary: the lockd-rs server and its operator commands.
//!
//! `lockd` with no subcommand runs the server; its settings come from
//! flags, `LOCKD_*` environment variables, a YAML config file and built-in
//! defaults, in that order of precedence (see `docs/cli.md`). Subcommands
//! are the operator tools (`lockd config gen`) and the client
//! (`lockd client ...`): each is one variant of [`Command`] with its own
//! module, dispatched in [`main`].

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Arg, CommandFactory, FromArgMatches, Parser, Subcommand};

mod auth;
mod client;
mod config_file;
mod config_gen;
mod error;
mod logging;
mod parse;
mod resolve;
mod security;
mod serve;
mod settings;
mod setup;
mod verify_store;

const ROOT_AFTER_HELP: &str = "\
Every server flag can also be set through its environment variable (shown \
above) or as a key of the config file named after the flag (json-max: 64MiB). \
Precedence: flag > environment > config file > default.
Durations: Go syntax (30s, 1m30s, 500ms, 2h) or plain seconds (45).
Sizes: bytes (1048576) or with a unit (512KiB, 4MB, 100MiB; KB = 1000, KiB = 1024).

Examples:
  # Try it out: in-memory store on localhost
  lockd --store mem:// --listen 127.0.0.1:9341

  # Persistent store in a chosen directory, settings from the environment
  LOCKD_STORE=disk:///var/lib/lockd LOCKD_DEFAULT_TTL=1m lockd

  # Write a commented config file, edit it, then run with it
  lockd config gen && lockd --config ~/.lockd/config.yaml

  # Serve on a Unix socket with JSON logs
  lockd --listen-proto unix --listen /run/lockd.sock --log-format json

  # Containers: create the CA, bundles and a config once, then serve with it
  lockd --bootstrap /etc/lockd && lockd -c /etc/lockd/config.yaml";

/// Command line of `lockd`. Server flags are added from
/// [`settings::SETTINGS`] by [`command`], so this struct holds only what is
/// not a server setting.
#[derive(Debug, Parser)]
#[command(
    name = "lockd",
    version,
    about = "lockd-rs: leases, fencing tokens and JSON state over HTTP (lockd v0.9 compatible)",
    long_about = "lockd-rs: leases, fencing tokens and JSON state over HTTP, wire-compatible with lockd v0.9.\n\n\
                  Without a subcommand, runs the server with the flags below.",
    after_help = ROOT_AFTER_HELP,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

/// `lockd`'s subcommands; one variant and one match arm in [`main`] each.
#[derive(Debug, Subcommand)]
enum Command {
    /// Work with the server's config file.
    Config(config_gen::ConfigArgs),
    /// Talk to a running server: leases and state from the shell.
    Client(Box<client::ClientArgs>),
    /// Check that the configured store is usable and every record reads back.
    Verify(setup::VerifyArgs),
    /// Create, inspect, verify and revoke certificates and bundles for mTLS.
    Auth(auth::AuthArgs),
}

/// `-c/--config`, defaulting to `$HOME/.lockd/config.yaml`.
fn config_arg(home: Option<&Path>) -> Arg {
    let mut config = Arg::new("config")
        .short('c')
        .long("config")
        .env("LOCKD_CONFIG")
        .value_name("FILE")
        .value_parser(clap::value_parser!(PathBuf))
        .help("YAML config file (flat mapping of flag name → value); a missing default file is fine, a missing named one is an error");
    if let Some(p) = settings::default_config_path(home) {
        config = config.default_value(p.into_os_string());
    }
    config
}

/// `cmd` plus `--config` and every server setting.
fn with_server_settings(cmd: clap::Command, home: Option<&Path>) -> clap::Command {
    settings::SETTINGS
        .iter()
        .fold(cmd.arg(config_arg(home)), |cmd, s| cmd.arg(s.arg(home)))
}

/// The full clap command: [`Cli`] plus `--config`, `--bootstrap` and every
/// server setting, with defaults that depend on `home` (`$HOME`). `lockd
/// verify store` reads the same settings, so it gets the same flags.
fn command(home: Option<&Path>) -> clap::Command {
    let bootstrap = Arg::new("bootstrap")
        .long("bootstrap")
        .value_name("DIR")
        .value_parser(clap::value_parser!(PathBuf))
        .help("Create what is missing in DIR (CA, server and client bundles, config.yaml wired to them), print how to use it, and exit");
    with_server_settings(Cli::command().arg(bootstrap), home).mut_subcommand("verify", |v| {
        v.mut_subcommand("store", |st| with_server_settings(st, home))
    })
}

fn main() -> ExitCode {
    let home = settings::home_dir();
    let matches = command(home.as_deref()).get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let result = match cli.command {
        None => match matches.get_one::<PathBuf>("bootstrap") {
            Some(dir) => setup::bootstrap(dir),
            None => serve::main(&matches),
        },
        Some(Command::Verify(_)) => setup::verify_store(
            matches
                .subcommand_matches("verify")
                .and_then(|m| m.subcommand_matches("store")),
        ),
        Some(Command::Config(args)) => config_gen::run(args, home.as_deref()),
        Some(Command::Client(args)) => client::run(*args, matches.subcommand_matches("client")),
        Some(Command::Auth(args)) => auth::run(args, home.as_deref()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lockd: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_is_well_formed() {
        command(Some(Path::new("/home/t"))).debug_assert();
        command(None).debug_assert();
    }

    #[test]
    fn every_setting_is_a_flag_with_its_env_var() {
        let cmd = command(Some(Path::new("/home/t")));
        for s in settings::SETTINGS {
            let arg = cmd
                .get_arguments()
                .find(|a| a.get_long() == Some(s.key))
                .unwrap_or_else(|| panic!("no --{}", s.key));
            assert_eq!(arg.get_env().and_then(|e| e.to_str()), Some(s.env));
        }
    }

    #[test]
    fn server_flags_do_not_mix_with_subcommands() {
        let res = command(None).try_get_matches_from(["lockd", "--listen", ":1", "config", "gen", "--stdout"]);
        assert!(res.is_err(), "server flags do not mix with subcommands");
    }
}
