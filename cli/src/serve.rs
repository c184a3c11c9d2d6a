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
use lockd_logstore::{EncryptionOptions, LogStore, Options};
use lockd_net::server::{serve, shutdown_signal, ListenSpec, Listener, ServerConfig, TcpFamily};
use tracing::{info, warn};

use crate::config_file;
use crate::error::CliError;
use crate::logging;
use crate::resolve::{Family, Listen, RawSettings, ServerSettings, Store};
use crate::security::{self, Security};
use crate::verify_store;

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
    let security = security::prepare(&settings)?;
    if settings.disable_storage_encryption {
        warn!("--disable-storage-encryption: values are stored in plaintext (testing only)");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("lockd-worker")
        .build()
        .map_err(|e| CliError::Startup(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(start(settings, security))
}

/// Reads the config file `--config` names (or the default one, if it
/// exists) and merges it under the flags and environment.
pub(crate) fn load_settings(matches: &ArgMatches) -> Result<ServerSettings, CliError> {
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

async fn start(s: ServerSettings, security: Security) -> Result<(), CliError> {
    // Installed before anything slow, so a supervisor that stops the server
    // right after starting it still gets a graceful shutdown.
    let shutdown = shutdown_signal();
    let lease = LeaseConfig {
        default_namespace: s.default_namespace.clone(),
        default_ttl_seconds: s.default_ttl_seconds,
        max_ttl_seconds: s.max_ttl_seconds,
        acquire_block: s.acquire_block,
        ..LeaseConfig::default()
    };
    match &s.store {
        Store::Mem => run(Arc::new(MemBackend::new()), lease, &s, &security, None, shutdown).await?,
        Store::Disk(dir) => {
            let store = open_disk(dir, &s, &security).await?;
            check_store(&store, dir).await?;
            let io = store.io_path().to_string();
            let backend = DiskBackend::new(Arc::clone(&store), DISK_INLINE_MAX);
            run(Arc::new(backend), lease, &s, &security, Some(io), shutdown).await?;
            tokio::task::spawn_blocking(move || store.sync())
                .await
                .map_err(|e| CliError::Startup(format!("final store sync did not run: {e}")))?
                .map_err(|e| CliError::Startup(format!("final store sync failed: {e}")))?;
        }
    }
    info!("shutdown complete");
    Ok(())
}

/// Creates the data directory (0700, parents too) and opens the logstore,
/// encrypted when `security` has a storage key. Opening replays the log,
/// so it runs on the blocking pool.
pub(crate) async fn open_disk(dir: &Path, s: &ServerSettings, security: &Security) -> Result<Arc<LogStore>, CliError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| CliError::Startup(format!("cannot create data directory {}: {e}", dir.display())))?;
    let path = dir.to_path_buf();
    let opts = Options {
        io: s.logstore_io,
        encryption: security.storage_key.map(|root_key| EncryptionOptions {
            root_key,
            snappy: s.storage_encryption_snappy,
        }),
        ..Options::default()
    };
    let opened = tokio::task::spawn_blocking(move || LogStore::open(&path, opts))
        .await
        .map_err(|e| CliError::Startup(format!("opening the store did not finish: {e}")))?;
    match opened {
        Ok(store) => Ok(Arc::new(store)),
        Err(lockd_logstore::Error::KeyMismatch(why)) => Err(CliError::Startup(key_mismatch(dir, &why, security))),
        Err(e) => Err(CliError::Startup(format!(
            "cannot open store in {}: {e}",
            dir.display()
        ))),
    }
}

/// The start-up refusal for a store whose encryption does not match the
/// bundle, saying which side has which key and what to do.
fn key_mismatch(dir: &Path, why: &str, security: &Security) -> String {
    let bundle = security
        .bundle_path
        .as_ref()
        .map_or_else(|| "no bundle".to_string(), |p| format!("bundle {}", p.display()));
    let advice = match security.storage_key {
        Some(_) if why.contains("without encryption") => {
            "the store holds plaintext values; start with --disable-storage-encryption to keep using it unencrypted, \
             or move it away to start an encrypted one"
                .to_string()
        }
        Some(_) => {
            format!("its storage key differs from the one in {bundle}; start with the bundle it was written with")
        }
        None => format!(
            "the store is encrypted but storage encryption is {}; start with the bundle that holds its key",
            security.encryption_note
        ),
    };
    format!("cannot open store in {}: {why}: {advice}", dir.display())
}

/// The start-up part of `lockd verify store`: permissions, a probe round
/// trip, and the first records read back (decrypted when encrypted).
async fn check_store(store: &Arc<LogStore>, dir: &Path) -> Result<(), CliError> {
    let (store, path) = (Arc::clone(store), dir.to_path_buf());
    let report =
        tokio::task::spawn_blocking(move || verify_store::run(&store, &path, Some(verify_store::STARTUP_RECORD_LIMIT)))
            .await
            .map_err(|e| CliError::Startup(format!("the store check did not finish: {e}")))?;
    if !report.passed() {
        return Err(CliError::Startup(format!(
            "store check failed for {}: {}; run `lockd verify store` for the full report",
            dir.display(),
            report.failures()
        )));
    }
    Ok(())
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
    security: &Security,
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
    let transport = match (&security.tls, &s.listen) {
        (Some(_), Listen::Tcp { .. }) => "mTLS; HTTP/1.1 and HTTP/2 via ALPN",
        (Some(_), Listen::Unix(_)) => "plain HTTP on the Unix socket: mTLS applies to TCP only",
        (None, _) if s.h2c => "plain HTTP; HTTP/1.1 and h2c",
        (None, _) => "plain HTTP; HTTP/1.1 only",
    };
    let bundle = security.bundle_path.as_ref().map(|p| p.display().to_string());
    info!(
        store = %s.store_url,
        io = io.as_deref().unwrap_or("memory"),
        leases_resumed = resumed,
        default_namespace = %s.default_namespace,
        bundle = bundle.as_deref().unwrap_or("none"),
        encryption = %security.encryption_note,
        "listening on {} ({transport})",
        listener.local_addr()
    );
    let watcher = match (&security.tls, &security.bundle_path) {
        (Some(tls), Some(path)) => Some(security::watch_denylist(path.clone(), Arc::clone(tls.denylist()))),
        _ => None,
    };
    let cfg = ServerConfig {
        json_max: s.json_max,
        payload_spool_mem: s.payload_spool_mem,
        h2c: s.h2c,
        http2_max_concurrent_streams: s.http2_max_concurrent_streams,
        max_in_flight: s.max_in_flight,
        shutdown_timeout: s.shutdown_timeout,
        tls: security.tls.clone(),
        ..ServerConfig::default()
    };
    let served = serve(listener, router, cfg, shutdown)
        .await
        .map_err(|e| CliError::Startup(format!("server stopped with an error: {e}")));
    if let Some(w) = watcher {
        w.abort();
    }
    served
}
