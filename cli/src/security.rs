//! The server's security set-up: the bundle, mTLS, the live denylist and
//! the storage root key.
//!
//! Secure by default means a newcomer's first `lockd` must serve mTLS with
//! no preparation: when mTLS is on and the default bundle
//! (`$HOME/.lockd/server.pem`) does not exist, a CA, a server bundle and a
//! client bundle are created next to it. A bundle named explicitly must
//! exist; creating one where an operator pointed would hide a typo.
//!
//! The same bundle carries the storage root key (copied from `ca.pem` when
//! the server bundle was issued), so at-rest encryption is on whenever the
//! bundle has one, even with `--disable-mtls`: a store written encrypted
//! stays readable when only the transport changes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use lockd_auth::bootstrap;
use lockd_auth::bundle::ServerBundle;
use lockd_auth::denylist::Denylist;
use lockd_net::server::tls::{self, TlsSettings};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use tracing::{info, warn};

use crate::error::CliError;
use crate::resolve::ServerSettings;

/// How often a running server looks at its bundle for a new denylist.
const DENYLIST_POLL: Duration = Duration::from_secs(1);

/// What the server runs with, derived from the settings.
pub(crate) struct Security {
    /// TLS settings (mTLS) unless `--disable-mtls`.
    pub(crate) tls: Option<TlsSettings>,
    /// The bundle file, when one was loaded.
    pub(crate) bundle_path: Option<PathBuf>,
    /// Root key for at-rest encryption, when on.
    pub(crate) storage_key: Option<[u8; 32]>,
    /// One line for the start-up log: encryption on or off, and why.
    pub(crate) encryption_note: String,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security")
            .field("mtls", &self.tls.is_some())
            .field("bundle_path", &self.bundle_path)
            .field("storage_key", &self.storage_key.map(|_| "<redacted>"))
            .finish()
    }
}

fn startup(msg: impl Into<String>) -> CliError {
    CliError::Startup(msg.into())
}

/// Loads (or, for the default path with mTLS on, bootstraps) the bundle
/// and builds the TLS settings and storage key the settings ask for.
pub(crate) fn prepare(s: &ServerSettings) -> Result<Security, CliError> {
    let bundle = match (&s.bundle, s.disable_mtls) {
        (None, false) => {
            return Err(CliError::Missing(
                "mTLS needs a server bundle: pass --bundle FILE, set HOME so one can be created under \
                 $HOME/.lockd, or pass --disable-mtls to serve plain HTTP"
                    .into(),
            ))
        }
        (Some(path), false) if !path.exists() => {
            if !is_default_bundle(path) {
                return Err(startup(format!(
                    "server bundle {} does not exist: create one with `lockd auth new server --out {0}` \
                     (or `lockd --bootstrap DIR`), or pass --disable-mtls",
                    path.display()
                )));
            }
            bootstrap_default(path)?;
            load_bundle(s)?
        }
        _ => load_bundle(s)?,
    };
    let tls = match (&bundle, s.disable_mtls) {
        (Some((path, b)), false) => Some(tls_settings(path, b)?),
        _ => None,
    };
    Ok(finish(s, bundle, tls))
}

/// Whether `path` is the default server bundle, `$HOME/.lockd/server.pem`
/// (however the setting got that value: default, config file, flag), the
/// one place a missing bundle is created instead of reported.
fn is_default_bundle(path: &Path) -> bool {
    crate::settings::home_dir().is_some_and(|home| lockd_auth::files::default_dir(&home).join("server.pem") == path)
}

/// What `lockd verify store` needs: the storage key from the bundle, if
/// one exists. Never creates anything and builds no TLS.
pub(crate) fn storage_only(s: &ServerSettings) -> Result<Security, CliError> {
    let bundle = load_bundle(s)?;
    Ok(finish(s, bundle, None))
}

/// The configured bundle. A missing default bundle is no bundle (plain
/// HTTP and no encryption); a missing bundle that was named is an error,
/// so a typo never silently turns encryption off.
fn load_bundle(s: &ServerSettings) -> Result<Option<(PathBuf, ServerBundle)>, CliError> {
    match &s.bundle {
        Some(path) if path.exists() => {
            let loaded = ServerBundle::load(path).map_err(|e| startup(e.to_string()))?;
            Ok(Some((path.clone(), loaded)))
        }
        Some(path) if !is_default_bundle(path) => Err(startup(format!(
            "server bundle {} does not exist (it is read for its storage key even with --disable-mtls)",
            path.display()
        ))),
        _ => Ok(None),
    }
}

