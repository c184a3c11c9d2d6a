//! `lockd-bench`: benchmarks for lockd-rs.
//!
//! `lockd-bench logstore` measures the storage engine's durable puts/s and
//! commit latency next to the raw `pwrite` + `fdatasync` limit of the same
//! disk, in one run; see `lockd-bench logstore --help` and
//! `docs/benchmarks.md`. `lockd-bench core` measures the lease core
//! in-process on `disk://` against the logstore doing the same batches.

mod chart;
mod cli;
mod core;
mod docgen;
mod engine;
mod error;
mod fsinfo;
mod http;
mod ingest;
mod json;
mod peers;
mod raw;
mod report;
mod stats;
mod suite;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = match EnvFilter::try_new(&cli.log) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("lockd-bench: --log {:?}: {e}", cli.log);
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let result = match &cli.command {
        Command::Logstore(args) => suite::run(args),
        Command::Core(args) => core::run(args),
        Command::Json(args) => ingest::run(args),
        Command::Http(args) => http::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lockd-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
