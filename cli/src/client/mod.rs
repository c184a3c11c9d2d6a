//! `lockd client ...`: the lease and state API from the shell.
//!
//! Each invocation is one short-lived process, so the lease travels
//! between invocations through `LOCKD_CLIENT_*` environment variables:
//! `acquire` prints `export` lines meant for `eval`, and every later
//! command reads the key, lease id, fencing token and transaction id from
//! them when no flag is given. Text output of the commands that change the
//! lease or the state is itself shell (`export`/`unset` lines), so
//! `eval "$(lockd client update doc.json)"` keeps the environment current.
//!
//! Module map: [`inputs`] resolves flag/environment values, [`connect`]
//! builds the SDK client and turns its errors into one-line messages,
//! [`shell`] formats output, [`lease`] and [`state`] hold the commands.

use std::time::Duration;

use clap::{ArgMatches, Subcommand};

use crate::error::CliError;

mod connect;
mod inputs;
mod lease;
mod shell;
mod state;

use connect::{Conn, Globals};
use inputs::Origins;

const CLIENT_AFTER_HELP: &str = "\
Every flag can also be set through the environment variable shown next to it.
`acquire` prints `export LOCKD_CLIENT_...=` lines: eval them and the other
commands find the key, lease id, fencing token and transaction id by themselves.

Examples:
  # against a server started with no flags: https://127.0.0.1:9341 and
  # $HOME/.lockd/client.pem are found by themselves
  eval \"$(lockd client acquire --key orders --owner worker-1)\"
  eval \"$(lockd client update ./orders.json)\"     # or: ... | lockd client update
  lockd client get                                # the lease holder's view
  lockd client release                            # commit (--rollback to discard)
  lockd client get --public --key orders          # committed state, no lease

Exit status: 0 on success; 2 when a flag or variable is missing or malformed;
1 when the server refused the request (stderr: `lockd: <error code>: <detail>`),
could not be reached (`lockd: cannot reach <server>: ...`), or a local file failed.";

/// `lockd client`: the connection flags shared by every client command,
/// and the command itself.
#[derive(Debug, clap::Args)]
#[command(
    about = "Talk to a running lockd server: acquire leases, read and write state",
    subcommand_required = true,
    arg_required_else_help = true,
    after_help = CLIENT_AFTER_HELP
)]
pub(crate) struct ClientArgs {
    #[command(flatten)]
    globals: Globals,
    #[command(subcommand)]
    command: ClientCommand,
}

/// The client commands; each has its own `--help` with examples.
#[derive(Debug, Subcommand)]
enum ClientCommand {
    /// Acquire a lease and print `export LOCKD_CLIENT_...` lines for eval.
    Acquire(lease::AcquireArgs),
    /// Extend a held lease's expiry.
    Keepalive(lease::KeepaliveArgs),
    /// Release a held lease, committing (or with --rollback discarding) its staged changes.
    Release(lease::ReleaseArgs),
    /// Print a key's state document (the lease holder's view, or --public).
    Get(state::GetArgs),
    /// Stage a new state document (from a file or stdin) under a held lease.
    Update(state::UpdateArgs),
    /// Stage the deletion of a key's state under a held lease.
    Remove(state::RemoveArgs),
    /// Show a key's committed metadata: holder, version, ETag.
    Describe(state::DescribeArgs),
}

/// Runs one client command. `matches` are clap's matches for `client`,
/// used to tell which values came from the environment.
pub(crate) fn run(args: ClientArgs, matches: Option<&ArgMatches>) -> Result<(), CliError> {
    let leaf = matches.and_then(|m| m.subcommand()).map(|(_, m)| m);
    let origins = Origins::new(leaf);
    args.globals.init_logging(&origins)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Startup(format!("cannot start the async runtime: {e}")))?;
    let conn = Conn::open(&args.globals, &origins, crate::settings::home_dir().as_deref())?;
    let outcome = runtime.block_on(async {
        match args.command {
            ClientCommand::Acquire(a) => lease::acquire(&conn, a, &origins).await,
            ClientCommand::Keepalive(a) => lease::keepalive(&conn, a, &origins).await,
            ClientCommand::Release(a) => lease::release(&conn, a, &origins).await,
            ClientCommand::Get(a) => state::get(&conn, a, &origins).await,
            ClientCommand::Update(a) => state::update(&conn, a, &origins).await,
            ClientCommand::Remove(a) => state::remove(&conn, a, &origins).await,
            ClientCommand::Describe(a) => state::describe(&conn, a).await,
        }
    });
    // Pooled keep-alive connections are dropped without waiting for the
    // server to close them.
    runtime.shutdown_timeout(Duration::from_millis(100));
    outcome
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, FromArgMatches, Parser};

    use super::*;

    #[derive(Debug, Parser)]
    struct Harness {
        #[command(subcommand)]
        command: Top,
    }

    #[derive(Debug, Subcommand)]
    enum Top {
        Client(ClientArgs),
    }

    fn parse(args: &[&str]) -> Result<ClientArgs, clap::Error> {
        let matches = Harness::command().try_get_matches_from(args)?;
        let Top::Client(client) = Harness::from_arg_matches(&matches)?.command;
        Ok(client)
    }

    #[test]
    fn client_command_is_well_formed() {
        Harness::command().debug_assert();
    }

    #[test]
    fn clap_ids_are_what_origins_look_up() {
        let mut cmd = Harness::command();
        cmd.build();
        let client = cmd.find_subcommand("client").expect("client command");
        let mut checked = 0;
        for sub in std::iter::once(client).chain(client.get_subcommands()) {
            for arg in sub.get_arguments() {
                let Some(long) = arg.get_long().filter(|l| *l != "help") else {
                    continue;
                };
                assert_eq!(
                    arg.get_id().as_str(),
                    inputs::arg_id(long),
                    "{} --{long}",
                    sub.get_name()
                );
                checked += 1;
            }
        }
        assert!(checked > 40, "globals are propagated to every command: {checked}");
    }

    #[test]
    fn connection_flags_work_before_and_after_the_command() {
        let before = parse(&["lockd", "client", "--server", "h:1", "describe", "-k", "a"]).expect("parses");
        let after = parse(&["lockd", "client", "describe", "-k", "a", "--server", "h:1"]).expect("parses");
        assert_eq!(before.globals.server.as_deref(), Some("h:1"));
        assert_eq!(after.globals.server.as_deref(), Some("h:1"));
    }

    #[test]
    fn block_accepts_minus_one_as_a_value() {
        let args = parse(&["lockd", "client", "acquire", "--key", "a", "--block", "-1"]).expect("parses");
        let ClientCommand::Acquire(a) = args.command else {
            panic!("expected acquire");
        };
        assert_eq!(a.block, "-1");
    }

    #[test]
    fn unknown_output_format_is_refused() {
        let err = parse(&["lockd", "client", "release", "--output", "yaml"]).expect_err("bad format");
        assert_eq!(err.kind(), clap::error::ErrorKind::InvalidValue);
    }
}