/// Decides storage encryption from the bundle's key and the flags.
fn finish(s: &ServerSettings, bundle: Option<(PathBuf, ServerBundle)>, tls: Option<TlsSettings>) -> Security {
    let key = bundle.as_ref().and_then(|(_, b)| b.storage_key);
    let (storage_key, encryption_note) = match (key, s.disable_storage_encryption) {
        (Some(_), true) => (None, "off (--disable-storage-encryption)".to_string()),
        (None, _) => (
            None,
            match &bundle {
                Some((path, _)) => format!("off (bundle {} has no storage key)", path.display()),
                None => "off (no bundle)".to_string(),
            },
        ),
        (Some(k), false) => (
            Some(k),
            format!(
                "on (XChaCha20-Poly1305{})",
                if s.storage_encryption_snappy { ", snappy" } else { "" }
            ),
        ),
    };
    Security {
        tls,
        bundle_path: bundle.map(|(p, _)| p),
        storage_key,
        encryption_note,
    }
}

/// Creates the CA, server and client bundles beside the default server
/// bundle and says where the client bundle is.
fn bootstrap_default(server_bundle: &Path) -> Result<(), CliError> {
    let Some(dir) = server_bundle.parent() else {
        return Err(startup(format!("cannot bootstrap mTLS at {}", server_bundle.display())));
    };
    let done = bootstrap::ensure(dir, None).map_err(|e| startup(format!("mTLS bootstrap failed: {e}")))?;
    info!(
        dir = %done.dir.display(),
        "mTLS bootstrap: created a CA and server bundle; the client bundle is {} (`lockd client` finds it by itself)",
        done.client.display()
    );
    Ok(())
}

/// Builds the rustls settings (client certificates required, chaining to
/// the bundle's CA) and seeds the denylist from the bundle.
fn tls_settings(path: &Path, b: &ServerBundle) -> Result<TlsSettings, CliError> {
    let bad = |e: String| startup(format!("server bundle {}: {e}", path.display()));
    check_validity(path, b)?;
    let mut roots = rustls::RootCertStore::empty();
    for der in CertificateDer::pem_slice_iter(b.ca_certs_pem.as_bytes()) {
        let der = der.map_err(|e| bad(format!("CA certificate: {e}")))?;
        roots.add(der).map_err(|e| bad(format!("CA certificate: {e}")))?;
    }
    let settings =
        tls::server_config(b.cert_pem.as_bytes(), b.key_pem.as_bytes(), Some(roots)).map_err(|e| bad(e.to_string()))?;
    settings.denylist().replace(b.denylist.clone());
    Ok(settings)
}

/// How long before its certificate expires a server starts warning.
const EXPIRY_WARNING_SECS: i64 = 30 * 24 * 3600;

/// Refuses a server certificate that is not valid now (every client would
/// fail the handshake with a less helpful message) and warns when it
/// expires within 30 days.
fn check_validity(path: &Path, b: &ServerBundle) -> Result<(), CliError> {
    let now = lockd_auth::cert::unix_now();
    let renew = format!(
        "issue a new one with `lockd auth new server --force --out {}`",
        path.display()
    );
    if now > b.leaf.not_after {
        return Err(startup(format!(
            "server bundle {}: the server certificate expired on {}; {renew}",
            path.display(),
            lockd_auth::verify::format_time(b.leaf.not_after)
        )));
    }
    if now < b.leaf.not_before {
        return Err(startup(format!(
            "server bundle {}: the server certificate is not valid before {} (check the clock)",
            path.display(),
            lockd_auth::verify::format_time(b.leaf.not_before)
        )));
    }
    if b.leaf.not_after - now < EXPIRY_WARNING_SECS {
        warn!(
            bundle = %path.display(),
            "the server certificate expires on {}; {renew}",
            lockd_auth::verify::format_time(b.leaf.not_after)
        );
    }
    Ok(())
}

/// Re-reads the bundle's denylist whenever the file changes, so `lockd
/// auth revoke` takes effect without a restart. A bundle that fails to
/// load keeps the previous list (and says so once per change).
pub(crate) fn watch_denylist(path: PathBuf, denylist: Arc<Denylist>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let stamp = |p: &Path| -> Option<(SystemTime, u64)> {
            let m = std::fs::metadata(p).ok()?;
            Some((m.modified().ok()?, m.len()))
        };
        let mut seen = stamp(&path);
        let mut ticker = tokio::time::interval(DENYLIST_POLL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let now = stamp(&path);
            if now == seen {
                continue;
            }
            seen = now;
            let reload = path.clone();
            let loaded = tokio::task::spawn_blocking(move || ServerBundle::load(&reload)).await;
            match loaded {
                Ok(Ok(b)) => {
                    if denylist.replace(b.denylist) {
                        info!(bundle = %path.display(), revoked = denylist.len(), "denylist reloaded");
                    }
                }
                Ok(Err(e)) => warn!(error = %e, "bundle changed but cannot be read; keeping the previous denylist"),
                Err(e) => warn!(error = %e, "denylist reload did not run"),
            }
        }
    })
}
