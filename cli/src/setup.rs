//! Operator commands about the server's own files: `lockd --bootstrap DIR`
//! (certificates and a config for a container image or a new host) and
//! `lockd verify store` (is the configured store usable and intact?).

use std::path::{Path, PathBuf};

use clap::{ArgMatches, Args, Subcommand};
use lockd_auth::bootstrap;

use crate::error::CliError;
use crate::resolve::Store;
use crate::{security, serve, verify_store};

const VERIFY_AFTER_HELP: &str = "\
Reads the same settings as the server (flags, LOCKD_* variables, the config file), \
opens the store, and checks: directory permissions; a durable write/read/delete of a \
probe key outside every namespace; every existing record read back (on an encrypted \
store: authenticated and decrypted with the bundle's storage key). Exit status 0 when \
every check passes, 1 otherwise. The store is locked while a server runs on it: stop \
the server first. The server runs the same checks (on its first 1000 records) at start.

Examples:
  lockd verify store
  lockd verify store --store disk:///var/lib/lockd --bundle /etc/lockd/server.pem";

/// `lockd verify ...`.
#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    #[command(subcommand)]
    command: VerifyCommand,
}

#[derive(Debug, Subcommand)]
enum VerifyCommand {
    /// Check the configured store: permissions, a write/read/delete round trip, every record readable.
    #[command(after_help = VERIFY_AFTER_HELP)]
    Store,
}

/// `lockd verify store`: `matches` holds the server settings given to it.
pub(crate) fn verify_store(matches: Option<&ArgMatches>) -> Result<(), CliError> {
    let Some(matches) = matches else {
        return Err(CliError::Missing("lockd verify: name what to verify (store)".into()));
    };
    let settings = serve::load_settings(matches)?;
    let dir = match &settings.store {
        Store::Mem => {
            println!("ok   store: mem:// keeps nothing on disk; there is nothing to verify");
            return Ok(());
        }
        Store::Disk(dir) => dir.clone(),
    };
    let security = security::storage_only(&settings)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Startup(format!("cannot start the async runtime: {e}")))?;
    let store = runtime.block_on(serve::open_disk(&dir, &settings, &security))?;
    println!("ok   open: {} (encryption {})", dir.display(), security.encryption_note);
    let report = verify_store::run(&store, &dir, None);
    print!("{report}");
    if report.passed() {
        Ok(())
    } else {
        Err(CliError::Refused(format!(
            "store {} failed verification: {}",
            dir.display(),
            report.failures()
        )))
    }
}

/// `lockd --bootstrap DIR`: fills in what is missing and prints how to
/// start the server and the client with it.
pub(crate) fn bootstrap(dir: &Path) -> Result<(), CliError> {
    let dir = absolute(dir)?;
    let quote = |p: &Path| serde_json::to_string(&p.display().to_string()).unwrap_or_default();
    let config = format!(
        "# Written by `lockd --bootstrap {dir}`. Start the server with:\n\
         #   lockd -c {config}\n\
         # Every other setting keeps its default; `lockd config gen --stdout` lists them all.\n\
         store: {store}\n\
         bundle: {bundle}\n",
        dir = dir.display(),
        config = dir.join("config.yaml").display(),
        store = serde_json::to_string(&format!("disk://{}", dir.join("data").display())).unwrap_or_default(),
        bundle = quote(&dir.join("server.pem")),
    );
    let done = bootstrap::ensure(&dir, Some(&config)).map_err(|e| CliError::Startup(format!("bootstrap: {e}")))?;
    if done.created.is_empty() {
        println!("{}: everything was already there; nothing written", dir.display());
    }
    for path in &done.created {
        println!("created {}", path.display());
    }
    println!("server: lockd -c {}", dir.join("config.yaml").display());
    println!(
        "client: LOCKD_CLIENT_BUNDLE={} lockd client acquire --key demo --owner me",
        done.client.display()
    );
    Ok(())
}

fn absolute(dir: &Path) -> Result<PathBuf, CliError> {
    if dir.is_absolute() {
        return Ok(dir.to_path_buf());
    }
    std::env::current_dir()
        .map(|cwd| cwd.join(dir))
        .map_err(|e| CliError::Startup(format!("cannot resolve {}: {e}", dir.display())))
}
