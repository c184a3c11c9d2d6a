//! Running the server: settings → logging → backend → router → HTTP.
//!
//! The router is generic over its storage backend, so [`run`] is written
//! once and instantiated for the backend `--store` selects. Shutdown order
//! matters for durability: the HTTP layer drains first (no request can
//! stage anything afterwards), then the logstore is synced, and only then
//! is "shutdown complete" logged and the process exits 0.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use clap::parser::ValueSource;
use clap::ArgMatches;
use lockd_actors::{Backend, DiskBackend, LeaseConfig, MemBackend, Router};
use lockd_logstore::{LogStore, Options};
use lockd_net::server::{serve, shutdown_signal, ListenSpec, Listener, ServerConfig, TcpFamily};
use tracing::info;

use crate::config_file;
use crate::error::CliError;
use crate::logging;
use crate::resolve::{Family, Listen, RawSettings, ServerSettings, Store};

/// Documents larger than this are written to blob files instead of inline
/// log records: 1 MiB keeps segments dense (compaction copies inline
/// values) while most lockd state documents stay inline. Must not exceed
/// the logstore's `max_inline_value` (16 MiB by default).
const DISK_INLINE_MAX: usize = 1 << 20;

/// `lockd` with no subcommand: resolve the settings and serve until
/// SIGTERM/SIGINT.
pub(crate) fn main(matches: &ArgMatches) -> Result<(), CliError> {
    let settings = load_settings(matches)?;
    logging::init(settings.log_level, settings.log_format)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("lockd-worker")
        .build()
        .map_err(|e| CliError::Startup(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(start(settings))
}

/// Reads the config file `--config` names (or the default one, if it
/// exists) and merges it under the flags and environment.
fn load_settings(matches: &ArgMatches) -> Result<ServerSettings, CliError> {
    let file = match matches.get_one::<std::path::PathBuf>("config") {
        Some(path) => {
            let explicit = matches.value_source("config") != Some(ValueSource::DefaultValue);
            config_file::load(path, explicit)?
        }
        None => None,
    };
    if let Some(f) = &file {
        f.warn_unknown();
    }
    ServerSettings::from_raw(&RawSettings::merge(matches, file.as_ref()))
}

async fn start(s: ServerSettings) -> Result<(), CliError> {
    // Installed before anything slow, so a supervisor that stops the server
    // right after starting it still gets a graceful shutdown.
    let shutdown = shutdown_signal();
    if let Some(bundle) = &s.bundle {
        info!(bundle = %bundle.display(), "--bundle is ignored: TLS is not built yet");
    }
    let lease = LeaseConfig {
        default_namespace: s.default_namespace.clone(),
        default_ttl_seconds: s.default_ttl_seconds,
        max_ttl_seconds: s.max_ttl_seconds,
        acquire_block: s.acquire_block,
        ..LeaseConfig::default()
    };
    match &s.store {
        Store::Mem => run(Arc::new(MemBackend::new()), lease, &s, None, shutdown).await?,
        Store::Disk(dir) => {
            let store = open_disk(dir, s.logstore_io).await?;
            let io = store.io_path().to_string();
            let backend = DiskBackend::new(Arc::clone(&store), DISK_INLINE_MAX);
            run(Arc::new(backend), lease, &s, Some(io), shutdown).await?;
            tokio::task::spawn_blocking(move || store.sync())
                .await
                .map_err(|e| CliError::Startup(format!("final store sync did not run: {e}")))?
                .map_err(|e| CliError::Startup(format!("final store sync failed: {e}")))?;
        }
    }
    info!("shutdown complete");
    Ok(())
}

/// Creates the data directory (0700, parents too) and opens the logstore.
/// Opening replays the log, so it runs on the blocking pool.
async fn open_disk(dir: &Path, io: lockd_logstore::IoMode) -> Result<Arc<LogStore>, CliError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| CliError::Startup(format!("cannot create data directory {}: {e}", dir.display())))?;
    let path = dir.to_path_buf();
    let opts = Options {
        io,
        ..Options::default()
    };
    tokio::task::spawn_blocking(move || LogStore::open(&path, opts))
        .await
        .map_err(|e| CliError::Startup(format!("opening the store did not finish: {e}")))?
        .map(Arc::new)
        .map_err(|e| CliError::Startup(format!("cannot open store in {}: {e}", dir.display())))
}

fn listen_spec(listen: &Listen) -> ListenSpec {
    match listen {
        Listen::Tcp { addr, family } => ListenSpec::Tcp {
            addr: addr.clone(),
            family: match family {
                Family::Any => TcpFamily::Any,
                Family::V4 => TcpFamily::V4,
                Family::V6 => TcpFamily::V6,
            },
        },
        Listen::Unix(path) => ListenSpec::Unix(path.clone()),
    }
}

/// Resumes stored leases, binds the listener and serves until `shutdown`
/// resolves, then waits for the drain. `io` names the disk write path.
async fn run<B: Backend>(
    backend: Arc<B>,
    lease: LeaseConfig,
    s: &ServerSettings,
    io: Option<String>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), CliError> {
    let router = Router::new(backend, lease);
    let resumed = router
        .sweep()
        .await
        .map_err(|e| CliError::Startup(format!("cannot resume the stored leases: {e}")))?;
    let listener = Listener::bind(&listen_spec(&s.listen))
        .await
        .map_err(|e| CliError::Startup(e.to_string()))?;
    let versions = if s.h2c { "HTTP/1.1 and h2c" } else { "HTTP/1.1 only" };
    let mtls = if s.disable_mtls {
        "off (--disable-mtls)"
    } else {
        "off (not built yet)"
    };
    info!(
        store = %s.store_url,
        io = io.as_deref().unwrap_or("memory"),
        leases_resumed = resumed,
        default_namespace = %s.default_namespace,
        mtls,
        "listening on {} (plain HTTP; {versions})",
        listener.local_addr()
    );
    let cfg = ServerConfig {
        json_max: s.json_max,
        payload_spool_mem: s.payload_spool_mem,
        h2c: s.h2c,
        http2_max_concurrent_streams: s.http2_max_concurrent_streams,
        max_in_flight: s.max_in_flight,
        shutdown_timeout: s.shutdown_timeout,
        tls: None,
        ..ServerConfig::default()
    };
    serve(listener, router, cfg, shutdown)
        .await
        .map_err(|e| CliError::Startup(format!("server stopped with an error: {e}")))
}
